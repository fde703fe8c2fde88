"""The simulation runner: all nodes in one process, one ``jax.jit`` per round."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dfl.checkpoint import checkpointers
from dfl.config.schema import Config
from dfl.evaluate import make_evaluate, make_local_evaluate
from dfl.experiment import (
    ALGORITHM_STREAM,
    BATCH_STREAM,
    Experiment,
    build_experiment,
    init_state,
    make_sampler,
)
from dfl.gossip import FORMS, make_mixer
from dfl.metrics import MetricsWriter, run_metadata
from dfl.metrics.display import print_table, round_progress, summary_table
from dfl.resume import restore_run
from dfl.sim.round import make_round, wire_bytes
from dfl.sim.sharding import node_mesh, node_sharding, replicate, shard_nodes
from dfl.transport.wire import header_nbytes


@dataclasses.dataclass
class Result:
    """What a simulation returns.

    Attributes:
      records: the metrics records, one per evaluated round.
      state: the final stacked algorithm state.
      experiment: the built experiment.
      compile_time: seconds spent compiling the round function.
    """

    records: list[dict[str, Any]]
    state: Any
    experiment: Experiment
    compile_time: float


def mean_out_degree(W: np.ndarray) -> float:
    """Mean over nodes of the number of other nodes that receive a node's message."""
    off = np.asarray(W) != 0
    np.fill_diagonal(off, False)
    return float(off.sum()) / W.shape[0]


def pick_mixer(exp: Experiment, kind: str):
    """The gossip operator for ``sim.gossip``.

    ``auto`` picks the fastest exact form for W's structure, a form name of
    :data:`dfl.gossip.FORMS` (``dense``, ``circulant``, ``permutation``, ``sparse``,
    ``segment``) forces that kernel, and ``identity`` skips the exchange.
    """
    if kind == "identity":
        return None
    if kind == "auto" or kind in FORMS:
        return make_mixer(exp.schedule, form=kind)
    raise ValueError(f"sim.gossip={kind!r}; expected 'auto', 'identity' or one of {sorted(FORMS)}")


def privacy_metrics(exp: Experiment, rounds: int, dropped: jax.Array | int) -> dict[str, Any]:
    """``epsilon`` (worst node), ``epsilon_per_node``, ``delta`` and the Poisson
    truncation count ``dp_dropped_examples`` after ``rounds`` rounds; ``{}`` without DP."""
    if exp.privacy is None:
        return {}
    eps = exp.privacy.epsilons(rounds)
    return {
        "epsilon": max(eps),
        "epsilon_per_node": eps,
        "delta": exp.privacy.config.delta,
        "dp_dropped_examples": int(dropped),
    }


def privacy_metadata(exp: Experiment) -> dict[str, Any]:
    """The resolved DP-SGD plan for ``metadata.json`` (``{}`` without DP)."""
    plan = exp.privacy
    if plan is None:
        return {}
    return {
        "privacy": {
            "noise_multiplier": plan.noise_multiplier,
            "sample_rates": list(plan.sample_rates),
            "max_batch": plan.max_batch,
            "accountant": plan.config.accountant,
            "sampling": plan.config.sampling,
            "delta": plan.config.delta,
        }
    }


def is_eval_round(round_: int, cfg: Config) -> bool:
    """Whether 1-based ``round_`` is evaluated: every ``eval_every`` and the last."""
    return round_ % cfg.eval_every == 0 or round_ == cfg.rounds


