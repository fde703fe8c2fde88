"""The simulation runner: all nodes in one process, one ``jax.jit`` per round.

With ``sim.scan`` (the default) the rounds between host-side events run as one
compiled loop (:mod:`dfl.sim.loop`); ``sim.scan=false`` dispatches them one by one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse

from dfl.checkpoint import Checkpointer, checkpointers
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
from dfl.metrics import (
    MetricsWriter,
    is_eval_round,
    metrics_record,
    privacy_record,
    run_metadata,
)
from dfl.metrics.display import print_table, round_progress, summary_table
from dfl.metrics.writer import to_builtin
from dfl.network.round import algorithm_state as network_state
from dfl.network.sim import network_round
from dfl.resume import restore_run
from dfl.sim import byzantine
from dfl.sim.byzantine import byzantine_simulation, honest_accuracy
from dfl.sim.loop import record_fields, run_scanned
from dfl.sim.round import make_round, wire_bytes
from dfl.sim.sharding import node_mesh, node_sharding, replicate, shard_nodes
from dfl.transport.wire import framed_nbytes

FIELDS = jax.jit(record_fields)
"""A round's record fields (:func:`dfl.sim.loop.record_fields`) in one dispatch."""


def algorithm_state(state: Any) -> Any:
    """The algorithm's stacked state of a round state (a network model's carry or a
    Byzantine one, :mod:`dfl.network.round`, :mod:`dfl.sim.byzantine`, or none)."""
    return byzantine.algorithm_state(network_state(state))


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


def mean_out_degree(W: Any) -> float:
    """Mean over nodes of the number of other nodes that receive a node's message.

    ``W`` dense or ``scipy.sparse`` (a sparse schedule's ``stored`` matrix).
    """
    if scipy.sparse.issparse(W):
        C = scipy.sparse.coo_array(W)
        return float(np.count_nonzero((C.data != 0) & (C.coords[0] != C.coords[1]))) / W.shape[0]
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
    return privacy_record(exp.privacy.epsilons(rounds), exp.privacy.config.delta, int(dropped))


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


@dataclasses.dataclass
class Counters:
    """A simulation's cumulative counters between rounds (a checkpoint's metadata).

    Attributes:
      round: rounds completed.
      bytes_sent: cumulative ``bytes_sent_per_node``.
      dropped: DP-SGD Poisson examples cut so far (a device scalar between evaluations).
    """

    round: int = 0
    bytes_sent: float = 0.0
    dropped: Any = 0

    def meta(self) -> dict[str, Any]:
        """The checkpoint metadata of this point."""
        return {
            "round": self.round,
            "bytes_sent_per_node": self.bytes_sent,
            "dp_dropped_examples": int(self.dropped),
        }


@dataclasses.dataclass
class Simulation:
    """A built simulation: jitted functions, placed data and the gossip schedule.

    Attributes:
      exp: the experiment.
      round_fn: ``round(state, batches, w_data, key) -> (state, info)``, jitted.
      evaluate: the jitted :func:`dfl.evaluate.make_evaluate` function.
      evaluate_local: the jitted :func:`dfl.evaluate.make_local_evaluate` function.
      sample: the round's batch sampler (:func:`dfl.experiment.make_sampler`).
      train: the nodes' training data (sharded over nodes with ``sim.shard_nodes``).
      test: the global test set ``(x, y)``.
      local_test: the nodes' local test splits (``None``: none).
      gossip: ``gossip(round) -> (mixer data, mean out-degree)`` of that round.
      mixer: the gossip operator (``None``: ``sim.gossip=identity``).
      byzantine: ``bool [N]`` the attackers (``None``: an ordinary run); the round
        state is then a :class:`dfl.sim.byzantine.ByzantineCarried`.
    """

    exp: Experiment
    round_fn: Any
    evaluate: Callable[..., dict[str, jax.Array]]
    evaluate_local: Callable[..., dict[str, jax.Array]]
    sample: Callable[..., tuple[Any, jax.Array]]
    train: Any
    test: tuple[Any, Any]
    local_test: Any
    gossip: Callable[[int], tuple[Any, float]]
    mixer: Any = None
    byzantine: np.ndarray | None = None

    def batches(self, t: int) -> tuple[Any, jax.Array]:
        """Round ``t``'s batches of every node and the examples the DP batch cap cut."""
        return self.sample(self.exp.stream(BATCH_STREAM, t), self.train)

    def evaluation(self, state: Any) -> dict[str, jax.Array]:
        """The evaluation metrics of ``state`` (per-node ``accuracy`` left out)."""
        state = algorithm_state(state)
        metrics = self.evaluate(state, *self.test)
        if self.local_test is not None:
            metrics.update(self.evaluate_local(state, self.local_test))
        if self.byzantine is not None:
            metrics.update(honest_accuracy(metrics["accuracy"], self.byzantine))
        return {k: v for k, v in metrics.items() if k != "accuracy"}


