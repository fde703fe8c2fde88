"""``results.md`` and ``results.csv``: one row per group, mean ± std over its seeds."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from dfl.report.group import group_runs
from dfl.report.load import Run
from dfl.report.summary import GroupSummary, Stat, summarize

TARGET_FIELDS = ("rounds_to_target", "bytes_to_target", "seconds_to_target")

# (field, markdown title with {t} for the target, number format, scale of the shown value)
MARKDOWN_COLUMNS = (
    ("final_accuracy", "final acc", "{:.4f}", 1.0),
    ("best_accuracy", "best acc", "{:.4f}", 1.0),
    ("rounds_to_target", "rounds to {t}", "{:.1f}", 1.0),
    ("bytes_to_target", "MB/node to {t}", "{:.3g}", 1e-6),
    ("seconds_to_target", "s to {t}", "{:.3g}", 1.0),
    ("consensus_distance", "consensus", "{:.3g}", 1.0),
    ("epsilon", "ε", "{:.2f}", 1.0),
)


def _has_epsilon(summaries: Sequence[GroupSummary]) -> bool:
    return any(s.stats["epsilon"].n for s in summaries)


def cell(stat: Stat, fmt: str, scale: float = 1.0) -> str:
    """``mean ± std`` (``mean`` alone for one value, ``-`` for none)."""
    if stat.mean is None:
        return "-"
    text = fmt.format(stat.mean * scale)
    return text if stat.std is None else f"{text} ± {fmt.format(stat.std * scale)}"


def target_cell(stat: Stat, seeds: int, fmt: str, scale: float = 1.0) -> str:
    """``not reached``, or :func:`cell` followed by ``(k/n)`` when only k of n seeds reached it."""
    if stat.n == 0:
        return "not reached"
    text = cell(stat, fmt, scale)
    return text if stat.n == seeds else f"{text} ({stat.n}/{seeds})"


def markdown_table(runs: Sequence[Run], by: Sequence[str], *, target: float = 0.9) -> str:
    """The results table: one row per group of ``by`` values, mean ± std over its seeds.

    The ε column appears only when some run is private; ``*_to`` columns are
    means over the seeds that reached ``target`` (``(k/n)`` when not all did).
    """
    groups = group_runs(runs, by)
    summaries = [summarize(g, target) for g in groups]
    columns = [c for c in MARKDOWN_COLUMNS if c[0] != "epsilon" or _has_epsilon(summaries)]
    header = [
        *by,
        "seeds",
        "rounds",
        *(title.format(t=f"{target:g}") for _, title, _, _ in columns),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, summary in zip(groups, summaries, strict=True):
        cells = ["-" if v is None else str(v) for v in group.values]
        cells += [str(summary.seeds), str(summary.rounds)]
        for field, _, fmt, scale in columns:
            stat = summary.stats[field]
            if field in TARGET_FIELDS:
                cells.append(target_cell(stat, summary.seeds, fmt, scale))
            else:
                cells.append(cell(stat, fmt, scale))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(runs: Sequence[Run], by: Sequence[str], *, target: float = 0.9) -> str:
    """The results as CSV: the ``by`` values, ``seeds``, ``rounds``, ``target``,
    ``target_reached`` and ``FIELD_mean``/``FIELD_std`` per number (bytes in
    bytes, seconds in seconds); an empty cell where a value is undefined."""
    groups = group_runs(runs, by)
    fields = [c[0] for c in MARKDOWN_COLUMNS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [*by, "seeds", "rounds", "target", "target_reached"]
        + [f"{f}_{s}" for f in fields for s in ("mean", "std")]
    )
    for group in groups:
        summary = summarize(group, target)
        row = ["" if v is None else v for v in group.values]
        row += [summary.seeds, summary.rounds, target, summary.reached]
        for f in fields:
            stat = summary.stats[f]
            row += ["" if stat.mean is None else stat.mean, "" if stat.std is None else stat.std]
        writer.writerow(row)
    return buffer.getvalue()