def simulate(
    cfg: Config,
    optimizer: optax.GradientTransformation,
    *,
    workdir: str | Path | None = None,
    progress: bool | None = None,
) -> Result:
    """Trains ``cfg.topology.n`` simulated nodes for ``cfg.rounds`` rounds.

    Args:
      cfg: the run's config.
      optimizer: the local optimizer (instantiated from ``cfg.optimizer``).
      workdir: where ``metrics.jsonl``, ``metrics.csv`` and ``metadata.json``
        go; ``None`` writes nothing.
      progress: show a progress bar (default: ``cfg.sim.progress``).

    Returns:
      The :class:`Result`.
    """
    exp = build_experiment(cfg, optimizer)
    fed = exp.federated
    mixer = pick_mixer(exp, cfg.sim.gossip)
    sample = make_sampler(exp)
    mesh = node_mesh(exp.n) if cfg.sim.shard_nodes else None
    # Sharded: pin every output (all have a leading node axis) to the node layout.
    round_fn = jax.jit(
        make_round(exp.algorithm, mixer),
        donate_argnums=(0,),
        out_shardings=None if mesh is None else node_sharding(mesh),
    )
    evaluate = jax.jit(make_evaluate(exp.algorithm, exp.model))
    evaluate_local = jax.jit(make_local_evaluate(exp.algorithm, exp.model))

    state = init_state(exp)
    train, test, local_test = fed.train, (fed.test_x, fed.test_y), fed.local_test
    if mesh is not None:
        state, train, local_test = shard_nodes((state, train, local_test), mesh)
        test = replicate(test, mesh)

    @functools.lru_cache(maxsize=1)
    def gossip_at(slot: int) -> tuple[Any, float]:
        """The mixer's data and the mean out-degree of round ``slot``."""
        if mixer is None:
            return None, 0.0
        return mixer.data(slot), mean_out_degree(exp.schedule.weights(slot))

    def gossip(round_: int) -> tuple[Any, float]:
        return gossip_at(round_ if exp.schedule.time_varying else 0)

    # Checkpoints (checkpoint.every) and resume=PATH: see dfl.checkpoint.
    saver, resume = checkpointers(cfg, Path(workdir) if workdir is not None else None, None)
    first_round, resumed_bytes, resumed_dropped = 0, 0.0, 0
    if resume is not None:
        state, saved = restore_run(resume, state, cfg.rounds, workdir, close=(saver, resume))
        first_round, resumed_bytes = int(saved["round"]), float(saved["bytes_sent_per_node"])
        resumed_dropped = int(saved.get("dp_dropped_examples", 0))

    one_node = jax.tree.map(lambda x: x[0], state)
    batches0, dropped0 = sample(exp.stream(BATCH_STREAM, 0), train)
    # What a transport carries per message and recipient: the payload plus frame headers.
    payload_bytes = wire_bytes(exp.algorithm, one_node, jax.tree.map(lambda x: x[0], batches0))
    message_bytes = payload_bytes + header_nbytes(payload_bytes, cfg.transport.chunk_bytes)

    writer = MetricsWriter(workdir, append=first_round > 0) if workdir is not None else None
    if workdir is not None:
        meta = run_metadata(
            cfg.seed,
            nodes=exp.n,
            mixing=exp.schedule.rule_name,
            message_bytes=message_bytes,
            node_sample_counts=np.asarray(fed.train.counts).tolist(),
            partition=fed.summary,
            **privacy_metadata(exp),
        )
        Path(workdir, "metadata.json").write_text(json.dumps(meta, indent=2))

    records: list[dict[str, Any]] = []
    bytes_sent = resumed_bytes
    dropped_total = jnp.asarray(resumed_dropped, jnp.int32)  # stays on device between evals
    show = cfg.sim.progress if progress is None else progress
    start = time.perf_counter()
    compiled = round_fn.lower(state, batches0, gossip(0)[0], exp.stream(ALGORITHM_STREAM, 0))
    compiled = compiled.compile()
    compile_time = time.perf_counter() - start
    with round_progress(enabled=show) as bar:
        task = bar.add_task("train", total=cfg.rounds, loss="-", acc="-")
        bar.update(task, completed=first_round)
        for t in range(first_round, cfg.rounds):
            if t == 0:
                batches, dropped = batches0, dropped0
            else:
                batches, dropped = sample(exp.stream(BATCH_STREAM, t), train)
            dropped_total += dropped.sum()
            w, out_degree = gossip(t)
            state, info = compiled(state, batches, w, exp.stream(ALGORITHM_STREAM, t))
            bytes_sent += message_bytes * out_degree
            if is_eval_round(t + 1, cfg):
                metrics = evaluate(state, *test)
                if local_test is not None:
                    metrics.update(evaluate_local(state, local_test))
                record = {
                    "round": t + 1,
                    "wall_time": time.perf_counter() - start,
                    "compile_time": compile_time,
                    "train_loss": float(info["loss"].mean()),
                    **{k: float(v) for k, v in metrics.items() if k != "accuracy"},
                    "bytes_sent_per_node": bytes_sent,
                    **privacy_metrics(exp, t + 1, dropped_total),
                }
                records.append(record)
                if writer is not None:
                    writer.write(record)
                bar.update(
                    task,
                    loss=f"{record['train_loss']:.4f}",
                    acc=f"{record['test_accuracy_mean']:.4f}",
                )
            bar.advance(task)
            if saver is not None and saver.due(t + 1, cfg.rounds):
                saved = {
                    "round": t + 1,
                    "bytes_sent_per_node": bytes_sent,
                    "dp_dropped_examples": int(dropped_total),
                }
                saver.save(t + 1, state, meta=saved)
    for ckpt in (saver, resume):
        if ckpt is not None:
            ckpt.close()
    if writer is not None:
        writer.close()
    return Result(records, state, exp, compile_time)


def print_summary(result: Result) -> None:
    """Prints the summary table of a finished run."""
    exp = result.experiment
    title = f"dfl: {exp.algorithm.name}"
    print_table(summary_table(result.records, title=title, notes=privacy_notes(exp)))


def privacy_notes(exp: Experiment) -> list[str]:
    """The summary's line on a calibrated σ (``privacy.target_epsilon``); ``[]`` otherwise."""
    plan = exp.privacy
    if plan is None or not plan.config.target_epsilon:
        return []
    c = plan.config
    return [
        f"privacy.noise_multiplier σ = {plan.noise_multiplier:.4f}, calibrated so that the worst "
        f"node ends at ε = {c.target_epsilon:g} (δ = {c.delta:g}, {c.accountant})"
    ]
