"""Turns the topology study's runs into ``results.md``/``results.csv`` and its plots.

For each topology (at n = 32, as the sweep built it) the per-round contraction of
plain gossip comes from :func:`dfl.topology.diagnose`: ``rate_per_round`` is the SLEM
of W for a static graph and ``|λ₂(one period's product)|^(1/period)`` for a
time-varying one (0 for one-peer exponential and base-(k+1) at n = 32: their period
averages exactly). The accuracy columns are :func:`dfl.report.summarize`'s mean ± std
over seeds; ``Δ vs complete`` marks with ``*`` a difference larger than the two
groups' spreads added (their ±1 std intervals do not overlap).

Usage (from the repository root, after the sweep):
    python experiments/topology/analyze.py [RUNS_DIR]
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from dfl.cli import to_config
from dfl.config.store import conf_dir, register
from dfl.report import group_runs, load_runs, plot, summarize
from dfl.report.summary import GroupSummary, Stat
from dfl.report.table import cell, target_cell
from dfl.topology import build_schedule, diagnose

HERE = Path(__file__).resolve().parent
TARGET = 0.85
BY = ["topology", "data.alpha"]
ORDER = ["ring", "torus", "exponential_directed", "one_peer_exponential", "base_k", "complete"]


def contraction(topology: str) -> dict[str, Any]:
    """:func:`dfl.topology.diagnose` of the preset's schedule with ``topology``."""
    register()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        cfg = compose(
            config_name="config", overrides=["+experiment=study_topology", f"topology={topology}"]
        )
    config = to_config(cfg)
    return diagnose(build_schedule(config.topology, config.mixing, seed=config.seed))


def messages_per_round(info: dict[str, Any]) -> float:
    """Messages a node sends per round, averaged over the period (arcs / n)."""
    edges = info["edges"] if info["directed"] else 2 * info["edges"]
    return edges / info["n"]


def exceeds(a: Stat, b: Stat) -> bool:
    """Whether ``|mean_a − mean_b|`` is larger than ``std_a + std_b``."""
    if a.mean is None or b.mean is None:
        return False
    return abs(a.mean - b.mean) > (a.std or 0.0) + (b.std or 0.0)


def rows(runs: list[Any]) -> list[dict[str, Any]]:
    """One row per (topology, α): contraction, message count and the seeds' summary."""
    groups = {tuple(g.values): g for g in group_runs(runs, BY)}
    alphas = sorted({v[1] for v in groups}, key=float)
    infos = {t: contraction(t) for t in ORDER if any(v[0] == t for v in groups)}
    out = []
    for alpha in alphas:
        summaries: dict[str, GroupSummary] = {
            t: summarize(groups[(t, alpha)], TARGET) for t in infos if (t, alpha) in groups
        }
        reference = summaries.get("complete")
        for topology, summary in summaries.items():
            info = infos[topology]
            final = summary.stats["final_accuracy"]
            delta = None
            if reference is not None and topology != "complete":
                ref = reference.stats["final_accuracy"]
                if final.mean is not None and ref.mean is not None:
                    delta = (final.mean - ref.mean, exceeds(final, ref))
            out.append(
                {
                    "topology": topology,
                    "alpha": alpha,
                    "period": info["period"],
                    "slem": info["slem"],
                    "rate_per_round": info["rate_per_round"],
                    "messages_per_round": messages_per_round(info),
                    "summary": summary,
                    "delta_vs_complete": delta,
                }
            )
    return out


