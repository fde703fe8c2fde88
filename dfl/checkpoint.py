"""Orbax checkpoints shared by the simulation runner and the node runner.

A checkpoint holds what a run needs to continue exactly where it stopped:

* ``state``: the algorithm state (stacked over nodes for the simulation, one
  node's for a deployed node), which includes the local optimizer's state and
  the compressor/privacy state; typed PRNG keys are stored as their key data.
* ``extra``: other pytrees saved beside the state (optional).
* ``meta``: JSON: the next round to run and the counters (bytes, messages),
  and a digest of ``state`` and ``extra``.

Restoring the newest checkpoint checks it against its digest; one that cannot
be read or does not match (a torn write, a damaged disk) is set aside as
``STEP.corrupt`` and the newest intact one is restored instead, with a warning
naming both.

No key or data-pipeline RNG state needs saving: every key of round ``t`` is
derived from the seed and ``t`` (:meth:`dfl.experiment.Experiment.stream`),
so the round number is the whole RNG state.

Example::

    ckpt = Checkpointer(workdir / "checkpoints", every=10, max_to_keep=3)
    if ckpt.due(rounds_done, total):
        ckpt.save(rounds_done, state, meta={"round": rounds_done})
    state, extra, meta = ckpt.restore(like_state)
    ckpt.close()
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from dfl.config.schema import Config

log = logging.getLogger("dfl.checkpoint")


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree: Any) -> Any:
    """A copy of ``tree``; typed PRNG keys → their raw key data.

    The copy lets the caller donate or overwrite its arrays while orbax writes: on the
    host, or, for an array spread over several processes (``sim.distributed``), which
    no process can fetch whole, on its devices (each process copies its own shards and
    orbax writes them).
    """

    def leaf(x: Any) -> Any:
        x = jax.random.key_data(x) if _is_key(x) else x
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jnp.copy(x)
        return np.array(x)

    return jax.tree.map(leaf, tree)


def _abstract(tree: Any) -> Any:
    def leaf(x):
        if _is_key(x):
            x = jax.eval_shape(jax.random.key_data, x)
        return ocp.utils.to_shape_dtype_struct(x)

    return jax.tree.map(leaf, tree)


def _from_saved(saved: Any, like: Any) -> Any:
    def leaf(s, x):
        if _is_key(x):
            return jax.random.wrap_key_data(s, impl=jax.random.key_impl(x))
        return s

    return jax.tree.map(leaf, saved, like)


def digest(tree: Any) -> str | None:
    """A hex digest of every leaf's dtype, shape and bytes (``None``: not all on this host)."""
    h = hashlib.blake2b(digest_size=16)
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return None
        x = np.ascontiguousarray(leaf)
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(x.reshape(-1).view(np.uint8).data if x.size else b"")
    return h.hexdigest()


class CorruptCheckpointError(ValueError):
    """A checkpoint that cannot be read back or does not match its digest."""


def resolve_resume(path: str | Path, node: int | None = None) -> Path:
    """The checkpoint directory ``+resume=PATH`` names.

    ``PATH`` may be the checkpoint directory itself (it holds numbered step
    folders), a run directory holding ``checkpoints/``, or a launcher's run
    directory holding ``nodes/node_<id>/checkpoints`` (with ``node`` given).

    Raises:
      FileNotFoundError: if none of these holds a checkpoint.
    """
    base = Path(path).expanduser()
    candidates = [base, base / "checkpoints"]
    if node is not None:
        candidates += [base / "nodes" / f"node_{node}" / "checkpoints", base / f"node_{node}"]
    for candidate in candidates:
        if candidate.is_dir() and any(p.name.isdigit() for p in candidate.iterdir()):
            return candidate
    raise FileNotFoundError(
        f"resume={str(path)!r} holds no checkpoint (looked in "
        + ", ".join(str(c) for c in candidates)
        + ")"
    )


