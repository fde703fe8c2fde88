"""Gossip cost: mixing alone per form at N ∈ {256, 1024}, and logistic regression at N = 1024.

**Mixing only.** The parameters of the MLP 784-256-10 (203,530 per node, float32)
stacked over N nodes are mixed by ``jax.jit(mixer.apply)`` with the input donated,
one call's output feeding the next as rounds do, for every (graph, form, blocking)
below; all variants of both sizes run round-robin in one process and the median is
reported. Graphs: the ring (Metropolis–Hastings), the one-peer exponential graph
(its offset changes every round: the data cycles through the period) and the static
directed exponential graph of Ying et al. 2021 (⌈log₂ N⌉ peers, uniform weights).
``block=auto`` is the default (cache-blocked and in place on one CPU device),
``block=none`` one fused pass over each leaf. It prints the cost per variant, the
ratio N = 1024 / N = 256 (linear scaling is 4×) and the speed-up of blocking.

**Logistic regression on digits, N = 1024.** sklearn's digits split IID over 1024
nodes, one SGD step on a batch of 32 per round, ring gossip: dfl's jitted round
(vmapped local step + gossip) against a Python loop over nodes calling one compiled
per-node step, mix and combine, as a process-per-node simulator would. Rounds per
second of both and their ratio (batch sampling excluded from both).

Every measurement is also printed as one JSON line: ``{"bench": "mixing", "nodes",
"graph", "form", "block", "seconds"}``, ``{"bench": "mixing_scaling", "graph",
"form", "block", "ratio"}`` and ``{"bench": "logreg_round", "nodes", "runner_s",
"loop_s", "runner_rounds_per_s", "loop_rounds_per_s", "loop_over_runner"}``.

Usage: ``python bench/gossip.py [--nodes 256 1024] [--reps 7] [--loop-reps 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import optax
from sim_round import Loop, schedule_of  # bench/ is on the path when run as a script

from dfl.algorithms import dsgd, local_update, value_and_grad
from dfl.data import load_digits
from dfl.data.batching import sample_batches
from dfl.data.federated import prepare
from dfl.gossip import make_mixer
from dfl.models import build_model
from dfl.sim.round import make_round, node_keys
from dfl.topology.schedule import MixingSchedule

FEATURES, HIDDEN, CLASSES = 784, 256, 10

VARIANTS: list[tuple[str, str, str | None]] = [
    ("ring", "circulant", "auto"),
    ("ring", "circulant", None),
    ("ring", "sparse", "auto"),
    ("ring", "segment", "auto"),
    ("one_peer_exponential", "circulant", "auto"),
    ("one_peer_exponential", "circulant", None),
    ("one_peer_exponential", "permutation", "auto"),
    ("exponential", "circulant", "auto"),
    ("exponential", "circulant", None),
    ("exponential", "sparse", "auto"),
]
"""(graph, form, block) of every mixing-only measurement."""


def mlp_params(n: int) -> dict[str, jax.Array]:
    """Random MLP 784-256-10 parameters stacked over ``n`` nodes (float32)."""
    keys = jax.random.split(jax.random.key(n), 4)
    shapes = [(FEATURES, HIDDEN), (HIDDEN,), (HIDDEN, CLASSES), (CLASSES,)]
    names = ["kernel0", "bias0", "kernel1", "bias1"]
    return {
        name: jax.random.normal(k, (n, *shape)) / 10
        for name, k, shape in zip(names, keys, shapes, strict=True)
    }


class Mixing:
    """One mixer applied to a shared, donated state, one round at a time."""

    def __init__(self, graph: str, form: str, block: str | None, n: int):
        self.schedule = schedule_of(graph, n)
        self.mixer = make_mixer(self.schedule, form=form, block=block)
        self.apply = jax.jit(self.mixer.apply, donate_argnums=(0,))
        self.t = 0

    def run_once(self, tree: Any) -> tuple[Any, float]:
        data = self.mixer.data(self.t)
        jax.block_until_ready(data)
        start = time.perf_counter()
        tree = jax.block_until_ready(self.apply(tree, data))
        self.t += 1
        return tree, time.perf_counter() - start


def bench_mixing(sizes: list[int], reps: int) -> list[dict]:
    """Median seconds of every variant of :data:`VARIANTS` at every size, interleaved."""
    trees = {n: mlp_params(n) for n in sizes}
    runs = {(n, *v): Mixing(*v, n) for n in sizes for v in VARIANTS}
    for key, run in runs.items():  # compile and warm up
        trees[key[0]], _ = run.run_once(trees[key[0]])
    times: dict[tuple, list[float]] = {key: [] for key in runs}
    for _ in range(reps):
        for key, run in runs.items():
            trees[key[0]], seconds = run.run_once(trees[key[0]])
            times[key].append(seconds)
    return [
        {
            "bench": "mixing",
            "nodes": n,
            "graph": graph,
            "form": form,
            "block": block or "none",
            "seconds": statistics.median(times[(n, graph, form, block)]),
        }
        for (n, graph, form, block) in runs
    ]


class Runner:
    """dfl's jitted round over all nodes (donated state)."""

    def __init__(self, algorithm, state, batches, schedule: MixingSchedule):
        self.mixer = make_mixer(schedule)
        self.fn = jax.jit(make_round(algorithm, self.mixer), donate_argnums=(0,))
        self.state, self.batches, self.t = state, batches, 0
        self.run_once()

    def run_once(self) -> float:
        data = self.mixer.data(self.t)
        jax.block_until_ready(data)
        start = time.perf_counter()
        self.state, info = self.fn(self.state, self.batches, data, jax.random.key(self.t))
        jax.block_until_ready((self.state, info))
        self.t += 1
        return time.perf_counter() - start


