"""Turns ``records.json`` (``run.py``) into ``results.md`` and accuracy-vs-simulated-time plots.

Usage (from the repository root): ``python experiments/network/analyze.py [TARGET]``
(``TARGET``: the accuracy of the time-to-accuracy column, default 0.8).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dfl.report import Run, summarize_run

HERE = Path(__file__).resolve().parent
STYLES = {"ideal": "-", "slow_uplink": "--", "drops": ":", "churn": "-."}
COLOURS = {"dsgd": "C0", "gradient_tracking": "C1", "choco_top_k": "C2"}


def time_to(records: list[dict], target: float) -> float | None:
    """Simulated seconds of the first evaluation with ``test_accuracy_mean >= target``
    (:func:`dfl.report.summarize_run`'s ``sim_seconds_to_target``)."""
    run = Run(dir=HERE, config={}, overrides={}, records=records)
    return summarize_run(run, target).sim_seconds_to_target


def table(runs: list[dict], target: float) -> str:
    head = (
        f"| topology | algorithm | network | acc mean | sim_time s | s/round | "
        f"time to {target:.0%} s | × ideal | missing | retransmissions |"
    )
    lines = [head, "|" + "---|" * 10]
    ideal = {
        (r["topology"], r["algorithm"]): time_to(r["records"], target)
        for r in runs
        if r["network"] == "ideal"
    }
    for r in runs:
        last = r["records"][-1]
        tta = time_to(r["records"], target)
        base = ideal.get((r["topology"], r["algorithm"]))
        ratio = f"{tta / base:.2f}" if tta is not None and base else "-"
        lines.append(
            f"| {r['topology']} | {r['algorithm']} | {r['network']} | "
            f"{last['test_accuracy_mean']:.3f} | {last['sim_time']:.1f} | "
            f"{last['sim_time'] / last['round']:.3f} | "
            f"{'not reached' if tta is None else f'{tta:.1f}'} | {ratio} | "
            f"{last['messages_missing']} | {last['retransmissions']} |"
        )
    return "\n".join(lines) + "\n"


def plots(runs: list[dict]) -> None:
    for topology in sorted({r["topology"] for r in runs}):
        fig, ax = plt.subplots(figsize=(8, 5))
        for r in (r for r in runs if r["topology"] == topology):
            t = [x["sim_time"] for x in r["records"]]
            acc = [x["test_accuracy_mean"] for x in r["records"]]
            ax.plot(
                t,
                acc,
                STYLES[r["network"]],
                color=COLOURS[r["algorithm"]],
                label=f"{r['algorithm']} / {r['network']}",
            )
        ax.set_xscale("log")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("test accuracy (mean over nodes)")
        ax.set_title(f"digits, logistic regression, 32 nodes, {topology}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        fig.savefig(HERE / f"accuracy_vs_time_{topology}.png", dpi=120)
        plt.close(fig)


def main() -> None:
    target = float(sys.argv[1]) if len(sys.argv) > 1 else 0.8
    runs = json.loads((HERE / "records.json").read_text())
    (HERE / "results.md").write_text(table(runs, target))
    plots(runs)
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
