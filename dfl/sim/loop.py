"""The simulation's compiled loop: the rounds between host-side events in one dispatch.

The per-round path (``sim.scan=false``, :func:`dfl.sim.runner.run_each`) pays on
every round, at N = 16 on digits (``+experiment=ring_dsgd_digits``; profile with
cProfile and timed components, 2-core CPU): two eager key derivations
(``Experiment.stream``: ``key`` + two ``fold_in`` each, ~0.15 ms each), the
sampler's dispatch (~0.3 ms with its wait), the round's dispatch, the eager
``dropped.sum()`` and ``+=`` (~0.1 ms), and on evaluated rounds a second and third
dispatch (evaluation) followed by six blocking device→host transfers (``float`` of
each metric, ~0.06 ms more than the evaluation itself). The round's own compute is
~0.65 ms and the evaluation's ~0.5 ms, so about a third of a round with
``eval_every=1`` and over a half with ``eval_every=10`` went to dispatch and host
work; host-side record building and writing are ~0.03 ms.

Here the rounds up to the next host-side event (a checkpoint, the end, or a
progress update about every :data:`CHUNK_SECONDS`) run as one jitted
``fori_loop``: batches are sampled inside from the round's key
(``fold_in(stream, t)``, as :meth:`dfl.sim.runner.Simulation.batches`), the
round's mixing data comes from a table of one period (``t mod period``; random
schedules get the chunk's rounds stacked on the host), evaluation runs under a
``lax.cond`` on the evaluated rounds, and each round's record fields land in
fixed-size device buffers (:data:`CHUNK_ROUNDS` rows, so no chunk length ever
recompiles) that are copied to the host once per chunk (replicated first where
the node axis is sharded, so every host holds them); the next chunk is dispatched
before the host reads them, so building and writing records overlaps the device.
Records are the per-round path's, value for value (``tests/sim/test_loop.py``;
``train_loss`` is a :func:`node_mean`, summed in the same order in every program),
except ``wall_time``: a chunk's rounds share its measured time evenly, and
``compile_time`` times the chunk's compilation.

Extra per-round fields: every scalar (0-d) entry of a round's ``info`` (the
per-node entries from the vmapped step have shape ``[N]``) goes into that round's
record under its own name, after the standard keys (:func:`record_fields`); both
paths take it from there.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dfl.experiment import ALGORITHM_STREAM, BATCH_STREAM
from dfl.metrics import is_eval_round
from dfl.network.round import record_fields as network_fields
from dfl.sim.byzantine import record_fields as byzantine_fields

if TYPE_CHECKING:  # the runner imports this module
    from dfl.checkpoint import Checkpointer
    from dfl.sim.runner import Counters, Simulation

CHUNK_ROUNDS = 1024
"""The most rounds one compiled chunk runs (its buffers' length)."""

CHUNK_SECONDS = 0.5
"""About how long a chunk runs before the host writes records and moves the progress bar."""

FIRST_CHUNK = 8
"""The first chunk's length, before the time per round is known."""


def record_fields(info: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """What a record takes from one round's ``info`` (jittable): ``train_loss`` and
    every scalar entry.

    ``train_loss`` is :func:`node_mean` of ``info["loss"]``. A 0-d entry is a
    round-level quantity (such as one a network model computes) and becomes a record
    field of its own; per-node entries (shape ``[N]``, e.g. ``residual``) are left out.
    """
    fields = {"train_loss": node_mean(info["loss"])}
    fields.update({k: v for k, v in info.items() if k != "loss" and jnp.ndim(v) == 0})
    fields.update(network_fields(info))  # a network model's per-node counters, reduced
    fields.update(byzantine_fields(info))  # the per-node flag counts, summed
    return fields


def node_mean(x: ArrayLike) -> jax.Array:
    """The mean of ``x``'s entries, summed pairwise by elementwise adds.

    A reduction may sum in another order in each program XLA compiles it into (a
    mean fused into the loop, and one dispatched on its own, differed in the last
    bit); elementwise adds of fixed pairs give every program the same sum.
    """
    x = jnp.ravel(jnp.asarray(x))
    n = x.shape[0]
    while x.shape[0] > 1:
        if x.shape[0] % 2:
            x = jnp.concatenate([x, jnp.zeros((1,), x.dtype)])
        x = x[0::2] + x[1::2]
    return x[0] / n


def is_eval_round_traced(t: jax.Array, rounds: jax.Array, eval_every: jax.Array) -> jax.Array:
    """:func:`dfl.metrics.is_eval_round` of 1-based round ``t``, traced."""
    return (t % eval_every == 0) | (t == rounds)


class ChunkGossip:
    """The mixing data and mean out-degree of every round, for compiled chunks.

    Periodic schedules (static ones have period 1) keep one period's mixer data
    stacked on device, indexed by ``t mod period`` inside the loop; random schedules
    stack each chunk's rounds on the host (padded to ``length`` rows) and index
    them by the round's place in its chunk.
    """

    def __init__(self, sim: Simulation, length: int):
        self.sim = sim
        self.length = length
        self.period: int | None = sim.exp.schedule.period
        self.degrees: dict[int, float] = {}
        self._period_table = None

    def table(self, start: int, count: int) -> Any:
        """The stacked mixer data for rounds ``start .. start + count - 1``."""
        if self.sim.mixer is None:
            return None
        if self.period is not None:
            if self._period_table is None:
                self._period_table = self._stack(range(self.period))
            return self._period_table
        rounds = list(range(start, start + count))
        return self._stack(rounds + [rounds[-1]] * (self.length - count))

    def _stack(self, rounds: Any) -> Any:
        rows = []
        for t in rounds:
            data, self.degrees[t] = self.sim.gossip(t)
            rows.append(data)
        return jax.tree.map(lambda *xs: jnp.stack(xs), *rows)

    def at(self, table: Any, t: jax.Array, i: jax.Array) -> Any:
        """Round ``t``'s mixer data (the ``i``-th round of its chunk) inside the loop."""
        if table is None:
            return None
        slot = i if self.period is None else t % self.period
        return jax.tree.map(lambda x: x[slot], table)

    def degree(self, t: int) -> float:
        """The mean out-degree of round ``t`` (the per-round path's ``sim.gossip(t)[1]``)."""
        if self.period is None:  # stacked with the chunk's table; used once
            return self.degrees.pop(t) if t in self.degrees else self.sim.gossip(t)[1]
        slot = t % self.period
        if slot not in self.degrees:
            self.degrees[slot] = self.sim.gossip(slot)[1]
        return self.degrees[slot]


def make_chunk(
    sim: Simulation,
    gossip: ChunkGossip,
    evaluation_zeros: dict[str, Any],
    replicated: jax.sharding.Sharding | None = None,
) -> Callable[..., Any]:
    """``chunk(state, dropped, start, count, rounds, eval_every, table, data)``, jitted.

    Runs rounds ``start .. start + count - 1`` (0-based; ``count ≤ gossip.length``)
    and returns ``(state, dropped, rows)``: ``dropped`` the DP-SGD examples cut so
    far, ``rows`` a dict of ``[gossip.length]`` buffers (row ``i``: round
    ``start + i``) holding :func:`record_fields`, the evaluation (zeros on rounds
    not evaluated) and the cumulative ``dp_dropped_examples``.
    ``table`` is :meth:`ChunkGossip.table`'s; ``data`` is ``(train, test,
    local_test)``, passed in so that no data set becomes a compile-time constant.
    ``replicated``: the layout ``dropped`` and ``rows`` are returned in (with a node
    axis sharded over hosts, every process must hold them whole).
    """
    exp = sim.exp
    base_batch, base_algorithm = exp.stream(BATCH_STREAM), exp.stream(ALGORITHM_STREAM)

    def chunk(state, dropped, start, count, rounds, eval_every, table, data):
        train, test, local_test = data
        view = dataclasses.replace(sim, train=train, test=test, local_test=local_test)

        def one_round(t, i, state):
            batches, cut = view.sample(jax.random.fold_in(base_batch, t), train)
            key = jax.random.fold_in(base_algorithm, t)
            state, info = sim.round_fn(state, batches, gossip.at(table, t, i), key)
            return state, record_fields(info), cut.sum()

        def body(i, carry):
            state, dropped, rows = carry
            t = start + i
            state, fields, cut = one_round(t, i, state)
            dropped = dropped + cut
            evaluated = jax.lax.cond(
                is_eval_round_traced(t + 1, rounds, eval_every),
                view.evaluation,
                lambda _: evaluation_zeros,
                state,
            )
            row = {**fields, **evaluated, "dp_dropped_examples": dropped}
            rows = {k: rows[k].at[i].set(v) for k, v in row.items()}
            return state, dropped, rows

        shapes = jax.eval_shape(lambda s: one_round(start, 0, s)[1], state)
        shapes.update(evaluation_zeros, dp_dropped_examples=dropped)
        rows = {k: jnp.zeros((gossip.length, *v.shape), v.dtype) for k, v in shapes.items()}
        state, dropped, rows = jax.lax.fori_loop(0, count, body, (state, dropped, rows))
        if replicated is not None:
            dropped, rows = jax.lax.with_sharding_constraint((dropped, rows), replicated)
        return state, dropped, rows

    return jax.jit(chunk, donate_argnums=(0,))


def replicated_like(state: Any) -> jax.sharding.Sharding | None:
    """A replicated layout on the mesh ``state`` is sharded over (``None``: no mesh)."""
    sharding = getattr(jax.tree.leaves(state)[0], "sharding", None)
    if isinstance(sharding, jax.sharding.NamedSharding):
        return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    return None


def chunk_end(round_: int, rounds: int, budget: int, saver: Checkpointer | None) -> int:
    """Where the chunk starting after ``round_`` rounds stops: at the next checkpoint,
    the end, or ``budget`` (≥ 1) rounds on, whichever comes first."""
    end = min(rounds, round_ + max(1, budget))
    if saver is not None:
        for r in range(round_ + 1, end):
            if saver.due(r, rounds):
                return r
    return end


@dataclasses.dataclass
class Dispatched:
    """A chunk handed to the device whose rows the host has not read yet.

    Attributes:
      first: rounds done before it.
      count: the rounds it runs.
      dispatched: when it was handed over (``time.perf_counter``).
      rows: its row buffers (device arrays, maybe not ready).
    """

    first: int
    count: int
    dispatched: float
    rows: Any


def run_scanned(
    sim: Simulation,
    state: Any,
    at: Counters,
    nbytes: int,
    *,
    record_of: Callable[..., dict[str, Any]],
    emit: Callable[[dict[str, Any]], None],
    advance: Callable[[int], None],
    saver: Checkpointer | None,
) -> tuple[Any, float]:
    """Runs rounds ``at.round .. cfg.rounds`` in compiled chunks; returns ``(state,
    compile_time)``.

    The next chunk is dispatched before the host reads the previous one's rows and
    builds its records, so the host's work overlaps the device's; a chunk that ends
    at a checkpoint is read and saved before the next one starts.

    Args:
      sim: the simulation.
      state: the stacked state after ``at.round`` rounds.
      at: the progress so far (updated in place as each chunk's records are built).
      nbytes: bytes of one message to one out-neighbour.
      record_of: ``record_of(round, wall_time=, compile_time=, fields=, evaluation=)``
        builds an evaluated round's record from ``at`` (as the per-round path does).
      emit: receives each record, in round order, once its chunk has finished.
      advance: receives the number of rounds each chunk ran (progress).
      saver: the checkpointer (``None``: no checkpoints); chunks end where it is due.
    """
    cfg = sim.exp.config
    data = (sim.train, sim.test, sim.local_test)
    start_time = time.perf_counter()
    shapes = jax.eval_shape(sim.evaluation, state)
    zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}
    gossip = ChunkGossip(sim, CHUNK_ROUNDS)
    chunk = make_chunk(sim, gossip, zeros, replicated_like(state))
    dropped = jnp.asarray(at.dropped, jnp.int32)
    limits = (jnp.int32(cfg.rounds), jnp.int32(cfg.eval_every))
    table = gossip.table(at.round, 1)
    compiled = chunk.lower(
        state, dropped, jnp.int32(at.round), jnp.int32(1), *limits, table, data
    ).compile()
    compile_time = time.perf_counter() - start_time
    last_done = time.perf_counter()  # when the device last finished a chunk (an estimate)

    def finish(job: Dispatched) -> float:
        """Reads ``job``'s rows, builds and emits its records; returns seconds per round."""
        nonlocal last_done
        rows = jax.device_get(job.rows)
        now = time.perf_counter()
        began = max(job.dispatched, last_done)
        fields = [k for k in rows if k not in zeros and k != "dp_dropped_examples"]
        for i, t in enumerate(range(job.first + 1, job.first + job.count + 1)):
            at.round, at.bytes_sent = t, at.bytes_sent + nbytes * gossip.degree(t - 1)
            at.dropped = int(rows["dp_dropped_examples"][i])
            if is_eval_round(t, cfg.rounds, cfg.eval_every):
                record = record_of(
                    t,
                    wall_time=began - start_time + (now - began) * (i + 1) / job.count,
                    compile_time=compile_time,
                    fields={k: rows[k][i] for k in fields},
                    evaluation={k: rows[k][i] for k in zeros},
                )
                emit(record)
        advance(job.count)
        last_done = now
        return max(now - began, 1e-9) / job.count

    planned, budget = at.round, FIRST_CHUNK  # rounds dispatched; the next chunk's length
    pending: Dispatched | None = None
    while planned < cfg.rounds or pending is not None:
        saving = pending is not None and saver is not None and saver.due(planned, cfg.rounds)
        launched = None
        if planned < cfg.rounds and not saving:
            end = chunk_end(planned, cfg.rounds, min(budget, gossip.length), saver)
            table = gossip.table(planned, end - planned)
            dispatched = time.perf_counter()
            first, count = jnp.int32(planned), jnp.int32(end - planned)
            state, dropped, rows = compiled(state, dropped, first, count, *limits, table, data)
            launched, planned = Dispatched(planned, end - planned, dispatched, rows), end
        if pending is not None:
            budget = max(1, int(CHUNK_SECONDS / finish(pending)))
            if saving and saver is not None:
                saver.save(at.round, state, meta=at.meta())
        pending = launched
    return state, compile_time
