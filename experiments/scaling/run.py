"""The scaling study: seconds per round and peak memory of the simulation against N.

Runs ``measure.py`` once per (model, N, variant), each in a fresh process (peak RSS
only grows within a process), one after another, and writes ``results.csv``,
``results.md`` and ``scaling.png`` here. Variants:

* ``sim`` — dfl's simulation (evaluation in node chunks of ``dfl.evaluate.NODE_CHUNK``);
* ``sim_unchunked`` — the same with every node evaluated at once (the evaluation
  before node chunking), to measure what evaluation costs in memory;
* ``loop`` — the per-node-loop baseline of ``bench/sim_round.py`` (small N only);
* ``schedule`` — only the mixing schedule (the topology layer; a dense ``N × N`` W up
  to ``dfl.topology.graph.SPARSE_ABOVE`` nodes, a sparse one above).

A process whose resident memory passes ``--cap-gib`` is killed and recorded as
``over cap`` (the machine is shared: the cap keeps one measurement from taking it
all); one past ``--timeout`` seconds is recorded as ``timeout``. After a failure the
larger N of that (model, variant) are skipped.

Usage (from the repository root):
    python experiments/scaling/run.py [--cap-gib 10] [--timeout 600]
    python experiments/scaling/run.py --points logreg:sim:16384 mlp:sim_unchunked:4096

(``--points``: only those points, merged into the saved ``results.jsonl``.)
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLAN: list[tuple[str, str, list[int]]] = [
    ("logreg", "sim", [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536]),
    ("mlp", "sim", [16, 64, 256, 1024, 4096]),
    ("logreg", "loop", [16, 64, 256]),
    ("mlp", "loop", [16, 64, 256]),
    ("mlp", "sim_unchunked", [1024, 4096]),
    ("logreg", "schedule", [1024, 4096, 16384, 65536, 262144]),
]
"""(model, variant, node counts), measured in this order."""


def rounds_for(nodes: int) -> int:
    """Rounds of a ``sim`` measurement: records at R/2 and R, fewer rounds at large N."""
    return 100 if nodes <= 256 else 40 if nodes <= 1024 else 20


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def measure(model: str, variant: str, nodes: int, cap: int, timeout: float) -> dict[str, Any]:
    """One fresh process of ``measure.py``; its JSON row, or a row saying why there is none."""
    mode = variant if variant in ("loop", "schedule") else "sim"
    cmd = [sys.executable, str(HERE / "measure.py"), "--model", model, "--nodes", str(nodes)]
    cmd += ["--mode", mode, "--rounds", str(rounds_for(nodes))]
    if variant == "sim_unchunked":
        cmd += ["--node-chunk", str(2**31 - 1)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    status, seen = "ok", 0
    while proc.poll() is None:
        seen = max(seen, rss_bytes(proc.pid))
        if seen > cap:
            status = "over cap"
        elif time.perf_counter() - start > timeout:
            status = "timeout"
        if status != "ok":
            proc.kill()
            break
        time.sleep(0.1)
    out, err = proc.communicate()
    row: dict[str, Any] = {"model": model, "variant": variant, "nodes": nodes}
    if status == "ok" and proc.returncode == 0:
        row.update(json.loads(out.strip().splitlines()[-1]))
        row["variant"], row["status"] = variant, "ok"
    else:
        row["status"] = status if status != "ok" else f"exit {proc.returncode}"
        row["peak_rss_mib"] = seen / 2**20
        row["error"] = err.strip().splitlines()[-1] if err.strip() else ""
    row["wall_s"] = time.perf_counter() - start
    return row


FIELDS = [
    "model",
    "variant",
    "nodes",
    "status",
    "params_per_node",
    "train_round_s",
    "round_s",
    "eval_s",
    "peak_rss_mib",
    "state_mib",
    "data_mib",
    "batches_mib",
    "final_accuracy",
    "schedule_s",
    "w_mib",
    "load_1min",
    "wall_s",
    "error",
]


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """The row's CSV fields (array sizes in MiB)."""
    sizes = row.get("bytes", {})
    out = {k: row.get(k, "") for k in FIELDS}
    out["state_mib"] = sizes["state"] / 2**20 if sizes else ""
    out["data_mib"] = (sizes["train_data"] + sizes["test_data"]) / 2**20 if sizes else ""
    out["batches_mib"] = sizes["batches"] / 2**20 if sizes else ""
    out["w_mib"] = row["w_bytes"] / 2**20 if "w_bytes" in row else ""
    return out


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def fmt(value: Any, spec: str) -> str:
    return "-" if value in ("", None) else format(value, spec)