class Checkpointer:
    """An orbax ``CheckpointManager`` saving every ``every`` rounds.

    Args:
      directory: where the numbered checkpoints go.
      every: save after every this many rounds (and after the last); 0 never
        saves (restoring still works).
      max_to_keep: newest checkpoints kept.
      async_save: write in the background (orbax's async checkpointing). Use
        ``False`` where several managers share a process (in-process
        deployments): orbax's async signalling is process-global.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        every: int = 0,
        max_to_keep: int = 3,
        async_save: bool = True,
    ):
        if every < 0 or max_to_keep < 1:
            raise ValueError(
                f"checkpoint.every must be >= 0 and max_to_keep >= 1, found {every=}, "
                f"{max_to_keep=}"
            )
        self.directory = Path(directory).expanduser().resolve()
        self.every = every
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self._closed = False

    def due(self, rounds_done: int, total_rounds: int) -> bool:
        """Whether to save after ``rounds_done`` rounds."""
        return self.every > 0 and (rounds_done % self.every == 0 or rounds_done == total_rounds)

    def save(self, step: int, state: Any, *, meta: dict[str, Any], extra: Any = None) -> None:
        """Saves ``state`` (and ``extra``) with JSON ``meta`` as checkpoint ``step``."""
        state, extra = _to_saveable(state), None if extra is None else _to_saveable(extra)
        meta = {**meta, "has_extra": extra is not None, "digest": digest((state, extra))}
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
        if extra is not None:
            items["extra"] = ocp.args.StandardSave(extra)
        self._manager.save(step, args=ocp.args.Composite(**items), force=True)
        log.info("checkpoint %d saved in %s", step, self.directory)

    def latest_step(self) -> int | None:
        """The newest saved step (``None``: none)."""
        return self._manager.latest_step()

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of checkpoint ``step`` (default: the newest readable one)."""
        if step is not None:
            return self._read_meta(step)
        steps = sorted(self._manager.all_steps(), reverse=True)
        for s in steps[:-1]:
            try:
                return self._read_meta(s)
            except Exception:  # unreadable: restore() sets it aside and says so
                continue
        return self._read_meta(self._step(steps[-1] if steps else None))

    def _read_meta(self, step: int) -> dict[str, Any]:
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def restore(
        self, like_state: Any, *, step: int | None = None, like_extra: Any = None
    ) -> tuple[Any, Any, dict[str, Any]]:
        """Restores checkpoint ``step`` (default: the newest intact one).

        Without ``step``, a newer checkpoint that cannot be read or does not
        match its digest is renamed ``STEP.corrupt`` (so that this run can
        save that step again) and logged, and the next older one is tried.

        Args:
          like_state: a state of the saved structure (arrays or shape structs;
            typed keys where keys were saved).
          step: the step to restore (no fallback).
          like_extra: the structure of ``extra`` if one was saved.

        Returns:
          ``(state, extra, meta)``; ``extra`` is ``None`` if none was saved.

        Raises:
          FileNotFoundError: if there is no checkpoint.
          CorruptCheckpointError: if ``step``, or every checkpoint, is unreadable.
        """
        if step is not None:
            return self._restore_step(step, like_state, like_extra)
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        failures: list[str] = []
        for s in steps:
            try:
                restored = self._restore_step(s, like_state, like_extra)
            except CorruptCheckpointError as e:
                failures.append(str(e))
                continue
            if failures:
                self._set_aside([t for t in steps if t > s])
                log.warning(
                    "%s; resuming from checkpoint %d instead (the newest intact one)",
                    "; ".join(failures),
                    s,
                )
            return restored
        raise CorruptCheckpointError(
            f"no checkpoint in {self.directory} can be restored: " + "; ".join(failures)
        )

    def _restore_step(
        self, step: int, like_state: Any, like_extra: Any
    ) -> tuple[Any, Any, dict[str, Any]]:
        try:
            meta = self._read_meta(step)
            items = {"state": ocp.args.StandardRestore(_abstract(like_state))}
            if meta.get("has_extra") and like_extra is not None:
                items["extra"] = ocp.args.StandardRestore(_abstract(like_extra))
            restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:  # orbax/tensorstore raise many kinds (ZSTD, JSON, missing files)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise CorruptCheckpointError(
                f"checkpoint {step} in {self.directory} is unreadable ({type(e).__name__}: {first})"
            ) from e
        saved_extra = restored["extra"] if "extra" in items else None
        expected = meta.get("digest")  # None: saved before digests were kept
        whole = saved_extra is not None or not meta.get("has_extra")
        if expected is not None and whole:
            found = digest((restored["state"], saved_extra))
            if found is not None and found != expected:
                raise CorruptCheckpointError(
                    f"checkpoint {step} in {self.directory} does not match its digest "
                    f"(saved {expected}, read {found})"
                )
        state = _from_saved(restored["state"], like_state)
        extra = None if saved_extra is None else _from_saved(saved_extra, like_extra)
        return state, extra, meta

    def _set_aside(self, steps: list[int]) -> None:
        for s in steps:
            path = self.directory / str(s)
            if path.exists():
                path.rename(path.with_name(f"{s}.corrupt"))
        self._manager.reload()

    def _step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return step

    def close(self) -> None:
        """Waits for pending saves and releases the manager (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._manager.wait_until_finished()
        self._manager.close()


def checkpoint_dir(cfg: Config, node_workdir: Path, node: int | None) -> Path:
    """Where a node (or, with ``node=None``, the simulation) keeps its checkpoints."""
    if cfg.checkpoint.dir:
        base = Path(cfg.checkpoint.dir)
        return base / f"node_{node}" if node is not None else base
    return node_workdir / "checkpoints"


def checkpointers(
    cfg: Config, node_workdir: Path | None, node: int | None, *, async_save: bool = True
) -> tuple[Checkpointer | None, Checkpointer | None]:
    """``(saver, resume_from)`` of a node or simulation per ``checkpoint`` and ``resume``.

    ``async_save``: see :class:`Checkpointer`.

    Raises:
      ValueError: if checkpoints are asked for without a place to put them.
      FileNotFoundError: if ``resume`` names no checkpoint.
    """
    saver = None
    if cfg.checkpoint.every > 0:
        if node_workdir is None and not cfg.checkpoint.dir:
            raise ValueError("checkpoint.every > 0 needs checkpoint.dir or a work directory")
        directory = checkpoint_dir(cfg, node_workdir or Path("."), node)
        saver = Checkpointer(
            directory,
            every=cfg.checkpoint.every,
            max_to_keep=cfg.checkpoint.max_to_keep,
            async_save=async_save,
        )
    resume = None
    if cfg.resume:
        path = resolve_resume(cfg.resume, node)
        if saver is not None and path.resolve() == saver.directory:
            resume = saver
        else:
            resume = Checkpointer(
                path, every=0, max_to_keep=cfg.checkpoint.max_to_keep, async_save=async_save
            )
    return saver, resume
