"""Turns the study's runs into ``results.md`` and one accuracy-vs-round plot per topology.

Usage (from the repository root, after the sweep):
    python experiments/algorithms/analyze.py [RUNS_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from dfl.report import load_runs, markdown_table, plot

HERE = Path(__file__).resolve().parent
BY = ["topology.name", "algorithm.name"]


def main() -> None:
    runs_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    runs = sorted(load_runs(runs_dir), key=lambda r: [str(r["config"][k]) for k in BY])
    (HERE / "results.md").write_text(markdown_table(runs, BY))
    for topology in sorted({r["config"]["topology.name"] for r in runs}):
        subset = [r for r in runs if r["config"]["topology.name"] == topology]
        title = f"MNIST subset, 32 nodes, Dirichlet(0.1), {topology}"
        plot(subset, ["algorithm.name"], HERE / f"accuracy_{topology}.png", "round", title=title)
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
