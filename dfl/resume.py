"""``+resume=RUN_DIR``: continue a run with its own config, in its own directory.

A resumed run is the original run carried on, so

* its config is the original run's (``RUN_DIR/.hydra/overrides.yaml`` composed
  again), with the overrides given now on top: those may change only what
  does not change the run's math (:data:`SAFE_KEYS`, e.g. more ``rounds``); a
  different ``seed``, topology, model or learning rate is refused, naming the
  key and both values;
* it writes into ``RUN_DIR``: ``metrics.jsonl`` keeps the records up to the
  restored checkpoint's round and continues from there, so one directory holds
  one whole run. ``RUN_DIR/.hydra/`` is updated to the continued config and
  ``RUN_DIR/resumes.jsonl`` records each resume (when, overrides, where the
  resuming command's own Hydra directory is) once it has finished.

A checkpoint directory without a saved config next to it (e.g. from
``checkpoint.dir`` or the Python API) resumes with the config as given.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:  # dfl.checkpoint imports jax and orbax: not at `--help` time
    from dfl.checkpoint import Checkpointer

log = logging.getLogger("dfl.resume")

SAFE_KEYS = (
    "rounds",
    "eval_every",
    "checkpoint",
    "sim",
    "node",
    "transport",
    "plot",
    "logger",
    "resume",
)
"""Top-level keys a resumed run may change (how long, how often, where, how it runs)."""

RESUMES_FILE = "resumes.jsonl"


@dataclasses.dataclass
class Resumed:
    """The config a (possibly resumed) run goes on with.

    Attributes:
      cfg: the config to run.
      overrides: the task overrides that compose ``cfg`` (for node processes).
      run_dir: the original run's directory to write into (``None``: not a
        resume, or no saved config was found).
    """

    cfg: DictConfig
    overrides: list[str]
    run_dir: Path | None = None


def find_run_dir(resume: str | Path) -> Path | None:
    """The run directory (holding ``.hydra/config.yaml``) that ``+resume=PATH`` names.

    ``PATH`` is the run directory or its ``checkpoints/``; ``None`` if neither
    holds a saved config.
    """
    base = Path(resume).expanduser().resolve()
    for candidate in (base, base.parent if base.name == "checkpoints" else None):
        if candidate is not None and (candidate / ".hydra" / "config.yaml").is_file():
            return candidate
    return None


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(saved: Sequence[str], given: Sequence[str]) -> list[str]:
    """``saved`` overrides with those of ``given`` replacing the ones of the same key."""
    keys = {_key(o) for o in given}
    return [o for o in saved if _key(o) not in keys and _key(o) != "resume"] + list(given)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def config_changes(saved: DictConfig, new: DictConfig) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, new value)`` for every leaf of ``new`` that differs from ``saved``.

    Keys ``saved`` does not have (added to the schema since) are not changes.
    """
    old = _flatten(OmegaConf.to_container(saved, resolve=False))
    now = _flatten(OmegaConf.to_container(new, resolve=False))
    return [(k, old[k], v) for k, v in now.items() if k in old and old[k] != v]


def unsafe_changes(changes: Sequence[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    """The changes outside :data:`SAFE_KEYS`."""
    return [c for c in changes if c[0].split(".", 1)[0] not in SAFE_KEYS]


def resume_config(cfg: DictConfig, given: Sequence[str], *, node: int | None = None) -> Resumed:
    """The config of a run started with ``given`` task overrides (see the module docstring).

    Must run where Hydra is initialized (inside ``@hydra.main``, or under
    ``hydra.initialize*``): the original run's overrides are composed again.
    ``node``: look for a launcher run's checkpoints (``nodes/node_<node>/``).

    Raises:
      FileNotFoundError: if ``resume`` names no checkpoint.
      ValueError: if ``given`` changes a key outside :data:`SAFE_KEYS`.
    """
    from hydra import compose

    from dfl.checkpoint import resolve_resume

    if not cfg.get("resume"):
        return Resumed(cfg, list(given))
    resolve_resume(cfg.resume, node)  # fails early, naming where it looked
    run_dir = find_run_dir(cfg.resume)
    if run_dir is None:
        log.warning("resume=%s: no saved config next to it; using the config as given", cfg.resume)
        return Resumed(cfg, list(given))
    saved_overrides = list(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    merged = merge_overrides([str(o) for o in saved_overrides], given)
    new = compose(config_name="config", overrides=merged)
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert isinstance(saved, DictConfig)
    refused = unsafe_changes(config_changes(saved, new))
    if refused:
        diffs = "; ".join(f"{k}={v!r} (the run has {k}={s!r})" for k, s, v in refused)
        raise ValueError(
            f"resume={cfg.resume} would change the run: {diffs}. A resumed run keeps its "
            f"config except {', '.join(SAFE_KEYS[:-1])}: drop those overrides, or start a new "
            "run instead of resuming"
        )
    log.info("resuming %s with its saved config and %s", run_dir, list(given) or "no overrides")
    return Resumed(new, merged, run_dir)


def record_resume(resumed: Resumed, invoked_in: Path) -> None:
    """Updates ``run_dir/.hydra`` to the continued config and appends to ``resumes.jsonl``."""
    run_dir = resumed.run_dir
    if run_dir is None:
        return
    kept = [o for o in resumed.overrides if _key(o) != "resume"]
    cfg = resumed.cfg.copy()
    OmegaConf.set_struct(cfg, False)
    cfg.resume = None
    OmegaConf.save(OmegaConf.create(kept), run_dir / ".hydra" / "overrides.yaml")
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    entry = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "overrides": kept,
        "invoked_in": str(invoked_in),
    }
    with open(run_dir / RESUMES_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


def restore_run(
    resume: Checkpointer,
    like_state: Any,
    rounds: int,
    workdir: str | Path | None,
    *,
    close: Sequence[Checkpointer | None] = (),
) -> tuple[Any, dict[str, Any]]:
    """Restores a simulation's newest intact checkpoint; returns ``(state, meta)``.

    Keeps ``workdir``'s metrics up to the restored round
    (:func:`dfl.metrics.writer.continue_metrics`).
    On failure the checkpointers in ``close`` are closed before the error propagates.

    Raises:
      ValueError: if the checkpoint is unreadable or already at ``rounds``.
    """
    try:
        state, _, meta = resume.restore(like_state)
        done = int(meta["round"])
        if done >= rounds:
            raise ValueError(
                f"resume: the checkpoint in {resume.directory} is at round {done}, "
                f"so rounds={rounds} leaves nothing to run; set rounds > {done}"
            )
    except BaseException:
        for c in close:
            if c is not None:
                c.close()
        raise
    if workdir is not None:
        from dfl.metrics.writer import continue_metrics

        continue_metrics(workdir, done)  # one directory holds the whole run
    return state, meta


def resume_hint(
    command: str, workdir: str | Path, every: int, *, same_overrides: bool = False
) -> str:
    """How to continue a run stopped in ``workdir`` (``checkpoint.every=every``).

    ``same_overrides``: the command needs its other overrides again (a single
    node, whose id and addresses are not in a run directory's saved config).
    """
    if every > 0 and same_overrides:
        return f"restart python -m {command} with the same overrides plus +resume={workdir}"
    if every > 0:
        return f"continue it with: python -m {command} +resume={workdir}"
    return (
        "it cannot be resumed (checkpoint.every=0 writes no checkpoints); "
        "rerun it with checkpoint.every=K to make it resumable"
    )
