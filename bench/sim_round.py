"""Time per simulated round: dfl's runner vs the identity-gossip floor vs a per-node loop.

For N ∈ {16, 64, 256} nodes (MLP 784-256-10, batch 32 per node, one local step)
it measures, in one process with interleaved repetitions and medians
(``block_until_ready``; evaluation and batch sampling excluded; the order of the
variants rotates every repetition):

* ``runner``   — dfl's jitted round (vmapped local step + gossip) on a ring;
* ``floor``    — the same round with identity gossip (W = I, exchange skipped);
* ``loop``     — a Python loop over nodes calling one compiled per-node step and
  one compiled per-node combine, as a process-per-node simulator would;
* ``one_peer`` / ``exponential`` — the runner on the one-peer and the static
  exponential graph (Ying et al. 2021).

It prints the ratios runner/floor and loop/runner and ends with one JSON line per
N with the keys ``nodes``, ``runner_s``, ``floor_s``, ``loop_s``, ``ring_s``,
``one_peer_s``, ``exponential_s`` (seconds per round).

Usage: ``python bench/sim_round.py [--nodes 16 64 256] [--reps 20]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dfl.algorithms import dsgd, local_update, value_and_grad
from dfl.config import MixingConfig, TopologyConfig
from dfl.gossip import make_mixer
from dfl.models import build_model
from dfl.sim.round import make_round, node_keys
from dfl.topology import build_schedule

BATCH, FEATURES, CLASSES = 32, 784, 10


def setup(n: int):
    model = build_model("mlp", input_shape=(FEATURES,), num_classes=CLASSES, hidden=(256,))
    algorithm = dsgd(local_update(optax.sgd(0.05), value_and_grad(model.loss)))
    params = model.init(jax.random.key(0))
    state = jax.vmap(algorithm.init, in_axes=(None, 0))(params, node_keys(jax.random.key(1), n))
    kx, ky = jax.random.split(jax.random.key(2))
    batches = (
        jax.random.normal(kx, (n, 1, BATCH, FEATURES)),
        jax.random.randint(ky, (n, 1, BATCH), 0, CLASSES),
    )
    return algorithm, state, batches


def schedule_of(name: str, n: int):
    """The ring (Metropolis–Hastings), the one-peer exponential graph, or the static
    exponential graph of Ying et al. 2021: directed, ``⌈log₂ n⌉`` peers per node
    (8 at n = 256), uniform (doubly stochastic, circulant) weights."""
    if name == "one_peer_exponential":
        topology, mixing = TopologyConfig(name=name, n=n), "graph_defined"
    elif name == "exponential":
        topology, mixing = TopologyConfig(name=name, n=n, directed=True), "uniform"
    else:
        topology, mixing = TopologyConfig(name=name, n=n), "metropolis_hastings"
    return build_schedule(topology, MixingConfig(name=mixing), seed=0)


class Variant:
    """One way of running a round, timed one round at a time."""

    def __init__(self, algorithm, state, batches, schedule=None):
        self.mixer = None if schedule is None else make_mixer(schedule)
        self.schedule = schedule
        self.state, self.batches, self.t = state, batches, 0
        self.fn = jax.jit(make_round(algorithm, self.mixer), donate_argnums=(0,))
        self.run_once()  # compile

    def run_once(self) -> float:
        data = None if self.mixer is None else self.mixer.data(self.t)
        jax.block_until_ready(data)
        start = time.perf_counter()
        self.state, info = self.fn(self.state, self.batches, data, jax.random.key(self.t))
        jax.block_until_ready((self.state, info))
        self.t += 1
        return time.perf_counter() - start


class Loop:
    """A Python loop over nodes: one compiled per-node step, mix and combine."""

    def __init__(self, algorithm, state, batches, schedule):
        n = schedule.n
        self.W = schedule.weights(0)
        self.states = [jax.tree.map(lambda x, i=i: x[i], state) for i in range(n)]
        self.batches = [jax.tree.map(lambda x, i=i: x[i], batches) for i in range(n)]
        self.step = jax.jit(algorithm.step)
        self.combine = jax.jit(algorithm.combine)
        self.mix = jax.jit(
            lambda w, msgs: jax.tree.map(
                lambda *xs: sum(wi * x for wi, x in zip(w, xs, strict=True)), *msgs
            )
        )
        self.neighbours = [np.flatnonzero(self.W[i]) for i in range(n)]
        self.weights = [
            jnp.asarray(self.W[i, nbrs], jnp.float32) for i, nbrs in enumerate(self.neighbours)
        ]
        self.t = 0
        self.run_once()

    def run_once(self) -> float:
        start = time.perf_counter()
        wires = []
        for i, (state, batch) in enumerate(zip(self.states, self.batches, strict=True)):
            key = jax.random.fold_in(jax.random.key(self.t), i)
            self.states[i], wire, _ = self.step(state, batch, key)
            wires.append(wire)
        for i, nbrs in enumerate(self.neighbours):
            mixed = self.mix(self.weights[i], [wires[j] for j in nbrs])
            self.states[i] = self.combine(self.states[i], mixed)
        jax.block_until_ready(self.states)
        self.t += 1
        return time.perf_counter() - start


def bench(n: int, reps: int, loop_reps: int) -> dict:
    algorithm, state, batches = setup(n)
    copy = lambda: jax.tree.map(jnp.copy, state)  # noqa: E731  (donation consumes the state)
    variants = {
        "runner": Variant(algorithm, copy(), batches, schedule_of("ring", n)),
        "floor": Variant(algorithm, copy(), batches, None),
        "one_peer": Variant(algorithm, copy(), batches, schedule_of("one_peer_exponential", n)),
        "exponential": Variant(algorithm, copy(), batches, schedule_of("exponential", n)),
    }
    loop = Loop(algorithm, state, batches, schedule_of("ring", n))
    times: dict[str, list[float]] = {k: [] for k in [*variants, "loop"]}
    names = list(variants)
    for rep in range(reps):
        # Rotate the order every repetition so no variant always follows the loop.
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            times[name].append(variants[name].run_once())
        if rep < loop_reps:
            times["loop"].append(loop.run_once())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "nodes": n,
        "runner_s": med["runner"],
        "floor_s": med["floor"],
        "loop_s": med["loop"],
        "ring_s": med["runner"],
        "one_peer_s": med["one_peer"],
        "exponential_s": med["exponential"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--loop-reps", type=int, default=5)
    args = parser.parse_args()
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}")
    rows = [bench(n, args.reps, args.loop_reps) for n in args.nodes]
    print(
        f"{'N':>5} {'runner ms':>10} {'floor ms':>9} {'loop ms':>9} {'runner/floor':>13} "
        f"{'loop/runner':>12} {'one_peer/floor':>15} {'exp/floor':>10}"
    )
    for r in rows:
        print(
            f"{r['nodes']:>5} {1e3 * r['runner_s']:>10.2f} {1e3 * r['floor_s']:>9.2f} "
            f"{1e3 * r['loop_s']:>9.1f} {r['runner_s'] / r['floor_s']:>13.2f} "
            f"{r['loop_s'] / r['runner_s']:>12.1f} {r['one_peer_s'] / r['floor_s']:>15.2f} "
            f"{r['exponential_s'] / r['floor_s']:>10.2f}"
        )
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
