"""PNG figures, one metric each: a line per group, shaded ± std over its seeds.

A group's curve is taken at the rounds every one of its seeds recorded: x is
the seeds' mean of that round's x value (bytes, seconds and ε are the same or
nearly so across seeds; ``sim_time`` under random faults is not, and the curve is
at each round's mean simulated time), y the seeds' mean, the band ± their sample std
(ddof = 1; no band for one seed; on a log y axis the band's lower edge stops
at the smallest seed's value, so it never dips to zero). Figures are drawn on
matplotlib's Agg canvas without pyplot, so no global backend state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dfl.report.group import group_runs, label
from dfl.report.load import ReportError, Run, finite

# x axis: (file-name stem, axis title, scale of the shown value, log scale)
X_AXES: dict[str, tuple[str, str, float, bool]] = {
    "round": ("round", "round", 1.0, False),
    "bytes_sent_per_node": ("bytes", "MB sent per node (cumulative)", 1e-6, True),
    "wall_time": ("wall_time", "wall-clock time (s)", 1.0, False),
    "sim_time": ("sim_time", "simulated time (s)", 1.0, False),
    "epsilon": ("epsilon", "ε (worst node)", 1.0, True),
}
Y_TITLES = {
    "test_accuracy_mean": "mean test accuracy over nodes",
    "consensus_distance": "consensus distance",
}


def recorded(runs: Sequence[Run], key: str) -> bool:
    """Whether some record of some run has ``key``."""
    return any(key in r for run in runs for r in run["records"])


def present_axes(runs: Sequence[Run]) -> list[str]:
    """The x axes of :data:`X_AXES` that the runs' records have (``epsilon``: private runs)."""
    return [x for x in X_AXES if recorded(runs, x)]


def check_x(runs: Sequence[Run], xs: Sequence[str]) -> None:
    """Raises :class:`ReportError` for an x axis that is unknown or that no run records."""
    present = ", ".join(present_axes(runs))
    for x in xs:
        if x not in X_AXES:
            raise ReportError(
                f"--x {x!r}: unknown x axis; expected one of {', '.join(X_AXES)} "
                f"(these runs record: {present})"
            )
        if not recorded(runs, x):
            why = " (none of them is private)" if x == "epsilon" else ""
            raise ReportError(f"--x {x!r}: no run records {x!r}{why}; these runs record: {present}")


class Curve(NamedTuple):
    """One group's curve over its seeds at their common rounds."""

    x: np.ndarray  # the seeds' mean x
    mean: np.ndarray  # the seeds' mean y
    std: np.ndarray | None  # their sample std (ddof = 1); None for one seed
    low: np.ndarray  # the smallest seed's y


def seed_curve(runs: Sequence[Run], x: str, y: str) -> Curve:
    """The :class:`Curve` of ``y`` against ``x`` over ``runs`` (the seeds of one group)."""
    per_run: list[dict[int, tuple[float, float]]] = []
    for run in runs:
        points: dict[int, tuple[float, float]] = {}
        for r in run["records"]:
            xv, yv = finite(r.get(x)), finite(r.get(y))
            if xv is not None and yv is not None:
                points[int(r["round"])] = (xv, yv)
        per_run.append(points)
    common = sorted(set.intersection(*(set(p) for p in per_run)))
    values = np.array([[p[t] for t in common] for p in per_run], dtype=float).reshape(
        len(runs), len(common), 2
    )
    xs, ys = values[..., 0], values[..., 1]
    std = ys.std(axis=0, ddof=1) if len(runs) > 1 else None
    return Curve(xs.mean(axis=0), ys.mean(axis=0), std, ys.min(axis=0, initial=np.inf))


def plot(
    runs: Sequence[Run],
    by: Sequence[str],
    path: str | Path,
    x: str,
    *,
    y: str = "test_accuracy_mean",
    log_y: bool = False,
    title: str = "",
) -> Path:
    """Draws ``y`` against ``x`` for every group of ``by`` into the PNG ``path``.

    Raises:
      ReportError: ``x`` is not an axis of :data:`X_AXES`, or no group has a point.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import NullFormatter
    except ImportError as e:
        raise ReportError("plots need matplotlib: pip install 'dfl[plot]'") from e
    if x not in X_AXES:
        check_x(runs, [x])
    _, x_title, scale, log_x = X_AXES[x]
    fig = Figure(figsize=(7, 4.5))
    ax: Any = fig.add_subplot()
    drawn = 0
    for group in group_runs(runs, by):
        xs, mean, std, low = seed_curve(group.runs, x, y)
        if not len(xs):
            continue
        seeds = len(group.runs)
        name = f"{label(group, by) or 'all runs'} ({seeds} seed{'s' * (seeds > 1)})"
        (line,) = ax.plot(xs * scale, mean, marker="." if len(xs) < 30 else None, label=name)
        if std is not None:
            lower = np.maximum(mean - std, low) if log_y else mean - std
            ax.fill_between(xs * scale, lower, mean + std, color=line.get_color(), alpha=0.2)
        drawn += 1
    if not drawn:
        raise ReportError(f"no run has records with both {x!r} and {y!r} to plot")
    ax.set_xlabel(x_title)
    ax.set_ylabel(Y_TITLES.get(y, y))
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120, format="png")
    return path


def write_plots(runs: Sequence[Run], by: Sequence[str], out: Path, xs: Sequence[str]) -> list[Path]:
    """``accuracy_vs_{X}.png`` for each of ``xs`` and ``consensus_vs_round.png`` (log y)."""
    paths = [plot(runs, by, out / f"accuracy_vs_{X_AXES[x][0]}.png", x) for x in xs]
    if recorded(runs, "consensus_distance"):
        paths.append(
            plot(
                runs,
                by,
                out / "consensus_vs_round.png",
                "round",
                y="consensus_distance",
                log_y=True,
            )
        )
    return paths