def bench_logreg(n: int, reps: int, loop_reps: int, batch: int = 32) -> dict:
    """Seconds per round of logistic regression on digits: runner vs per-node loop."""
    fed = prepare(load_digits(seed=0), num_nodes=n, scheme="iid", seed=0)
    model = build_model("logreg", input_shape=fed.feature_shape, num_classes=fed.num_classes)
    algorithm = dsgd(local_update(optax.sgd(0.1), value_and_grad(model.loss)))
    params = model.init(jax.random.key(0))
    state = jax.vmap(algorithm.init, in_axes=(None, 0))(params, node_keys(jax.random.key(1), n))
    batches = sample_batches(jax.random.key(2), fed.train, batch_size=batch, local_steps=1)
    schedule = schedule_of("ring", n)
    loop = Loop(algorithm, state, batches, schedule)
    runner = Runner(algorithm, jax.tree.map(jnp.copy, state), batches, schedule)
    times: dict[str, list[float]] = {"runner": [], "loop": []}
    for rep in range(reps):
        times["runner"].append(runner.run_once())
        if rep < loop_reps:
            times["loop"].append(loop.run_once())
    runner_s, loop_s = (statistics.median(times[k]) for k in ("runner", "loop"))
    return {
        "bench": "logreg_round",
        "nodes": n,
        "runner_s": runner_s,
        "loop_s": loop_s,
        "runner_rounds_per_s": 1 / runner_s,
        "loop_rounds_per_s": 1 / loop_s,
        "loop_over_runner": loop_s / runner_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--logreg-nodes", type=int, default=1024)
    parser.add_argument("--logreg-reps", type=int, default=20)
    parser.add_argument("--loop-reps", type=int, default=3)
    args = parser.parse_args()
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}")

    rows = bench_mixing(args.nodes, args.reps)
    cost = {(r["nodes"], r["graph"], r["form"], r["block"]): r["seconds"] for r in rows}
    small, large = min(args.nodes), max(args.nodes)
    print(f"\nmixing only, MLP {FEATURES}-{HIDDEN}-{CLASSES} params (ms, median of {args.reps})")
    head = "".join(f"{'N=' + str(n):>10}" for n in args.nodes)
    print(f"{'graph':<22}{'form':<13}{'block':<7}{head}{f'{large}/{small}':>11}")
    scaling = []
    for graph, form, block in VARIANTS:
        b = block or "none"
        ms = "".join(f"{1e3 * cost[(n, graph, form, b)]:>10.1f}" for n in args.nodes)
        ratio = cost[(large, graph, form, b)] / cost[(small, graph, form, b)]
        scaling.append(
            {"bench": "mixing_scaling", "graph": graph, "form": form, "block": b, "ratio": ratio}
        )
        print(f"{graph:<22}{form:<13}{b:<7}{ms}{ratio:>10.2f}×")
    print("\nblocked in place (auto) vs one fused pass (none), speed-up")
    for graph, form, block in VARIANTS:
        if block == "auto" and (small, graph, form, "none") in cost:
            gains = "".join(
                f"{cost[(n, graph, form, 'none')] / cost[(n, graph, form, 'auto')]:>9.1f}×"
                for n in args.nodes
            )
            print(f"{graph:<22}{form:<13}{'':<7}{gains}")

    logreg = bench_logreg(args.logreg_nodes, args.logreg_reps, args.loop_reps)
    print(
        f"\nlogistic regression on digits, N={logreg['nodes']}, ring, batch 32, one local step: "
        f"runner {logreg['runner_rounds_per_s']:.1f} rounds/s ({1e3 * logreg['runner_s']:.2f} ms), "
        f"per-node loop {logreg['loop_rounds_per_s']:.2f} rounds/s "
        f"({1e3 * logreg['loop_s']:.0f} ms): loop/runner {logreg['loop_over_runner']:.0f}×"
    )
    for record in [*rows, *scaling, logreg]:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
