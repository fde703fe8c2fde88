"""``results.md`` and ``results.csv``: one row per group, mean ± std over its seeds."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from dfl.report.group import group_runs
from dfl.report.load import Run
from dfl.report.summary import GroupSummary, Stat, summarize

TARGET_FIELDS = (
    "rounds_to_target",
    "bytes_to_target",
    "seconds_to_target",
    "sim_seconds_to_target",
)

# (field, markdown title with {t} for the target, number format, scale of the shown value)
MARKDOWN_COLUMNS = (
    ("final_accuracy", "final acc", "{:.4f}", 1.0),
    ("best_accuracy", "best acc", "{:.4f}", 1.0),
    ("rounds_to_target", "rounds to {t}", "{:.1f}", 1.0),
    ("bytes_to_target", "MB/node to {t}", "{:.3g}", 1e-6),
    ("seconds_to_target", "s to {t}", "{:.3g}", 1.0),
    ("sim_seconds_to_target", "sim s to {t}", "{:.4g}", 1.0),
    ("consensus_distance", "consensus", "{:.3g}", 1.0),
    ("sim_time", "sim s", "{:.4g}", 1.0),
    ("messages_missing", "missing", "{:.4g}", 1.0),
    ("retransmissions", "retransmissions", "{:.4g}", 1.0),
    ("epsilon", "ε", "{:.2f}", 1.0),
)

# columns shown only when some run records the field they need (the others always are)
OPTIONAL_COLUMNS = {
    "sim_seconds_to_target": "sim_time",
    "sim_time": "sim_time",
    "messages_missing": "messages_missing",
    "retransmissions": "retransmissions",
    "epsilon": "epsilon",
}


def shown(field: str, summaries: Sequence[GroupSummary]) -> bool:
    """Whether the markdown table has ``field``'s column: always, or for the fields of
    :data:`OPTIONAL_COLUMNS` (network model, deployment counters, privacy) when some
    group has a value of the field it needs."""
    need = OPTIONAL_COLUMNS.get(field)
    return need is None or any(s.stats[need].n for s in summaries)


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

    The ε column appears only when some run is private, the ``sim s`` ones
    (simulated seconds to ``target`` and in all) only when some run has a network
    model (records with ``sim_time``), ``missing``/``retransmissions`` (run totals)
    only when some run counts them; ``*_to`` columns are means over the seeds that
    reached ``target`` (``(k/n)`` when not all did; ``-`` for a group whose runs lack
    the field, e.g. simulated seconds of runs without a network model).
    """
    groups = group_runs(runs, by)
    summaries = [summarize(g, target) for g in groups]
    columns = [c for c in MARKDOWN_COLUMNS if shown(c[0], summaries)]
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
            need = OPTIONAL_COLUMNS.get(field)
            if field in TARGET_FIELDS and (need is None or summary.stats[need].n):
                cells.append(target_cell(stat, summary.seeds, fmt, scale))
            else:
                cells.append(cell(stat, fmt, scale))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(runs: Sequence[Run], by: Sequence[str], *, target: float = 0.9) -> str:
    """The results as CSV: the ``by`` values, ``seeds``, ``rounds``, ``target``,
    ``target_reached`` and ``FIELD_mean``/``FIELD_std`` per number (bytes in
    bytes, seconds in seconds), every field's columns whatever the runs record; an
    empty cell where a value is undefined (e.g. ``sim_time`` without a network model)."""
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
