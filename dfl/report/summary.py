"""Per-run numbers and their mean ± std over a group's seeds.

The std is the *sample* standard deviation (ddof = 1, :func:`statistics.stdev`):
the spread one would expect of a further seed. It is undefined (``None``) for a
single value.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, NamedTuple

from dfl.report.group import Group
from dfl.report.load import Run, number

ACCURACY = "test_accuracy_mean"


class Stat(NamedTuple):
    """Mean and sample std (ddof = 1; ``None`` below 2 values) of ``n`` values."""

    mean: float | None
    std: float | None
    n: int

    @staticmethod
    def of(values: Sequence[float | None]) -> Stat:
        """The statistic of the values that are not ``None``."""
        xs = [v for v in values if v is not None]
        mean = statistics.fmean(xs) if xs else None
        std = statistics.stdev(xs) if len(xs) > 1 else None
        return Stat(mean, std, len(xs))


class RunSummary(NamedTuple):
    """One run's numbers: last and best accuracy, the first record at the target, last values.

    ``seconds_to_target`` is wall-clock (``wall_time``), ``sim_seconds_to_target``
    simulated (``sim_time``, runs with a network model); ``sim_time``,
    ``messages_missing`` and ``retransmissions`` are the last record's (cumulative,
    so run totals); a field the records lack is ``None``.
    """

    rounds: int
    final_accuracy: float | None
    best_accuracy: float | None
    rounds_to_target: float | None
    bytes_to_target: float | None
    seconds_to_target: float | None
    sim_seconds_to_target: float | None
    consensus_distance: float | None
    sim_time: float | None
    messages_missing: float | None
    retransmissions: float | None
    epsilon: float | None


FIELDS = RunSummary._fields[1:]


def last(records: Sequence[dict[str, Any]], key: str) -> float | None:
    """The last record's value of ``key`` among records that have it."""
    values = [number(r[key]) for r in records if key in r]
    return values[-1] if values else None


def reached(record: dict[str, Any], target: float) -> bool:
    """Whether the record's mean test accuracy is at least ``target``."""
    accuracy = number(record.get(ACCURACY))
    return accuracy is not None and accuracy >= target


def summarize_run(run: Run, target: float) -> RunSummary:
    """The numbers of one run; the target is reached at the first record with
    ``test_accuracy_mean >= target`` (``None`` for every ``*_to_target`` if never)."""
    records = run["records"]
    accuracies = [a for r in records if (a := number(r.get(ACCURACY))) is not None]
    hit = next((r for r in records if reached(r, target)), None)
    return RunSummary(
        rounds=int(records[-1]["round"]),
        final_accuracy=accuracies[-1] if accuracies else None,
        best_accuracy=max(accuracies) if accuracies else None,
        rounds_to_target=None if hit is None else number(hit["round"]),
        bytes_to_target=None if hit is None else number(hit.get("bytes_sent_per_node")),
        seconds_to_target=None if hit is None else number(hit.get("wall_time")),
        sim_seconds_to_target=None if hit is None else number(hit.get("sim_time")),
        consensus_distance=last(records, "consensus_distance"),
        sim_time=last(records, "sim_time"),
        messages_missing=last(records, "messages_missing"),
        retransmissions=last(records, "retransmissions"),
        epsilon=last(records, "epsilon"),
    )


class GroupSummary(NamedTuple):
    """A group's statistics over its seeds: one :class:`Stat` per :data:`FIELDS`."""

    seeds: int
    rounds: int
    reached: int
    stats: dict[str, Stat]


def summarize(group: Group, target: float) -> GroupSummary:
    """Mean ± std over the group's runs; the ``*_to_target`` ones only over the
    runs that reached the target (``reached`` of ``seeds``)."""
    runs = [summarize_run(r, target) for r in group.runs]
    stats = {f: Stat.of([getattr(s, f) for s in runs]) for f in FIELDS}
    return GroupSummary(
        seeds=len(runs),
        rounds=max(s.rounds for s in runs),
        reached=sum(s.rounds_to_target is not None for s in runs),
        stats=stats,
    )
