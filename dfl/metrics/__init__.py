"""Metrics records and run metadata shared by the simulation and node runners."""

from dfl.metrics.metadata import run_metadata
from dfl.metrics.record import EVALUATION_KEYS, is_eval_round, metrics_record, privacy_record
from dfl.metrics.writer import REQUIRED_KEYS, MetricsWriter, read_jsonl, to_builtin

__all__ = [
    "EVALUATION_KEYS",
    "REQUIRED_KEYS",
    "MetricsWriter",
    "is_eval_round",
    "metrics_record",
    "privacy_record",
    "read_jsonl",
    "run_metadata",
    "to_builtin",
]
