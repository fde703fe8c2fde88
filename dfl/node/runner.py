"""The node runner: one node's rounds over a real transport.

Round ``t`` at node ``i`` (the same keys and data as the simulation), step →
exchange → combine as in :mod:`dfl.sim.round`::

    batches = sample(fold_in(stream(BATCH, t), i), x_i, y_i, count_i)
    state, wire, info = step(state, batches, fold_in(stream(ALGORITHM, t), i))
    mixed = exchange.apply(wire, t)   # send to out-neighbours, receive by the deadline,
                                      # validate, decode, Σ_j W_ij message_j (missing rule)
    state = combine(state, mixed)

The node's clock (``wall_time``) starts before it compiles ``step`` and ``combine``
ahead of time (``compile_time``, part of ``wall_time``), as the simulation's does.

At evaluation rounds it writes its own metrics record (``metrics.jsonl``,
:func:`dfl.metrics.metrics_record`: its model's ``test_accuracy``; the
aggregates over nodes, ``test_accuracy_mean`` ... ``consensus_distance``, are
``None``: only the launcher sees every node) and its evaluated parameters
(``params/round_<r>.npz``) for the launcher to combine.

**Crash and rejoin.** With ``checkpoint.every = k`` the node saves its state,
round and counters every ``k`` rounds. A node killed (even with SIGKILL) and
restarted with ``resume=<its checkpoint dir>`` restores the last checkpoint
and runs from that round. If its neighbours moved on meanwhile (they treat its
silent rounds by their missing-message rule), it sees their frames for later
rounds, finishes the round it is in at once, and jumps to the neighbours'
current round, skipping the rounds it missed (``node.rejoin``): its state is
then that of its checkpoint, and every key is derived from the seed and the
round, so nothing else needs restoring (a Byzantine run's detector, previous
round's messages and flagged peers are saved and restored with it). It jumps
only when more than half of its in-neighbours over a schedule period are ahead,
only as far as they agree and as the time since it was last in step allows
(:mod:`dfl.node.rejoin`): one member's claimed round decides nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from dfl import data as dfl_data
from dfl.algorithms.base import MissingRule
from dfl.checkpoint import Checkpointer
from dfl.metrics import MetricsWriter, is_eval_round, metrics_record
from dfl.metrics.writer import continue_metrics
from dfl.network.deploy import node_schedule
from dfl.network.schedule import Schedule
from dfl.node.byzantine import NodeByzantine
from dfl.node.exchange import ExchangeCounts, NodeExchange
from dfl.node.finite import MixSeen, health, non_finite_error
from dfl.node.program import NodeProgram, senders_of
from dfl.node.rejoin import InStep, rejoin_target
from dfl.transport.base import Transport
from dfl.transport.faults import straggler_delay
from dfl.transport.quorum import agreed_round
from dfl.transport.wire import Kind

log = logging.getLogger("dfl.node")


class NodeCrashError(RuntimeError):
    """Raised by an injected crash (``transport.faults.crash_node``)."""


@dataclasses.dataclass
class Counters(ExchangeCounts):
    """A node's cumulative counters (checkpointed with its state).

    The exchange's message counters (:class:`~dfl.node.exchange.ExchangeCounts`:
    ``bytes_sent``, ``messages_sent``, ``messages_received``, ``messages_missing``
    — rejected ones included —, ``messages_rejected``, ``messages_late``) and:

    Attributes:
      bytes_received: bytes of valid wire-message frames that reached it
        (headers included), counted by its transport once validated, for the
        rounds it has done (a frame of a later round that came early counts from
        that round on).
      bytes_rejected: bytes of the frames it rejected (any kind or round; each
        frame's header and the chunk it could plausibly carry).
      rounds_skipped: rounds jumped over to rejoin the neighbours.
      dp_dropped_examples: DP-SGD only: Poisson-sampled examples cut by the batch cap.
    """

    bytes_received: int = 0
    bytes_rejected: int = 0
    rounds_skipped: int = 0
    dp_dropped_examples: int = 0


@dataclasses.dataclass
class NodeResult:
    """What one node's run returns.

    Attributes:
      node: the node id.
      state: its final algorithm state.
      records: the metrics records it wrote.
      counters: its final counters.
      rounds_run: rounds it ran in this process (skipped and restored ones excluded).
      compile_time: seconds compiling its round's phases ahead of the first round.
    """

    node: int
    state: Any
    records: list[dict[str, Any]]
    counters: Counters
    rounds_run: int
    compile_time: float


def save_params(path: Path, params: Any) -> None:
    """Writes a params pytree as ``.npz`` (keys are the leaves' paths; no pickle)."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    arrays = {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, allow_pickle=False, **arrays)
    tmp.replace(path)


def load_params(path: Path, like: Any) -> Any:
    """Reads :func:`save_params`' file into the structure of ``like``."""
    with np.load(path, allow_pickle=False) as f:
        flat, treedef = jax.tree_util.tree_flatten_with_path(like)
        return jax.tree.unflatten(treedef, [f[jax.tree_util.keystr(p)] for p, _ in flat])


def params_path(workdir: Path, round_: int) -> Path:
    """Where a node writes its evaluated parameters of 1-based ``round_``."""
    return workdir / "params" / f"round_{round_:06d}.npz"


class NodeRunner:
    """Runs one node over a transport.

    Args:
      program: the experiment's jitted per-node functions.
      node_id: this node.
      transport: its transport (``expect`` is called here).
      workdir: where metrics and evaluated params go (``None``: nowhere).
      checkpointer: saves every ``checkpoint.every`` rounds (``None``: never).
      resume: a checkpointer to restore from before the first round.
      crash_round: raise :class:`NodeCrashError` at the start of this round
        (fault injection; ``None``: never).
      stop_round: return (as if killed, nothing flushed but the files) at the
        start of this round (tests).
      on_round: ``on_round(rounds_done, info)`` after every round (progress).
      cancel: an event that stops the node at the next round.
      keep_params: keep the evaluated parameters of every evaluation round in
        :attr:`params_at` (in-process runs without a work directory).
      config: the run's config if it differs from the program's in run-time
        fields (``rounds``, ``eval_every``, ``node``, ``transport``, ``checkpoint``).
    """

    def __init__(
        self,
        program: NodeProgram,
        node_id: int,
        transport: Transport,
        *,
        workdir: str | Path | None = None,
        checkpointer: Checkpointer | None = None,
        resume: Checkpointer | None = None,
        crash_round: int | None = None,
        stop_round: int | None = None,
        on_round: Callable[[int, dict[str, Any]], None] | None = None,
        cancel: threading.Event | None = None,
        keep_params: bool = False,
        config: Any = None,
    ):
        self.program = program
        self.exp = program.exp
        self.cfg = config if config is not None else program.exp.config
        self.node = node_id
        self.transport = transport
        self.workdir = Path(workdir) if workdir is not None else None
        self.checkpointer = checkpointer
        self.resume = resume
        self.crash_round = crash_round
        self.stop_round = stop_round
        self.on_round = on_round
        self.cancel = cancel or threading.Event()
        self.counters = Counters()
        self._received_before = 0  # bytes_received of the run up to a restored checkpoint
        self._rejected_before = 0  # and bytes_rejected
        self._in_step = InStep(0, time.time())  # bounds how far a rejoin may skip
        self._refused: dict[int, int] = {}  # the last claims it refused to skip for
        self.records: list[dict[str, Any]] = []
        self.keep_params = keep_params
        self.params_at: dict[int, Any] = {}
        self._last_mix: MixSeen | None = None  # the previous round's, for the finite guard
        self.schedule: Schedule | None = None  # the replayed network schedule (network models)
        self.robust: NodeByzantine | None = None

    # -- state ---------------------------------------------------------------------

    def _restore(self, state: Any) -> tuple[Any, int]:
        assert self.resume is not None
        robust = self.robust
        like = None if robust is None else robust.checkpoint_like(self._message_like())
        state, extra, meta = self.resume.restore(state, like_extra=like)
        if robust is not None and extra is not None:
            # The detector, the previous round's messages and the flagged peers go on;
            # the transport (a new process's) is told again whom to refuse.
            block = getattr(self.transport, "block", None)
            for j in robust.restore(extra, meta.get("byzantine", {})):
                if block is not None:
                    block(j, revoke=self.exp.config.byzantine.revoke_flagged)
        saved = meta.get("counters", {})
        self.counters = Counters(
            **{k: int(v) for k, v in saved.items() if k in Counters.__dataclass_fields__}
        )
        start = int(meta["round"])
        # Its neighbours may have gone on without it since that checkpoint (no earlier).
        self._in_step = InStep(start, float(meta.get("time", 0.0)))
        log.info("node %d resumed from %s at round %d", self.node, self.resume.directory, start)
        return state, start

    def _count_received(self, rounds_done: int) -> Counters:
        """The counters, ``bytes_received`` updated from the transport for rounds
        ``0 .. rounds_done - 1``."""
        received = self.transport.received_bytes(Kind.WIRE, through_round=rounds_done - 1)
        self.counters.bytes_received = self._received_before + received
        self.counters.bytes_rejected = self._rejected_before + self.transport.rejected_bytes()
        return self.counters

    def _save(self, rounds_done: int, state: Any) -> None:
        assert self.checkpointer is not None
        self._count_received(rounds_done)
        meta = {
            "round": rounds_done,
            "node": self.node,
            "counters": dataclasses.asdict(self.counters),
            "time": time.time(),  # wall clock: bounds how far a resumed node may skip
        }
        extra = None
        if self.robust is not None:
            extra, meta["byzantine"] = self.robust.checkpoint(self._message_like())
        self.checkpointer.save(rounds_done, state, meta=meta, extra=extra)

    def _message_like(self) -> Any:
        """The layout of one decoded message (shape structs, nothing computed)."""
        state, batches, key = self.program.shapes
        _, wire, _ = jax.eval_shape(self.program.step, state, batches, key)
        return jax.eval_shape(self.program.decode, wire)

    # -- one round -----------------------------------------------------------------

    def _exchange(self) -> NodeExchange:
        node_cfg, algorithm = self.cfg.node, self.exp.algorithm
        if self.cfg.transport.down_after_missed < 0:
            raise ValueError(
                f"transport.down_after_missed={self.cfg.transport.down_after_missed}; "
                "expected a count of deadlines >= 0 (0: never down)"
            )
        return NodeExchange(
            node=self.node,
            schedule=self.exp.schedule,
            spec=self.program.spec,
            decode=self.program.decode,
            transport=self.transport,
            rule=algorithm.missing_rule,
            algorithm=algorithm.name,
            deadline_s=node_cfg.deadline_s,
            first_deadline_s=node_cfg.first_deadline_s,
            wait_timeout_s=node_cfg.wait_timeout_s,
            chunk_bytes=self.cfg.transport.chunk_bytes,
            counts=self.counters,
            down_after_missed=self.cfg.transport.down_after_missed,
            robust=self.robust,
            revoke_flagged=self.exp.config.byzantine.revoke_flagged,
        )

    def _byzantine(self) -> NodeByzantine | None:
        plan = self.exp.byzantine
        if plan is None:
            return None
        if self.cfg.network.name != "ideal":
            raise ValueError(
                f"byzantine={self.cfg.byzantine.name!r} with network={self.cfg.network.name!r}: "
                "robust rules and network models do not combine yet; use network=ideal"
            )
        if plan.byzantine[self.node] and self.cfg.compression.name != "identity":
            raise ValueError(
                "a deployed attacker sends attack messages as its wire: byzantine.attack needs "
                f"uncompressed messages, found compression={self.cfg.compression.name!r}"
            )
        return NodeByzantine(plan, self.exp.schedule, self.node, self.program.round_key)

    def _round(
        self,
        t: int,
        state: Any,
        data: Any,
        exchange: NodeExchange,
        delivered: set[int] | None = None,
    ):
        """Step → exchange → combine, as :func:`dfl.sim.round.make_round`."""
        program, phases = self.program, self.program.compile()
        batches, dropped = program.sample(program.batch_key(t, self.node), self.node, *data)
        if self.exp.privacy is not None:
            self.counters.dp_dropped_examples += int(dropped)
        state, wire, info = phases.step(state, batches, program.algorithm_key(t, self.node))
        mixed = exchange.apply(wire, t, delivered=delivered)
        state = phases.combine(state, mixed)
        self._check_finite(t, state, exchange)
        return state, info

    def _check_finite(self, t: int, state: Any, exchange: NodeExchange) -> None:
        """Stops the node (:class:`NonFiniteStateError`) once its state is not finite,
        naming the round and the messages mixed in this round and the one before."""
        plan = exchange.plan
        sources, messages = (plan.sources, plan.messages) if plan is not None else ([], [])
        finite, magnitudes = health(state, messages)
        seen = MixSeen(t, list(sources), magnitudes)
        if not bool(finite):
            mixes = [m for m in (self._last_mix, seen) if m is not None]
            error = non_finite_error(self.node, t, mixes)
            log.error("%s", error)
            raise error
        self._last_mix = seen

    def _rejoin_target(self, t: int, exchange: NodeExchange) -> int:
        """The round to jump to before round ``t`` (``t``: none), by
        :mod:`dfl.node.rejoin`'s rules; logs a jump, and once each claim it refuses."""
        members = exchange.members(t)
        claims = exchange.rejoin_claims(t)
        now = time.time()
        target = rejoin_target(
            t,
            members,
            claims,
            bound=self._in_step.bound(now, self.cfg.node.deadline_s),
            last_round=self.cfg.rounds - 1,
        )
        if target > t:
            log.warning(
                "node %d is behind its neighbours (at round %d; %d of its %d in-neighbours "
                "%s sent later rounds %s): skipping to round %d",
                self.node,
                t,
                len(claims),
                len(members),
                sorted(members),
                claims,
                target,
            )
        elif claims and max(claims.values()) > t + 1 and claims != self._refused:
            self._refused = dict(claims)
            log.warning(
                "node %d at round %d: not skipping for %s (%d of its %d in-neighbours %s; "
                "rejoining needs more than half of them, within the time since round %d)",
                self.node,
                t,
                claims,
                len(claims),
                len(members),
                sorted(members),
                self._in_step.round,
            )
        if agreed_round(t, members, claims) <= t:  # no majority ahead (one liar: still in step)
            self._in_step = InStep(t, now)
        return target

    # -- the run -------------------------------------------------------------------

    def run(self) -> NodeResult:
        """Runs the node to ``cfg.rounds`` (or its stop/crash round).

        Raises:
          NodeCrashError: at an injected crash.
          RuntimeError: under ``WAIT`` when a message never arrives.
          TransportClosedError: if the transport is closed under it (launcher stop).
          NonFiniteStateError: once its state is NaN/inf after a round (naming the
            round and the neighbours whose messages were mixed in).
        """
        cfg, program, exp = self.cfg, self.program, self.exp
        self.transport.expect(Kind.WIRE, program.spec, senders_of(exp.schedule, self.node))
        state = program.init(self.node)
        self.robust = self._byzantine()  # before a restore, which fills it in
        start = 0
        if self.resume is not None and self.resume.latest_step() is not None:
            state, start = self._restore(state)
            self._received_before = self.counters.bytes_received
            self._rejected_before = self.counters.bytes_rejected
        data = tuple(dfl_data.node_slice(exp.federated.train, self.node))
        began = time.perf_counter()  # before compiling, as the simulation's clock
        program.compile()
        compile_time = time.perf_counter() - began
        exchange = self._exchange()
        writer = None
        if self.workdir is not None:
            if start > 0:  # a resumed node's records go on from its checkpoint's round
                continue_metrics(self.workdir, start)
            writer = MetricsWriter(self.workdir, append=start > 0)
        t, rounds_run = start, 0
        last_round_sent = start - 1
        # A network model (network not ideal): delivery, churn and clocks replayed
        # from its schedule (dfl.network.deploy), never from wall-clock timing.
        self.schedule = node_schedule(cfg, exp, program.spec.nbytes)
        masked = self.schedule is not None and exp.algorithm.missing_rule != MissingRule.WAIT
        info: dict[str, Any] = {"loss": float("nan")}  # an offline node's before its first round
        try:
            while t < cfg.rounds:
                if self.cancel.is_set() or t == self.stop_round:
                    break
                if t == self.crash_round:
                    raise NodeCrashError(f"node {self.node}: injected crash at round {t}")
                delay = straggler_delay(cfg.transport.faults, self.node, t)
                if delay > 0:
                    time.sleep(delay)
                sched = self.schedule
                if masked and sched is not None and not sched.online[t, self.node]:
                    t += 1  # offline: no step, no message; the state stays as it was
                    if is_eval_round(t, cfg.rounds, cfg.eval_every):
                        self._evaluate(t, state, info, began, compile_time, writer)
                    continue
                delivered = sched.senders(t, self.node) if masked and sched is not None else None
                state, info = self._round(t, state, data, exchange, delivered)
                last_round_sent = t
                rounds_run += 1
                t += 1
                if is_eval_round(t, cfg.rounds, cfg.eval_every):
                    self._evaluate(t, state, info, began, compile_time, writer)
                if self.checkpointer is not None and self.checkpointer.due(t, cfg.rounds):
                    self._save(t, state)
                if self.on_round is not None:
                    self.on_round(t, {"loss": float(info["loss"])})
                # Under a network schedule peers run ahead legitimately (masked messages).
                if cfg.node.rejoin and self.schedule is None and t < cfg.rounds:
                    target = self._rejoin_target(t, exchange)
                    if target > t:
                        self.counters.rounds_skipped += target - t
                        t = target
            if t >= cfg.rounds:
                exchange.goodbye(last_round_sent)
        finally:
            if writer is not None:
                writer.close()
        return NodeResult(self.node, state, self.records, self.counters, rounds_run, compile_time)

    def _network_fields(self, round_: int) -> dict[str, Any]:
        """The schedule's ``sim_time`` (this node's clock), ``retransmissions`` (of its
        received messages) and ``nodes_online`` after 1-based ``round_`` (``{}``: ideal)."""
        sched = self.schedule
        if sched is None:
            return {}
        return {
            "sim_time": float(sched.clock[round_ - 1, self.node]),
            "retransmissions": int(sched.retransmissions[round_ - 1, self.node]),
            "nodes_online": int(sched.online[round_ - 1].sum()),
        }

    def _evaluate(
        self,
        round_: int,
        state: Any,
        info: dict,
        began: float,
        compile_time: float,
        writer: MetricsWriter | None,
    ) -> None:
        fed = self.exp.federated
        acc = float(self.program.accuracy(state, fed.test_x, fed.test_y))
        c = self._count_received(round_)
        privacy = {}
        if self.exp.privacy is not None:
            privacy = {
                "epsilon": self.exp.privacy.epsilons(round_)[self.node],
                "delta": self.exp.privacy.config.delta,
                "dp_dropped_examples": c.dp_dropped_examples,
            }
        # Only its own model: the aggregates over nodes are the launcher's (None here).
        record = metrics_record(
            round_,
            wall_time=time.perf_counter() - began,
            compile_time=compile_time,
            train_loss=info["loss"],
            evaluation={"test_accuracy": acc},
            bytes_sent_per_node=c.bytes_sent,
            bytes_received_per_node=float(c.bytes_received),
            node=self.node,
            messages_sent=c.messages_sent,
            messages_received=c.messages_received,
            messages_missing=c.messages_missing,
            messages_rejected=c.messages_rejected,
            messages_late=c.messages_late,
            bytes_rejected=c.bytes_rejected,
            rounds_skipped=c.rounds_skipped,
            **privacy,
            **self._network_fields(round_),
            **(self.robust.record() if self.robust is not None else {}),
        )
        self.records.append(record)
        if self.keep_params:
            self.params_at[round_] = self.program.params(state)
        if writer is not None and self.workdir is not None:
            save_params(params_path(self.workdir, round_), self.program.params(state))
            writer.write(record)