def status(row: dict[str, Any]) -> str:
    """``ok``, or the failure and the last line of its error (shortened)."""
    error = row.get("error") or ""
    return row["status"] if not error else f"{row['status']}: {error[:120]}"


def markdown(rows: list[dict[str, Any]]) -> str:
    header = (
        "| model | variant | N | status | train s/round | s/round (sim) | eval s | peak RSS MiB "
        "| state MiB | data MiB | W MiB | schedule s |"
    )
    lines = [header, "|" + "---|" * 12]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['variant']} | {row['nodes']} | {status(row)} "
            f"| {fmt(row['train_round_s'], '.4g')} | {fmt(row['round_s'], '.4g')} "
            f"| {fmt(row['eval_s'], '.3g')} | {fmt(row['peak_rss_mib'], '.0f')} "
            f"| {fmt(row['state_mib'], '.3g')} | {fmt(row['data_mib'], '.3g')} "
            f"| {fmt(row['w_mib'], '.0f')} | {fmt(row['schedule_s'], '.3g')} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Log-log: training seconds per round and peak RSS against N, one line per (model, variant)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_t, ax_m = fig.subplots(1, 2)
    for model, variant, _ in PLAN:
        done = [r for r in rows if (r["model"], r["variant"]) == (model, variant)]
        ok = [r for r in done if r["status"] == "ok"]
        # train s/round is clamped at 0 when the evaluation timed alone ran slower than the
        # one inside the timed rounds (machine load): such a point has no train time to plot
        timed = [r for r in ok if r["train_round_s"] != "" and r["train_round_s"] > 0]
        if timed:
            ns = [r["nodes"] for r in timed]
            ax_t.plot(ns, [r["train_round_s"] for r in timed], "o-", label=f"{model} {variant}")
        if ok:
            ns = [r["nodes"] for r in ok]
            ax_m.plot(ns, [r["peak_rss_mib"] for r in ok], "o-", label=f"{model} {variant}")
        for r in done:
            if r["status"] != "ok":
                ax_m.plot([r["nodes"]], [r["peak_rss_mib"]], "x", color="red", ms=9)
                oom = "RESOURCE_EXHAUSTED" in (r.get("error") or "")
                why = "out of memory" if oom else r["status"]
                ax_m.annotate(
                    f"{model} {variant}: {why}", (r["nodes"], r["peak_rss_mib"]), fontsize=7
                )
    for ax, title in ((ax_t, "seconds per training round"), (ax_m, "peak RSS (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("nodes N")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("D-SGD on a ring, Synthetic(1,1): one fresh process per point", fontsize=9)
    fig.savefig(path, dpi=120)


def key(row: dict[str, Any]) -> tuple[int, int]:
    """A row's place: its (model, variant)'s position in :data:`PLAN`, then N."""
    order = [(m, v) for m, v, _ in PLAN]
    return order.index((row["model"], row["variant"])), int(row["nodes"])


def write(rows: list[dict[str, Any]]) -> None:
    """``results.jsonl`` (the rows), ``results.csv``, ``results.md`` and ``scaling.png``."""
    rows = sorted(rows, key=key)
    (HERE / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (HERE / "results.csv").write_text(csv_text(rows))
    (HERE / "results.md").write_text(markdown(rows))
    plot(rows, HERE / "scaling.png")


def main() -> None:
    p = argparse.ArgumentParser(description="The scaling study: s/round and peak RSS vs N.")
    p.add_argument("--cap-gib", type=float, default=10.0, help="kill a process above this RSS")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    p.add_argument(
        "--points",
        nargs="+",
        default=None,
        metavar="MODEL:VARIANT:N",
        help="measure only these points and merge them into results.jsonl (default: the plan)",
    )
    p.add_argument(
        "--replot", action="store_true", help="only rewrite the files from results.jsonl"
    )
    args = p.parse_args()
    cap = int(args.cap_gib * 2**30)
    rows: list[dict[str, Any]] = []
    saved = HERE / "results.jsonl"
    if args.replot:
        write([json.loads(line) for line in saved.read_text().splitlines()])
    elif args.points:
        if saved.exists():
            rows = [json.loads(line) for line in saved.read_text().splitlines()]
        for point in args.points:
            model, variant, nodes = point.split(":")
            row = flat(measure(model, variant, int(nodes), cap, args.timeout))
            print(json.dumps(row), flush=True)
            rows = [r for r in rows if key(r) != key(row)] + [row]
            write(rows)
    else:
        for model, variant, node_counts in PLAN:
            for nodes in node_counts:
                row = flat(measure(model, variant, nodes, cap, args.timeout))
                rows.append(row)
                print(json.dumps(row), flush=True)
                write(rows)
                if row["status"] != "ok":
                    break
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
