"""``python -m dfl.report PATH [PATH...]``: the report of any run or multirun directories."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from dfl.report.group import check_by, default_by, group_runs, group_warnings
from dfl.report.load import ReportError, Run, load_runs
from dfl.report.plots import check_x, present_axes, write_plots
from dfl.report.table import csv_table, markdown_table

DEFAULT_OUT = "report"


class Report(NamedTuple):
    """What :func:`report` wrote, the grouping keys it used and its warnings."""

    files: list[Path]
    by: list[str]
    warnings: list[str]


def check_out(out: str | Path, runs: Sequence[Run], paths: Sequence[str | Path]) -> Path:
    """``out``, unless it is (inside) a run directory or one of the input paths."""
    target = Path(out).resolve()
    for run in runs:
        run_dir = run["dir"].resolve()
        if target == run_dir or target.is_relative_to(run_dir):
            raise ReportError(
                f"--out {str(out)!r} is inside the run directory {str(run['dir'])!r}; "
                "a report never writes into a run's files, choose a folder outside it"
            )
    for path in paths:
        if target == Path(path).resolve():
            raise ReportError(
                f"--out {str(out)!r} is the runs directory {str(path)!r} itself; "
                f"choose another folder (e.g. {str(Path(path) / DEFAULT_OUT)!r})"
            )
    return Path(out)


def report(
    paths: str | Path | Sequence[str | Path],
    *,
    by: Sequence[str] | None = None,
    xs: Sequence[str] | None = None,
    target: float = 0.9,
    out: str | Path = DEFAULT_OUT,
) -> Report:
    """Writes ``results.md``, ``results.csv`` and the figures for the runs in ``paths``.

    Args:
      paths: run or multirun directories (searched recursively).
      by: grouping keys (config or override keys); default: those that vary, except ``seed``.
      xs: x axes of the accuracy figures; default: every one the runs record.
      target: the accuracy of the ``*_to_target`` columns.
      out: the output folder; never a run directory or an input path.

    Raises:
      ReportError: an unknown key or axis, a path without runs, or a bad ``out``.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not 0.0 <= target <= 1.0:
        raise ReportError(f"--target {target}: expected an accuracy between 0 and 1")
    skipped: list[Path] = []
    runs = load_runs(paths, skipped=skipped)
    by = list(by) if by is not None else default_by(runs)
    check_by(runs, by)
    xs = list(xs) if xs is not None else present_axes(runs)
    check_x(runs, xs)
    out_dir = check_out(out, runs, paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    warnings = [f"skipped {d}: its metrics.jsonl is empty" for d in skipped]
    warnings += group_warnings(group_runs(runs, by), by)
    table, table_csv = out_dir / "results.md", out_dir / "results.csv"
    table.write_text(markdown_table(runs, by, target=target))
    table_csv.write_text(csv_table(runs, by, target=target))
    return Report([table, table_csv, *write_plots(runs, by, out_dir, xs)], by, warnings)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m dfl.report``."""
    p = argparse.ArgumentParser(
        prog="python -m dfl.report",
        description="Tables and plots, mean ± std over seeds, of run or multirun directories.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="run or multirun directories")
    p.add_argument(
        "--by", nargs="+", default=None, metavar="KEY", help="grouping keys (default: varying)"
    )
    p.add_argument(
        "--x",
        nargs="+",
        default=None,
        metavar="AXIS",
        help="x axes of the accuracy plots: round, bytes_sent_per_node, wall_time, sim_time, "
        "epsilon (default: every one recorded)",
    )
    p.add_argument("--target", type=float, default=0.9, help="target accuracy (default 0.9)")
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: ./report)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command; a user mistake exits with status 2 and one ``dfl: error:`` line."""
    args = parser().parse_args(argv)
    try:
        result = report(args.paths, by=args.by, xs=args.x, target=args.target, out=args.out)
    except ReportError as e:
        sys.stderr.write(f"dfl: error: {e}\n")
        raise SystemExit(2) from None
    for warning in result.warnings:
        sys.stderr.write(f"dfl: warning: {warning}\n")
    print(result.files[0].read_text())
    print("wrote " + ", ".join(map(str, result.files)))
