"""``python -m dfl.report RUNS_DIR [--by KEY ...] [--x round|bytes_sent_per_node|epsilon]``.

Collects the runs under ``RUNS_DIR`` (a Hydra multirun directory, or any folder
holding run directories with ``metrics.jsonl`` and ``config_resolved.yaml``),
and writes beside them:

* ``results.md`` — one row per run: the grouping keys, final mean/min test
  accuracy, the averaged model's accuracy, final consensus distance, MB sent
  per node, and ε where the run was private;
* ``accuracy.png`` — mean test accuracy against ``--x`` (rounds, cumulative
  bytes, or ε), one line per run.

``--by`` names dotted config keys that identify a run (default: the keys
whose values differ between runs). Runs with several seeds are listed
separately.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dfl.metrics import read_jsonl

COLUMNS = (
    ("test_accuracy_mean", "acc mean", "{:.4f}"),
    ("test_accuracy_min", "acc min", "{:.4f}"),
    ("test_accuracy_avg_model", "acc avg model", "{:.4f}"),
    ("consensus_distance", "consensus", "{:.3g}"),
    ("bytes_sent_per_node", "MB/node", "{:.2f}"),
    ("epsilon", "ε", "{:.2f}"),
)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run under ``root``: ``{"dir", "config" (flat), "records"}``, sorted by path."""
    runs = []
    for metrics in sorted(Path(root).rglob("metrics.jsonl")):
        config_file = metrics.parent / "config_resolved.yaml"
        if not config_file.exists():
            continue
        records = read_jsonl(metrics)
        if records:
            config = flatten(yaml.safe_load(config_file.read_text()))
            runs.append({"dir": metrics.parent, "config": config, "records": records})
    if not runs:
        raise FileNotFoundError(f"no runs with metrics.jsonl and config_resolved.yaml under {root}")
    return runs


def varying_keys(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys whose values differ between runs (ignoring output paths)."""
    keys = sorted({k for r in runs for k in r["config"]})
    return [
        k
        for k in keys
        if not k.startswith("hydra.") and len({repr(r["config"].get(k)) for r in runs}) > 1
    ]


def label(run: dict[str, Any], by: Sequence[str]) -> str:
    """``key=value`` pairs of ``by`` for one run (short key names)."""
    return " ".join(
        f"{k.split('.')[0] if k.endswith('.name') else k}={run['config'].get(k)}" for k in by
    )


def markdown_table(runs: Sequence[dict[str, Any]], by: Sequence[str]) -> str:
    """The results table of the final record of every run."""
    header = [*by, "rounds", *(title for _, title, _ in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        last = run["records"][-1]
        cells = [str(run["config"].get(k)) for k in by] + [str(last["round"])]
        for key, _, fmt in COLUMNS:
            value = last.get(key)
            if key == "bytes_sent_per_node" and value is not None:
                value = value / 1e6
            cells.append("-" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(
    runs: Sequence[dict[str, Any]], by: Sequence[str], path: Path, x: str, *, title: str = ""
) -> None:
    """Mean test accuracy against ``x`` for every run, one line each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for run in runs:
        recs = [r for r in run["records"] if r.get(x) is not None]
        xs = [r[x] / 1e6 if x == "bytes_sent_per_node" else r[x] for r in recs]
        ax.plot(xs, [r["test_accuracy_mean"] for r in recs], marker=".", label=label(run, by))
    ax.set_xlabel({"bytes_sent_per_node": "MB sent per node", "epsilon": "ε"}.get(x, x))
    ax.set_ylabel("mean test accuracy over nodes")
    if x in ("bytes_sent_per_node", "epsilon"):
        ax.set_xscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(
    root: str | Path,
    *,
    by: Sequence[str] | None = None,
    x: str = "round",
    out: str | Path | None = None,
) -> tuple[Path, Path]:
    """Writes ``results.md`` and ``accuracy.png`` for the runs under ``root``.

    Returns:
      The two paths written (in ``out``, default ``root``).
    """
    runs = load_runs(root)
    by = list(by) if by else varying_keys(runs)
    out = Path(out or root)
    out.mkdir(parents=True, exist_ok=True)
    table, figure = out / "results.md", out / "accuracy.png"
    table.write_text(markdown_table(runs, by))
    plot(runs, by, figure, x)
    return table, figure


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("runs_dir")
    parser.add_argument("--by", nargs="*", default=None, help="config keys naming a run")
    parser.add_argument("--x", default="round", help="round, bytes_sent_per_node or epsilon")
    parser.add_argument("--out", default=None, help="output folder (default: RUNS_DIR)")
    args = parser.parse_args(argv)
    try:
        table, figure = report(args.runs_dir, by=args.by, x=args.x, out=args.out)
    except FileNotFoundError as e:
        parser.exit(2, f"dfl: error: {e}\n")
    print(table.read_text())
    print(f"wrote {table} and {figure}")


if __name__ == "__main__":
    main()