def build_simulation(exp: Experiment, cfg: Config) -> tuple[Simulation, Any]:
    """The :class:`Simulation` of ``exp`` and its initial stacked state (placed on the mesh)."""
    mixer, robust = byzantine_simulation(exp, cfg) if exp.byzantine else (None, None)
    mixer = mixer or pick_mixer(exp, cfg.sim.gossip)
    mesh = node_mesh(exp.n) if cfg.sim.shard_nodes else None
    fed = exp.federated
    state = init_state(exp)
    # A network model (cfg.network not ideal): a masking mixer, carry = (state, network).
    if robust is not None and cfg.network.name != "ideal":
        raise ValueError(
            f"byzantine={cfg.byzantine.name!r} with network={cfg.network.name!r}: robust rules "
            "run on the gathered exchange, network models on the masked one; use network=ideal"
        )
    round_impl, mixer, state = network_round(exp, mixer, state)
    round_impl = round_impl or make_round(exp.algorithm, mixer, robust=robust)
    # Sharded: pin every output (all have a leading node axis) to the node layout.
    round_fn = jax.jit(
        round_impl,
        donate_argnums=(0,),
        out_shardings=None if mesh is None else node_sharding(mesh),
    )
    train, test, local_test = fed.train, (fed.test_x, fed.test_y), fed.local_test
    if mesh is not None:
        state, train, local_test = shard_nodes((state, train, local_test), mesh)
        test = replicate(test, mesh)
    sample = make_sampler(exp)
    if robust is not None:
        state = robust.carried(exp, state, sample, train)

    @functools.lru_cache(maxsize=1)
    def gossip_at(slot: int) -> tuple[Any, float]:
        """The mixer's data and the mean out-degree of round ``slot``."""
        if mixer is None:
            return None, 0.0
        return mixer.data(slot), mean_out_degree(exp.schedule.stored(slot))

    def gossip(round_: int) -> tuple[Any, float]:
        return gossip_at(round_ if exp.schedule.time_varying else 0)

    sim = Simulation(
        exp=exp,
        round_fn=round_fn,
        evaluate=jax.jit(make_evaluate(exp.algorithm, exp.model)),
        evaluate_local=jax.jit(make_local_evaluate(exp.algorithm, exp.model)),
        sample=sample,
        train=train,
        test=test,
        local_test=local_test,
        gossip=gossip,
        mixer=mixer,
        byzantine=None if exp.byzantine is None else exp.byzantine.byzantine,
    )
    return sim, state


def message_bytes(exp: Experiment, state: Any, batches: Any) -> int:
    """What a transport carries per message and recipient: the payload plus frame headers.

    ``state`` and ``batches`` are the stacked ones (node 0's shapes are used).
    """
    first = functools.partial(jax.tree.map, lambda x: x[0])
    payload = wire_bytes(exp.algorithm, first(algorithm_state(state)), first(batches))
    return framed_nbytes(payload, exp.config.transport.chunk_bytes)


def write_metadata(workdir: str | Path, exp: Experiment, message_bytes: int) -> None:
    """Writes the simulation's ``metadata.json`` into ``workdir``."""
    meta = run_metadata(
        exp.config.seed,
        nodes=exp.n,
        mixing=exp.schedule.rule_name,
        message_bytes=message_bytes,
        node_sample_counts=np.asarray(exp.federated.train.counts).tolist(),
        partition=exp.federated.summary,
        **privacy_metadata(exp),
        **(exp.byzantine.metadata() if exp.byzantine is not None else {}),
    )
    Path(workdir, "metadata.json").write_text(json.dumps(meta, indent=2))


def restore(
    resume: Checkpointer | None, state: Any, rounds: int, workdir: str | Path | None
) -> tuple[Any, Counters]:
    """``state`` and :class:`Counters` from the newest intact checkpoint of ``resume`` (if any).

    ``workdir``'s metrics are kept up to the restored round (:func:`dfl.resume.restore_run`).
    """
    if resume is None:
        return state, Counters()
    state, saved = restore_run(resume, state, rounds, workdir)
    return state, Counters(
        int(saved["round"]),
        float(saved["bytes_sent_per_node"]),
        int(saved.get("dp_dropped_examples", 0)),
    )


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
    sim, state = build_simulation(exp, cfg)
    # Checkpoints (checkpoint.every) and resume=PATH: see dfl.checkpoint.
    saver, resume = checkpointers(cfg, Path(workdir) if workdir is not None else None, None)
    writer = None
    try:
        state, at = restore(resume, state, cfg.rounds, workdir)
        first = sim.batches(0)
        nbytes = message_bytes(exp, algorithm_state(state), first[0])
        if workdir is not None:
            writer = MetricsWriter(workdir, append=at.round > 0, logger=cfg.logger)
            write_metadata(workdir, exp, nbytes)
        show = cfg.sim.progress if progress is None else progress
        return run_rounds(sim, state, at, first, nbytes, writer=writer, saver=saver, show=show)
    finally:
        for closing in (saver, resume, writer):
            if closing is not None:
                closing.close()


