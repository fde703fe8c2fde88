"""Optional loggers fed the records of ``metrics.jsonl`` (``logger=tensorboard|wandb``).

A logger mirrors what :class:`dfl.metrics.writer.MetricsWriter` writes: every
record's numeric scalars (:func:`scalars`) at step ``record["round"]``. One file per
backend; each imports its package only when opened, so a run with ``logger=none``
(the default) needs neither. The packages come with the ``loggers`` extra.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

from dfl.config.logger_schema import LoggerConfig, LoggerName

NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
"""How :func:`dfl.metrics.writer.to_builtin` writes non-finite floats (JSON has none)."""


class RecordLogger(Protocol):
    """A sink for metrics records (one per run directory)."""

    def log(self, step: int, values: dict[str, float]) -> None:
        """Logs one record's scalars at ``step`` (the record's round)."""
        ...

    def close(self) -> None:
        """Flushes and closes the logger's files."""
        ...


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numeric scalar values of a (builtin) record, ``round`` excepted.

    Lists (per-node values), strings, booleans and ``None`` (an aggregate a node's own
    record leaves out) are skipped; ``"nan"``/``"inf"``/``"-inf"`` become floats again.

    Examples:
      >>> scalars({"round": 3, "train_loss": 0.5, "epsilon_per_node": [1.0], "x": None})
      {'train_loss': 0.5}
    """
    out: dict[str, float] = {}
    for key, value in record.items():
        if key == "round" or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[key] = float(value)
        elif isinstance(value, str) and value in NON_FINITE:
            out[key] = NON_FINITE[value]
    return out


def open_logger(
    cfg: LoggerConfig | None, workdir: str | Path, *, resume_step: int | None = None
) -> RecordLogger | None:
    """The logger ``cfg`` names for the run in ``workdir``; ``None`` for ``logger=none``.

    Args:
      cfg: the ``logger`` config (``None``: no logger).
      workdir: the run directory; the logger writes into ``tensorboard/`` or ``wandb/``
        under ``cfg.dir`` or, when that is empty, under ``workdir``.
      resume_step: a resumed run's first step to log again: the logger hides what an
        earlier attempt logged from that step on (TensorBoard), or starts a new offline
        run continuing the same run id (W&B).

    Raises:
      ImportError: the backend's package is not installed (names the extra).
      ValueError: an unknown ``cfg.name``.
    """
    if cfg is None or cfg.name == LoggerName.none:
        return None
    name = LoggerName(cfg.name) if cfg.name in LoggerName.__members__ else cfg.name
    base = Path(cfg.dir) if cfg.dir else Path(workdir)
    try:
        if name == LoggerName.tensorboard:
            from dfl.metrics.loggers.tensorboard import TensorBoardLogger

            return TensorBoardLogger(base / "tensorboard", purge_step=resume_step)
        if name == LoggerName.wandb:
            from dfl.metrics.loggers.wandb import WandbLogger

            return WandbLogger(base, Path(workdir), cfg, resumed=resume_step is not None)
    except ModuleNotFoundError as e:
        raise ImportError(
            f"logger={name} needs the {e.name!r} package: pip install 'dfl[loggers]'"
        ) from e
    raise ValueError(
        f"logger.name={cfg.name!r} is not a logger; expected one of "
        + ", ".join(m.value for m in LoggerName)
    )
