"""One measurement of the scaling study, in this (fresh) process; prints one JSON line.

``--mode sim`` runs dfl's simulation (:func:`dfl.sim.runner.simulate`) of the composed
``study_scaling`` preset at ``topology.n=N`` for ``--rounds R`` rounds with a record at
``R/2`` and at ``R``, then times the evaluation alone. ``--mode schedule`` builds only the
mixing schedule (the topology layer). ``--mode loop`` times the per-node
loop baseline of ``bench/sim_round.py`` (one compiled per-node step and combine, called
in a Python loop) on the same experiment. Either way the line ends with the process's
peak resident set size, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.

Keys: ``mode``, ``model``, ``nodes``, ``params_per_node``, ``bytes`` (the arrays'
sizes: ``state``, ``train_data``, ``test_data``, ``batches``), ``setup_s`` (building the
data and the experiment), and

* ``sim``: ``round_s`` (wall seconds per round between the two records: batch
  sampling, the jitted round and one evaluation every ``R/2`` rounds, amortized),
  ``eval_s`` (one evaluation of every node's model on the global test set, timed
  alone), ``train_round_s`` (``round_s`` minus the amortized evaluation),
  ``compile_s``, ``final_accuracy``;
* ``loop``: ``train_round_s`` (median over ``--reps`` rounds of the loop, sampling
  and evaluation excluded);
* ``schedule``: ``schedule_s`` (building and validating the mixing schedule alone:
  the host-side topology, whose W is a dense ``N × N`` array up to
  ``dfl.topology.graph.SPARSE_ABOVE`` nodes and a ``csr_array`` above) and ``w_bytes``;
* ``peak_rss_mib``.

Usage (the study's run.py calls it once per N, each in a new process):
    python experiments/scaling/measure.py --model logreg --nodes 1024 [--mode sim|loop]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from hydra import compose, initialize_config_dir

from dfl.cli import instantiate_optimizer, to_config
from dfl.config.store import conf_dir, register
from dfl.evaluate import NODE_CHUNK, make_evaluate
from dfl.experiment import BATCH_STREAM, build_experiment, init_state, make_sampler
from dfl.sim import runner
from dfl.sim.runner import simulate
from dfl.topology import build_schedule

ROOT = Path(__file__).resolve().parents[2]


def compose_preset(model: str, nodes: int, rounds: int) -> Any:
    """The ``study_scaling`` preset with ``model``, ``nodes`` nodes and a record at R/2 and R."""
    register()
    overrides = [
        "+experiment=study_scaling",
        f"model={model}",
        f"topology.n={nodes}",
        f"rounds={rounds}",
        f"eval_every={max(rounds // 2, 1)}",
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        return compose(config_name="config", overrides=overrides)


def nbytes(tree: Any) -> int:
    """Total bytes of the arrays of a pytree."""
    return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)))


def sizes(exp: Any, state: Any, batches: Any) -> dict[str, int]:
    """Bytes of the stacked state, the nodes' training data, the test set, a round's batches."""
    fed = exp.federated
    return {
        "state": nbytes(state),
        "train_data": nbytes(fed.train),
        "test_data": nbytes((fed.test_x, fed.test_y)),
        "batches": nbytes(batches),
    }


def measure_sim(cfg: Any, rounds: int, node_chunk: int) -> dict[str, Any]:
    """Runs the simulation, then times one evaluation alone."""
    config = to_config(cfg)
    result = simulate(config, instantiate_optimizer(cfg), workdir=None, progress=False)
    exp, state = result.experiment, result.state
    half, last = result.records[0], result.records[-1]
    span = int(last["round"] - half["round"])
    round_s = (last["wall_time"] - half["wall_time"]) / span
    evaluate = jax.jit(make_evaluate(exp.algorithm, exp.model, node_chunk=node_chunk))
    test = (exp.federated.test_x, exp.federated.test_y)
    compiled = evaluate.lower(state, *test).compile()
    start = time.perf_counter()
    jax.block_until_ready(compiled(state, *test))
    eval_s = time.perf_counter() - start
    batches, _ = make_sampler(exp)(exp.stream(BATCH_STREAM, 0), exp.federated.train)
    return {
        "round_s": round_s,
        "eval_s": eval_s,
        "train_round_s": max(round_s - eval_s / span, 0.0),
        "compile_s": float(last["compile_time"]),
        "final_accuracy": float(last["test_accuracy_mean"]),
        "rounds": rounds,
        "params_per_node": nbytes(jax.tree.map(lambda x: x[0], exp.algorithm.params(state))) // 4,
        "bytes": sizes(exp, state, batches),
    }


def bench_loop() -> Any:
    """The ``Loop`` class of ``bench/sim_round.py`` (the existing per-node-loop baseline)."""
    path = ROOT / "bench" / "sim_round.py"
    spec = importlib.util.spec_from_file_location("sim_round", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load the per-node-loop baseline from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Loop


def measure_loop(cfg: Any, reps: int) -> dict[str, Any]:
    """Times the per-node loop of ``bench/sim_round.py`` on the preset's experiment."""
    Loop = bench_loop()
    exp = build_experiment(to_config(cfg), instantiate_optimizer(cfg))
    state = init_state(exp)
    batches, _ = make_sampler(exp)(exp.stream(BATCH_STREAM, 0), exp.federated.train)
    loop = Loop(exp.algorithm, state, batches, exp.schedule)  # compiles (one round)
    times = [loop.run_once() for _ in range(reps)]
    return {
        "train_round_s": statistics.median(times),
        "reps": reps,
        "params_per_node": nbytes(jax.tree.map(lambda x: x[0], exp.algorithm.params(state))) // 4,
        "bytes": sizes(exp, state, batches),
    }


