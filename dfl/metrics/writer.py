"""Metrics records: ``metrics.jsonl`` (one JSON object per line) and ``metrics.csv``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from dfl.config.logger_schema import LoggerConfig
from dfl.metrics.loggers import open_logger, scalars

REQUIRED_KEYS = (
    "round",
    "wall_time",
    "train_loss",
    "test_accuracy_mean",
    "test_accuracy_min",
    "test_accuracy_max",
    "test_accuracy_avg_model",
    "consensus_distance",
    "bytes_sent_per_node",
)
"""Keys every record of every runner has (simulation and deployment alike)."""


def to_builtin(value: Any) -> Any:
    """Converts numpy/jax scalars and arrays into JSON-serialisable Python values."""
    if isinstance(value, dict):
        return {k: to_builtin(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_builtin(v) for v in value]
    if hasattr(value, "tolist"):
        return to_builtin(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsWriter:
    """Appends records to ``metrics.jsonl`` and ``metrics.csv`` in ``workdir``.

    The CSV's columns are the first record's keys; list values (per-node
    metrics) are written as JSON strings in their cell. Both files are flushed
    after every record, so a killed run keeps what it measured. With ``logger``
    (the run's ``logger`` config) each record's scalars also go to TensorBoard or
    W&B (:mod:`dfl.metrics.loggers`); appending, that logger hides what it logged
    after the last record kept in ``metrics.jsonl``.
    """

    def __init__(
        self, workdir: str | Path, *, append: bool = False, logger: LoggerConfig | None = None
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        mode = "a" if append else "w"
        resume_step = last_round(self.workdir / "metrics.jsonl") + 1 if append else None
        self._logger = open_logger(logger, self.workdir, resume_step=resume_step)
        self._jsonl = open(self.workdir / "metrics.jsonl", mode)  # noqa: SIM115
        csv_path = self.workdir / "metrics.csv"
        self._columns: list[str] | None = None
        if append and csv_path.exists() and csv_path.stat().st_size:
            with open(csv_path) as f:
                self._columns = next(csv.reader(f))
        self._csv = open(csv_path, mode, newline="")  # noqa: SIM115
        self._csv_writer = csv.writer(self._csv)

    def write(self, record: dict[str, Any]) -> None:
        """Writes one record (converted to builtins) to both files."""
        record = to_builtin(record)
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._columns is None:
            self._columns = list(record)
            self._csv_writer.writerow(self._columns)
        row = [record.get(k, "") for k in self._columns]
        self._csv_writer.writerow([json.dumps(v) if isinstance(v, list) else v for v in row])
        self._csv.flush()
        if self._logger is not None:
            self._logger.log(int(record["round"]), scalars(record))

    def close(self) -> None:
        """Closes both files (and the logger)."""
        self._jsonl.close()
        self._csv.close()
        if self._logger is not None:
            self._logger.close()
            self._logger = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Reads a ``metrics.jsonl`` file back as a list of records."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def last_round(path: str | Path) -> int:
    """The round of the last record in a ``metrics.jsonl`` (0 if it has none)."""
    path = Path(path)
    records = read_jsonl(path) if path.exists() else []
    return int(records[-1]["round"]) if records else 0


def continue_metrics(workdir: str | Path, rounds_done: int) -> None:
    """Keeps the records of ``workdir/metrics.jsonl`` (and ``.csv``) up to ``rounds_done``.

    The rounds after the restored checkpoint are run again; their old records
    (from a run that went on past its last intact checkpoint) are dropped.
    """
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if int(r["round"]) <= rounds_done]
    with MetricsWriter(workdir) as writer:
        for r in kept:
            writer.write(r)
