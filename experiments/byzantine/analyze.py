"""Turns the Byzantine study's runs into a table and a plot beside this file.

* ``results.md``: honest nodes' final test accuracy (mean ± std over seeds) for every
  attack × rule at b = 0, 1, 2 attackers, and the detector's flags (true / false
  positives) for plain gossip with detection;
* ``accuracy.png``: one panel per attack, honest accuracy against b, one line per rule.

Usage (from the repository root, after the sweeps in README.md):
    python experiments/byzantine/analyze.py
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from dfl.report import load_runs

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
RULES = ("none", "clipped_gossip", "trimmed_mean", "median")
ATTACKS = ("sign_flip", "alie", "dissensus")


def honest(run) -> float:
    last = run["records"][-1]
    return last.get("test_accuracy_honest_mean", last["test_accuracy_mean"])


def collect():
    """``(accuracy[(rule, attack, b)] -> [per seed], flags[(attack, b)] -> [(true, false)])``."""
    acc: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    flags: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for run in load_runs(RUNS):
        c = run["config"]
        b = len(c["byzantine.nodes"]) if c.get("byzantine.nodes") else int(c["byzantine.attackers"])
        attack = str(c["byzantine.attack"])
        if c.get("byzantine.b") is not None:  # a forced per-neighbourhood b (unsafe cells)
            attack = f"{attack}, b_rule={c['byzantine.b']}"
        last = run["records"][-1]
        if c["byzantine.detect"]:
            flags[(attack, b)].append(
                (last.get("byzantine_flagged_true", 0), last.get("byzantine_flagged_false", 0))
            )
            continue
        acc[(str(c["byzantine.name"]), attack, b)].append(honest(run))
    return acc, flags


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} ({len(values)})"


def table(acc, flags) -> str:
    lines = ["| b | attack | " + " | ".join(RULES) + " |", "|---|---|" + "---|" * len(RULES)]
    forced = [(2, f"{a}, b_rule=2") for a in ATTACKS if (RULES[1], f"{a}, b_rule=2", 2) in acc]
    for rule_row in [(0, "none")] + [(b, a) for b in (1, 2) for a in ATTACKS] + forced:
        b, attack = rule_row
        cells = [fmt(acc.get((r, attack, b), [])) for r in RULES]
        lines.append(f"| {b} | {attack} | " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n"
    if flags:
        out += (
            "\n| b | attack | flags true (per seed) | flags false (per seed) |\n|---|---|---|---|\n"
        )
        for (attack, b), pairs in sorted(flags.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            t = ", ".join(str(p[0]) for p in pairs)
            f = ", ".join(str(p[1]) for p in pairs)
            out += f"| {b} | {attack} | {t} | {f} |\n"
    return out


def plot(acc) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ATTACKS), figsize=(12, 3.8), sharey=True)
    for ax, attack in zip(axes, ATTACKS, strict=True):
        for rule in RULES:
            bs, means, sds = [], [], []
            for b in (0, 1, 2):
                vals = acc.get((rule, "none" if b == 0 else attack, b), [])
                if vals:
                    bs.append(b)
                    means.append(statistics.mean(vals))
                    sds.append(statistics.stdev(vals) if len(vals) > 1 else 0.0)
            ax.errorbar(bs, means, yerr=sds, marker="o", capsize=3, label=rule)
        ax.set_title(attack)
        ax.set_xlabel("attackers b")
        ax.set_xticks([0, 1, 2])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("honest nodes' final test accuracy")
    axes[-1].legend(fontsize=8)
    fig.suptitle("digits, torus of 25 (Metropolis-Hastings), Dirichlet α = 1, 60 rounds")
    fig.tight_layout()
    fig.savefig(HERE / "accuracy.png", dpi=120)
    plt.close(fig)


def main() -> None:
    acc, flags = collect()
    text = table(acc, flags)
    (HERE / "results.md").write_text(text)
    plot(acc)
    print(text)


if __name__ == "__main__":
    main()
