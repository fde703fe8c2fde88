"""Terminal progress bar and end-of-run summary table (rich)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def round_progress(*, enabled: bool = True, console: Console | None = None) -> Progress:
    """A progress bar showing the round, the last train loss and mean test accuracy.

    Use it as a context manager; the task's fields ``loss`` and ``acc`` are
    updated by the runner.
    """
    return Progress(
        TextColumn("[bold]round"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("acc {task.fields[acc]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def node_fields(statuses: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The progress bar's ``(loss, acc)`` of a deployment: means over the nodes reporting.

    Each status may hold ``loss`` (its last round's train loss) and ``acc`` (its
    model's test accuracy at its last evaluation); ``-`` where none reports one.
    """

    def mean(field: str) -> str:
        values = [float(st[field]) for st in statuses if st.get(field) is not None]
        return f"{sum(values) / len(values):.4f}" if values else "-"

    return mean("loss"), mean("acc")


SUMMARY_COLUMNS = (
    ("round", "round", "{:d}"),
    ("wall_time", "time s", "{:.1f}"),
    ("train_loss", "loss", "{:.4f}"),
    ("test_accuracy_mean", "acc", "{:.4f}"),
    ("test_accuracy_min", "min", "{:.4f}"),
    ("test_accuracy_max", "max", "{:.4f}"),
    ("test_accuracy_avg_model", "avg model", "{:.4f}"),
    ("consensus_distance", "consensus", "{:.3g}"),
    ("bytes_sent_per_node", "MB/node", "{:.2f}"),
)
EPSILON_COLUMN = ("epsilon", "ε", "{:.2f}")


def summary_table(
    records: Sequence[dict[str, Any]], *, title: str = "dfl run", notes: Sequence[str] = ()
) -> Table:
    """A table of the evaluated rounds (at most 10 rows: evenly spaced, last included).

    ``notes``: lines under the table (e.g. the calibrated DP noise multiplier).
    """
    caption = "\n".join(["acc: mean/min/max test accuracy over nodes", *notes])
    table = Table(title=title, caption=caption)
    columns = list(SUMMARY_COLUMNS)
    if any("epsilon" in r for r in records):
        columns.append(EPSILON_COLUMN)
    for _, header, _ in columns:
        table.add_column(header, justify="right")
    if not records:
        return table
    step = max(1, -(-len(records) // 10))
    picked = list(records[::step])
    if picked[-1] is not records[-1]:
        picked.append(records[-1])
    for r in picked:
        cells = []
        for key, _, fmt in columns:
            value = r.get(key)
            if key == "bytes_sent_per_node" and value is not None:
                value = value / 1e6
            cells.append("-" if value is None else fmt.format(value))
        table.add_row(*cells)
    return table


def print_table(table: Table, *, file: IO[str] | None = None) -> None:
    """Prints ``table`` to ``file`` (default stdout) without cutting a cell.

    On a terminal rich fits the table to the window. Off a terminal (a file, a
    pipe, ``tee``, a SLURM log) rich assumes 80 columns and would shorten cells
    to ``conse…``; there the console is made as wide as the table needs.
    """
    console = Console(file=file)
    if not console.is_terminal:
        width = Console(file=file, width=10_000).measure(table).maximum
        console = Console(file=file, width=max(width, 80))
    console.print(table)
