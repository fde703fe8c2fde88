"""Time per round of dfl's runner against a bare jitted scan of the same rounds.

The default preset (``+experiment=ring_dsgd_digits``: 16 nodes on a ring, MLP
64-64-10 on digits, two local steps of batch 32) runs ``--rounds`` rounds with
``eval_every`` 1 and 10, in one process, repetitions interleaved, medians:

* ``scan``  — dfl's runner, ``sim.scan=true`` (the rounds between host-side events as
  one compiled loop, :mod:`dfl.sim.loop`): records (written to ``metrics.jsonl`` and
  ``.csv`` in a temporary directory), counters and progress bookkeeping included;
* ``each``  — the same runner with ``sim.scan=false`` (one dispatch per round);
* ``bare``  — one ``jax.jit`` of a ``lax.scan`` over the same rounds: the same batch
  sampler, the same jitted round (step → gossip → combine) and the same evaluation
  every ``eval_every`` rounds, nothing returned to the host but the metrics at the end.

Per-round time of the runner = (the last record's ``wall_time`` − ``compile_time``)
/ rounds; of ``bare``, one timed call (compiled beforehand) / rounds. Each runner
time is divided by the mean of the bare times measured just before and after it
(so that a change in a shared machine's load cancels), and the table shows the
medians of these ratios, ``scan/bare`` (target ≤ 1.25) and ``each/bare``, the
median times, and the 1-minute load average; one JSON line per ``eval_every``
follows.

Usage: ``python bench/scan.py [--rounds 300] [--reps 3] [--nodes 16]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp

from dfl.cli import instantiate_optimizer, to_config
from dfl.config.store import conf_dir, register
from dfl.experiment import ALGORITHM_STREAM, BATCH_STREAM
from dfl.metrics import MetricsWriter
from dfl.sim.runner import Counters, Simulation, build_experiment, build_simulation, run_rounds


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        return hydra_compose(config_name="config", overrides=overrides)


def runner_seconds(sim: Simulation, state, eval_every: int, scan: bool) -> float:
    """dfl's per-round time (compile excluded) with ``eval_every`` and ``sim.scan``."""
    cfg = sim.exp.config
    cfg = dataclasses.replace(
        cfg, eval_every=eval_every, sim=dataclasses.replace(cfg.sim, scan=scan)
    )
    sim = dataclasses.replace(sim, exp=dataclasses.replace(sim.exp, config=cfg))
    state = jax.tree.map(jnp.copy, state)  # the runner donates it
    first = sim.batches(0)
    with tempfile.TemporaryDirectory() as workdir, MetricsWriter(workdir) as writer:
        result = run_rounds(sim, state, Counters(), first, 0, writer=writer, saver=None, show=False)
    last = result.records[-1]
    return (last["wall_time"] - result.compile_time) / cfg.rounds


def make_bare(sim: Simulation, state, rounds: int, eval_every: int):
    """The bare reference: one jitted ``lax.scan`` of sampling, round and evaluation."""
    exp = sim.exp
    base_batch, base_algorithm = exp.stream(BATCH_STREAM), exp.stream(ALGORITHM_STREAM)
    w = sim.gossip(0)[0]

    def run(state, train, test):
        def one_round(state, t):
            batches, _ = sim.sample(jax.random.fold_in(base_batch, t), train)
            state, info = sim.round_fn(state, batches, w, jax.random.fold_in(base_algorithm, t))
            return state, info["loss"].mean()

        def period(state, t0):
            state, losses = jax.lax.scan(one_round, state, t0 + jnp.arange(eval_every))
            return state, (losses[-1], sim.evaluate(state, *test))

        starts = jnp.arange(rounds // eval_every) * eval_every
        return jax.lax.scan(period, state, starts)[1]

    return jax.jit(run).lower(state, sim.train, sim.test).compile()


def bare_seconds(compiled, state, sim: Simulation, rounds: int) -> float:
    jax.block_until_ready(state)
    start = time.perf_counter()
    jax.block_until_ready(compiled(state, sim.train, sim.test))
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=16)
    args = parser.parse_args()
    if args.rounds % 10:
        parser.error(f"--rounds={args.rounds} must be a multiple of 10")
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}")
    overrides = [
        "+experiment=ring_dsgd_digits",
        f"topology.n={args.nodes}",
        f"rounds={args.rounds}",
        "sim.progress=false",
    ]
    cfg = compose(overrides)
    exp = build_experiment(to_config(cfg), instantiate_optimizer(cfg))
    sim, state = build_simulation(exp, exp.config)
    rows = []
    for eval_every in (1, 10):
        bare = make_bare(sim, state, args.rounds, eval_every)
        times: dict[str, list[float]] = {"scan": [], "each": [], "bare": []}
        ratios: dict[str, list[float]] = {"scan": [], "each": []}
        for _ in range(args.reps):
            # Each runner time over the mean of the bare times just before and after it,
            # so that a change in the machine's load cancels in the ratio.
            before = bare_seconds(bare, state, sim, args.rounds)
            for name in ("scan", "each"):
                times[name].append(runner_seconds(sim, state, eval_every, scan=name == "scan"))
                after = bare_seconds(bare, state, sim, args.rounds)
                ratios[name].append(times[name][-1] / ((before + after) / 2))
                times["bare"].append(before)
                before = after
        row = {"nodes": args.nodes, "eval_every": eval_every, "load": os.getloadavg()[0]}
        row.update({f"{k}_s": statistics.median(v) for k, v in times.items()})
        row.update({f"{k}_ratio": statistics.median(v) for k, v in ratios.items()})
        rows.append(row)
    header = ("eval_every", "bare ms", "scan ms", "each ms", "scan/bare", "each/bare", "load")
    print(" ".join(f"{h:>10}" for h in header))
    for r in rows:
        print(
            f"{r['eval_every']:>10} {1e3 * r['bare_s']:>10.3f} {1e3 * r['scan_s']:>10.3f} "
            f"{1e3 * r['each_s']:>10.3f} {r['scan_ratio']:>10.2f} {r['each_ratio']:>10.2f} "
            f"{r['load']:>10.1f}"
        )
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