def markdown(table: list[dict[str, Any]]) -> str:
    """The results table (mean ± std over seeds)."""
    t = f"{TARGET:g}"
    header = [
        "topology",
        "α",
        "period",
        "rate/round",
        "msgs/node/round",
        "seeds",
        "final acc",
        "Δ vs complete",
        f"rounds to {t}",
        f"MB/node to {t}",
        "consensus",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        s: GroupSummary = row["summary"]
        delta = row["delta_vs_complete"]
        lines.append(
            "| "
            + " | ".join(
                [
                    row["topology"],
                    str(row["alpha"]),
                    str(row["period"]),
                    f"{row['rate_per_round']:.3f}",
                    f"{row['messages_per_round']:g}",
                    str(s.seeds),
                    cell(s.stats["final_accuracy"], "{:.4f}"),
                    "-" if delta is None else f"{delta[0]:+.4f}{' *' if delta[1] else ''}",
                    target_cell(s.stats["rounds_to_target"], s.seeds, "{:.0f}"),
                    target_cell(s.stats["bytes_to_target"], s.seeds, "{:.3g}", 1e-6),
                    cell(s.stats["consensus_distance"], "{:.3g}"),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def csv_text(table: list[dict[str, Any]]) -> str:
    """The results as CSV (bytes in bytes; empty where undefined)."""
    fields = ["final_accuracy", "rounds_to_target", "bytes_to_target", "consensus_distance"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["topology", "alpha", "period", "slem", "rate_per_round", "messages_per_round"]
        + ["seeds", "target", "target_reached"]
        + [f"{f}_{s}" for f in fields for s in ("mean", "std")]
    )
    for row in table:
        s: GroupSummary = row["summary"]
        values = [row[k] for k in ("topology", "alpha", "period", "slem", "rate_per_round")]
        values += [row["messages_per_round"], s.seeds, TARGET, s.reached]
        for f in fields:
            stat = s.stats[f]
            values += ["" if stat.mean is None else stat.mean, "" if stat.std is None else stat.std]
        writer.writerow(values)
    return buffer.getvalue()


def plot_against_contraction(table: list[dict[str, Any]], path: Path) -> None:
    """Final accuracy, rounds and MB/node to the target against the spectral gap 1 − rate."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = [
        ("final_accuracy", "final test accuracy (mean over nodes)", 1.0),
        ("rounds_to_target", f"rounds to {TARGET:g}", 1.0),
        ("bytes_to_target", f"MB sent per node to {TARGET:g}", 1e-6),
    ]
    for ax, (field, title, scale) in zip(axes, panels, strict=True):
        for alpha in sorted({r["alpha"] for r in table}, key=float):
            pts = [r for r in table if r["alpha"] == alpha]
            xs, ys, es = [], [], []
            for r in pts:
                stat = r["summary"].stats[field]
                if stat.mean is None:
                    continue
                xs.append(1.0 - r["rate_per_round"])
                ys.append(stat.mean * scale)
                es.append((stat.std or 0.0) * scale)
                ax.annotate(r["topology"], (xs[-1], ys[-1]), fontsize=6, alpha=0.7)
            ax.errorbar(xs, ys, yerr=es, marker="o", ls="none", capsize=3, label=f"α={alpha}")
        ax.set_xlabel("spectral gap 1 − per-round contraction")
        ax.set_ylabel(title)
        if field == "bytes_to_target":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"D-SGD, 32 nodes, MNIST subset, ± std over seeds; target {TARGET:g} (seeds reaching it)",
        fontsize=9,
    )
    fig.savefig(path, dpi=120)


def main() -> None:
    runs_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    runs = load_runs(runs_dir)
    table = rows(runs)
    (HERE / "results.md").write_text(markdown(table))
    (HERE / "results.csv").write_text(csv_text(table))
    plot_against_contraction(table, HERE / "vs_contraction.png")
    for alpha in sorted({r["alpha"] for r in table}, key=float):
        subset = [r for r in runs if str(r["config"]["data.alpha"]) == str(alpha)]
        title = f"D-SGD, MNIST subset, 32 nodes, Dirichlet({alpha}), ± std over seeds"
        plot(subset, ["topology"], HERE / f"accuracy_alpha{alpha}.png", "round", title=title)
        plot(
            subset,
            ["topology"],
            HERE / f"accuracy_vs_bytes_alpha{alpha}.png",
            "bytes_sent_per_node",
            title=title,
        )
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
