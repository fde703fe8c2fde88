"""Run-directory safety: a run never writes into a directory that holds another run.

A finished run's directory holds ``config_resolved.yaml`` (written when it started)
and ``metrics.jsonl``. Hydra picks the output directory before dfl starts (from
``hydra.run.dir``, or ``hydra.sweep.dir`` and the job's ``subdir``), so two
different configs can be sent to the same one: a changed preset re-run with the
same overrides, a ``hydra.run.dir=`` given twice. :func:`check_run_dir` refuses
that before anything is overwritten. (Hydra's own ``.hydra/config.yaml`` is
already rewritten by then, which is why the check reads ``config_resolved.yaml``.)
The same directory with the same config is allowed (re-running a job).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from pathlib import Path
from typing import Any

import yaml

SAVED_CONFIG = "config_resolved.yaml"
"""The resolved config a run writes at its start."""

FINISHED_MARK = "metrics.jsonl"
"""A run that wrote metrics holds results (the file a report reads)."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out


def comparable(config: dict) -> dict[str, Any]:
    """``config`` flattened to dotted keys, as two runs' configs are compared.

    With ``privacy.target_epsilon`` set, ``privacy.noise_multiplier`` is left out: the
    run writes its calibrated σ there (``config_resolved.yaml``), so it differs from
    the composed value of the same config.
    """
    flat = _flatten(config)
    if flat.get("privacy.target_epsilon"):
        flat.pop("privacy.noise_multiplier", None)
    return flat


@functools.cache
def schema_defaults() -> dict[str, Any]:
    """The config schema's defaults, flattened to dotted keys (enums by name)."""
    from dfl.config.schema import Config  # the schema, not Hydra

    flat = _flatten(dataclasses.asdict(Config()))
    return {k: v.name if isinstance(v, enum.Enum) else v for k, v in flat.items()}


def _differing(saved: dict, new: dict) -> list[str]:
    """The dotted keys whose values differ; a key the saved config lacks (written by an
    older dfl, before the key existed) differs only if ``new`` moved it off its default."""
    a, b = comparable(saved), comparable(new)
    defaults = schema_defaults()
    return [
        k
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k) and not (k not in a and k in defaults and b[k] == defaults[k])
    ]


def same_config(saved: dict, new: dict) -> bool:
    """Whether a saved ``config_resolved.yaml`` is a run of the composed ``new``."""
    return not _differing(saved, new)


def config_differences(saved: dict, new: dict, *, limit: int = 6) -> list[str]:
    """``key: saved -> new`` for the first ``limit`` dotted keys whose values differ."""
    a, b = comparable(saved), comparable(new)
    diffs = [
        f"{k}: {a.get(k, '<absent>')} -> {b.get(k, '<absent>')}" for k in _differing(saved, new)
    ]
    return diffs[:limit] + ([f"... ({len(diffs) - limit} more)"] if len(diffs) > limit else [])


def check_run_dir(workdir: str | Path, config: Any) -> None:
    """Refuses to run ``cfg`` in ``workdir`` if that holds a run of another config.

    Args:
      workdir: the run's output directory.
      config: the new run's composed config, resolved to plain containers
        (``OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)``; this
        module stays free of Hydra).

    Raises:
      ValueError: if ``workdir`` holds a finished run (``config_resolved.yaml`` and
        ``metrics.jsonl``) whose config differs from ``config``, naming the first keys
        that differ and what to do.
    """
    workdir = Path(workdir)
    saved_path = workdir / SAVED_CONFIG
    if not (saved_path.is_file() and (workdir / FINISHED_MARK).is_file()):
        return
    saved = yaml.safe_load(saved_path.read_text()) or {}
    new = yaml.safe_load(yaml.safe_dump(config)) or {}
    if same_config(saved, new):
        return
    raise ValueError(
        f"output directory {str(workdir)!r} already holds a finished run of another config "
        f"({'; '.join(config_differences(saved, new))}); refusing to overwrite it. Choose "
        "another directory (hydra.run.dir=..., or hydra.sweep.dir=... for -m) or move the "
        "old run away"
    )
