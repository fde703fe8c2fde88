"""Turns the compression and privacy runs into tables and plots beside this file.

* ``results_compression.md`` and ``accuracy_vs_bytes.png``: D-SGD, D-SGD+EF and
  CHOCO-SGD with top_k / qsgd / sign, mean test accuracy against the cumulative
  bytes each node sent;
* ``results_privacy.md`` and ``accuracy_vs_epsilon.png``: DP-SGD at every node,
  final accuracy against the worst node's ε (one point per noise multiplier) and
  the non-private run as a horizontal line.

Usage (from the repository root, after the sweeps in README.md):
    python experiments/compression_privacy/analyze.py
"""

from __future__ import annotations

from pathlib import Path

from dfl.report import load_runs, markdown_table, plot

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"


def compression() -> None:
    by = ["algorithm.name", "compression.name"]
    runs = sorted(load_runs(RUNS / "compression"), key=lambda r: [str(r["config"][k]) for k in by])
    (HERE / "results_compression.md").write_text(markdown_table(runs, by))
    plot(
        runs,
        by,
        HERE / "accuracy_vs_bytes.png",
        "bytes_sent_per_node",
        title="MNIST subset, ring of 16 nodes: accuracy vs bytes sent",
    )


def privacy() -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = ["privacy.enabled", "privacy.noise_multiplier"]
    runs = load_runs(RUNS / "privacy")
    private = sorted(
        (r for r in runs if r["config"]["privacy.enabled"]),
        key=lambda r: r["records"][-1]["epsilon"],
    )
    public = [r for r in runs if not r["config"]["privacy.enabled"]]
    (HERE / "results_privacy.md").write_text(markdown_table([*private, *public], by))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    eps = [r["records"][-1]["epsilon"] for r in private]
    acc = [r["records"][-1]["test_accuracy_mean"] for r in private]
    ax.plot(
        eps,
        acc,
        marker="o",
        label="DP-SGD (σ = "
        + ", ".join(str(r["config"]["privacy.noise_multiplier"]) for r in private)
        + ")",
    )
    for r in public:
        ax.axhline(
            r["records"][-1]["test_accuracy_mean"], color="gray", ls="--", label="non-private"
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([1, 2, 5, 10, 20, 50])
    ax.set_xlabel("ε of the worst node (δ = 1e-5, RDP)")
    ax.set_ylabel("final mean test accuracy")
    ax.set_title("MNIST subset, ring of 16 nodes, D-SGD + DP-SGD, 300 rounds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "accuracy_vs_epsilon.png", dpi=120)
    plt.close(fig)


def main() -> None:
    compression()
    privacy()
    for name in ("results_compression.md", "results_privacy.md"):
        print((HERE / name).read_text())


if __name__ == "__main__":
    main()