def measure_schedule(cfg: Any) -> dict[str, Any]:
    """Builds (and validates) only the mixing schedule: the topology layer's own cost.

    ``w_bytes``: the stored W (a ``csr_array``'s three arrays when sparse).
    """
    config = to_config(cfg)
    start = time.perf_counter()
    schedule = build_schedule(config.topology, config.mixing, seed=config.seed)
    if schedule.sparse:  # a csr_array above SPARSE_ABOVE nodes
        S = schedule.sparse_weights(0)
        size = S.data.nbytes + S.indices.nbytes + S.indptr.nbytes
    else:
        size = schedule.weights(0).nbytes
    return {"schedule_s": time.perf_counter() - start, "w_bytes": int(size)}


def main() -> None:
    p = argparse.ArgumentParser(description="One measurement of the scaling study.")
    p.add_argument("--model", choices=["logreg", "mlp"], required=True)
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--mode", choices=["sim", "loop", "schedule"], default="sim")
    p.add_argument("--rounds", type=int, default=20, help="sim: rounds (records at R/2 and R)")
    p.add_argument("--reps", type=int, default=5, help="loop: timed rounds")
    p.add_argument(
        "--node-chunk",
        type=int,
        default=NODE_CHUNK,
        help="sim: nodes evaluated at once (a huge value: all at once, as before node chunks)",
    )
    args = p.parse_args()
    # The runner builds its evaluation with make_evaluate's defaults; pin node_chunk there.
    runner.make_evaluate = functools.partial(make_evaluate, node_chunk=args.node_chunk)
    start = time.perf_counter()
    cfg = compose_preset(args.model, args.nodes, args.rounds)
    row: dict[str, Any] = {"mode": args.mode, "model": args.model, "nodes": args.nodes}
    if args.mode == "sim":
        row.update(measure_sim(cfg, args.rounds, args.node_chunk))
        row["node_chunk"] = args.node_chunk
    elif args.mode == "loop":
        row.update(measure_loop(cfg, args.reps))
    else:
        row.update(measure_schedule(cfg))
    row["total_s"] = time.perf_counter() - start
    row["load_1min"] = os.getloadavg()[0]  # the machine is shared: how busy it was
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(row))


if __name__ == "__main__":
    main()
