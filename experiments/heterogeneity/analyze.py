"""Turns the heterogeneity study's runs into ``results.md``/``results.csv`` and its plots.

Rows: (algorithm, α), :func:`dfl.report.summarize`'s mean ± std over seeds of the final
mean and worst-node test accuracy and of the rounds to ``TARGET``. ``Δ vs dsgd``
is the difference of final mean accuracy to D-SGD at the same α, marked ``*`` when it
is larger than the two spreads added (their ±1 std intervals do not overlap).

Usage (from the repository root, after the sweep):
    python experiments/heterogeneity/analyze.py [RUNS_DIR]
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from dfl.report import group_runs, load_runs, plot, summarize
from dfl.report.summary import Stat
from dfl.report.table import cell, target_cell

HERE = Path(__file__).resolve().parent
TARGET = 0.85
BY = ["algorithm", "data.alpha"]
ORDER = ["dsgd", "gradient_tracking", "qgm", "d2"]


def exceeds(a: Stat, b: Stat) -> bool:
    """Whether ``|mean_a − mean_b|`` is larger than ``std_a + std_b``."""
    if a.mean is None or b.mean is None:
        return False
    return abs(a.mean - b.mean) > (a.std or 0.0) + (b.std or 0.0)


def worst_node(group: Any) -> Stat:
    """Mean ± std over seeds of the last record's ``test_accuracy_min``."""
    return Stat.of([float(r["records"][-1]["test_accuracy_min"]) for r in group.runs])


def rows(runs: list[Any]) -> list[dict[str, Any]]:
    """One row per (algorithm, α), α from large to small."""
    groups = {tuple(g.values): g for g in group_runs(runs, BY)}
    alphas = sorted({v[1] for v in groups}, key=float, reverse=True)
    out = []
    for alpha in alphas:
        base = summarize(groups[("dsgd", alpha)], TARGET) if ("dsgd", alpha) in groups else None
        for algorithm in ORDER:
            if (algorithm, alpha) not in groups:
                continue
            group = groups[(algorithm, alpha)]
            summary = summarize(group, TARGET)
            final = summary.stats["final_accuracy"]
            delta = None
            if base is not None and algorithm != "dsgd" and final.mean is not None:
                ref = base.stats["final_accuracy"]
                assert ref.mean is not None
                delta = (final.mean - ref.mean, exceeds(final, ref))
            out.append(
                {
                    "algorithm": algorithm,
                    "alpha": alpha,
                    "summary": summary,
                    "worst": worst_node(group),
                    "delta_vs_dsgd": delta,
                }
            )
    return out


def markdown(table: list[dict[str, Any]]) -> str:
    t = f"{TARGET:g}"
    header = ["α", "algorithm", "seeds", "final acc", "Δ vs dsgd", "worst node"]
    header += [f"rounds to {t}", f"MB/node to {t}", "consensus"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        s = row["summary"]
        delta = row["delta_vs_dsgd"]
        cells = [
            str(row["alpha"]),
            row["algorithm"],
            str(s.seeds),
            cell(s.stats["final_accuracy"], "{:.4f}"),
            "-" if delta is None else f"{delta[0]:+.4f}{' *' if delta[1] else ''}",
            cell(row["worst"], "{:.4f}"),
            target_cell(s.stats["rounds_to_target"], s.seeds, "{:.0f}"),
            target_cell(s.stats["bytes_to_target"], s.seeds, "{:.3g}", 1e-6),
            cell(s.stats["consensus_distance"], "{:.3g}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(table: list[dict[str, Any]]) -> str:
    fields = ["final_accuracy", "rounds_to_target", "bytes_to_target", "consensus_distance"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["algorithm", "alpha", "seeds", "target", "target_reached"]
        + [f"{f}_{s}" for f in fields for s in ("mean", "std")]
        + ["worst_node_accuracy_mean", "worst_node_accuracy_std"]
    )
    for row in table:
        s = row["summary"]
        values = [row["algorithm"], row["alpha"], s.seeds, TARGET, s.reached]
        for stat in [*(s.stats[f] for f in fields), row["worst"]]:
            values += ["" if stat.mean is None else stat.mean, "" if stat.std is None else stat.std]
        writer.writerow(values)
    return buffer.getvalue()


def plot_against_alpha(table: list[dict[str, Any]], path: Path) -> None:
    """Final mean and worst-node accuracy against α (log x), ± std over seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for algorithm in ORDER:
        pts = [r for r in table if r["algorithm"] == algorithm]
        xs = [float(r["alpha"]) for r in pts]
        panels = ([r["summary"].stats["final_accuracy"] for r in pts], [r["worst"] for r in pts])
        for ax, stats in zip(axes, panels, strict=True):
            ax.errorbar(
                xs,
                [s.mean for s in stats],
                yerr=[s.std or 0.0 for s in stats],
                marker="o",
                capsize=3,
                label=algorithm,
            )
    for ax, title in zip(axes, ("final test accuracy, mean over nodes", "worst node"), strict=True):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("Dirichlet α (← IID · non-IID →)")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("Ring of 16, MNIST subset, MLP 784-64-10, ± std over 3 seeds", fontsize=9)
    fig.savefig(path, dpi=120)


def main() -> None:
    runs_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    runs = load_runs(runs_dir)
    table = rows(runs)
    (HERE / "results.md").write_text(markdown(table))
    (HERE / "results.csv").write_text(csv_text(table))
    plot_against_alpha(table, HERE / "accuracy_vs_alpha.png")
    for alpha in ("0.05", "1.0"):
        subset = [r for r in runs if str(r["config"]["data.alpha"]) == alpha]
        if subset:
            title = f"Ring of 16, MNIST subset, Dirichlet({alpha}), ± std over seeds"
            plot(subset, ["algorithm"], HERE / f"accuracy_alpha{alpha}.png", "round", title=title)
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