def run_rounds(
    sim: Simulation,
    state: Any,
    at: Counters,
    first: tuple[Any, jax.Array],
    nbytes: int,
    *,
    writer: MetricsWriter | None,
    saver: Checkpointer | None,
    show: bool,
) -> Result:
    """Compiles the rounds and runs them from ``at.round`` to ``cfg.rounds``.

    ``sim.scan`` (the default) runs the rounds between host-side events as one
    compiled loop (:func:`dfl.sim.loop.run_scanned`); ``sim.scan=false`` dispatches
    one round at a time (:func:`run_each`). Both write the same records.

    Args:
      sim: the simulation.
      state: the stacked state after ``at.round`` rounds.
      at: the progress so far (updated in place).
      first: round 0's batches and dropped counts (also the compile example).
      nbytes: bytes of one message to one out-neighbour.
      writer: where records go (``None``: only returned).
      saver: the checkpointer (``None``: no checkpoints).
      show: show a progress bar.
    """
    exp, cfg = sim.exp, sim.exp.config
    records: list[dict[str, Any]] = []

    def record_of(round_: int, *, wall_time, compile_time, fields, evaluation) -> dict[str, Any]:
        fields = dict(fields)  # dfl.sim.loop.record_fields of the round's info
        if "messages_sent" in fields:  # a network model: what online nodes sent
            at.bytes_sent = float(nbytes * int(fields.pop("messages_sent")) / exp.n)
        return metrics_record(
            round_,
            wall_time=wall_time,
            compile_time=compile_time,
            train_loss=fields.pop("train_loss"),
            evaluation=evaluation,
            bytes_sent_per_node=at.bytes_sent,
            **privacy_metrics(exp, round_, at.dropped),
            **{k: to_builtin(v) for k, v in fields.items()},
        )

    with round_progress(enabled=show) as bar:
        task = bar.add_task("train", total=cfg.rounds, loss="-", acc="-")
        bar.update(task, completed=at.round)

        def emit(record: dict[str, Any]) -> None:
            records.append(record)
            if writer is not None:
                writer.write(record)
            loss, acc = record["train_loss"], record["test_accuracy_mean"]
            bar.update(task, loss=f"{loss:.4f}", acc=f"{acc:.4f}")

        def advance(rounds: int) -> None:
            bar.advance(task, rounds)

        run = run_scanned if cfg.sim.scan else functools.partial(run_each, first=first)
        state, compile_time = run(
            sim, state, at, nbytes, record_of=record_of, emit=emit, advance=advance, saver=saver
        )
    return Result(records, algorithm_state(state), exp, compile_time)


def run_each(
    sim: Simulation,
    state: Any,
    at: Counters,
    nbytes: int,
    *,
    first: tuple[Any, jax.Array],
    record_of: Callable[..., dict[str, Any]],
    emit: Callable[[dict[str, Any]], None],
    advance: Callable[[int], None],
    saver: Checkpointer | None,
) -> tuple[Any, float]:
    """The per-round path (``sim.scan=false``): one jitted round per dispatch.

    Same arguments and result as :func:`dfl.sim.loop.run_scanned`, plus ``first``
    (round 0's batches and dropped counts, also the compile example).
    """
    exp, cfg = sim.exp, sim.exp.config
    at.dropped = jnp.asarray(at.dropped, jnp.int32)  # stays on device between evals
    start = time.perf_counter()
    lowered = sim.round_fn.lower(state, first[0], sim.gossip(0)[0], exp.stream(ALGORITHM_STREAM, 0))
    compiled = lowered.compile()
    compile_time = time.perf_counter() - start
    for t in range(at.round, cfg.rounds):
        batches, dropped = first if t == 0 else sim.batches(t)
        at.dropped += dropped.sum()
        w, out_degree = sim.gossip(t)
        state, info = compiled(state, batches, w, exp.stream(ALGORITHM_STREAM, t))
        at.round, at.bytes_sent = t + 1, at.bytes_sent + nbytes * out_degree
        if is_eval_round(at.round, cfg.rounds, cfg.eval_every):
            record = record_of(
                at.round,
                wall_time=time.perf_counter() - start,
                compile_time=compile_time,
                fields=FIELDS(info),
                evaluation=sim.evaluation(state),
            )
            emit(record)
        advance(1)
        if saver is not None and saver.due(at.round, cfg.rounds):
            saver.save(at.round, state, meta=at.meta())
    return state, compile_time


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
