"""Metrics records and run metadata shared by the simulation and node runners."""

from dfl.metrics.metadata import run_metadata
from dfl.metrics.writer import REQUIRED_KEYS, MetricsWriter, read_jsonl, to_builtin

__all__ = ["REQUIRED_KEYS", "MetricsWriter", "read_jsonl", "run_metadata", "to_builtin"]
