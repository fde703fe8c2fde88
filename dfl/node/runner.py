"""The node runner: one node's rounds over a real transport.

Round ``t`` at node ``i`` (the same keys and data as the simulation)::

    batches = sample(fold_in(stream(BATCH, t), i), x_i, y_i, count_i)
    state, wire, info = step(state, batches, fold_in(stream(ALGORITHM, t), i))
    send wire to every out-neighbour j (W[j, i] > 0)
    receive the in-neighbours' wires of round t until the deadline, validate, decode
    mixed = Σ_j W_ij decode(wire_j)         (missing-message rule where one is absent)
    state = combine(state, mixed)

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
round, so nothing else needs restoring.
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
import jax.numpy as jnp
import numpy as np

from dfl import data as dfl_data
from dfl.algorithms.base import MissingRule
from dfl.checkpoint import Checkpointer
from dfl.metrics import MetricsWriter, is_eval_round, metrics_record
from dfl.node.exchange import plan_mix
from dfl.node.program import NodeProgram, in_neighbours, out_neighbours, senders_of
from dfl.transport.base import Transport
from dfl.transport.faults import straggler_delay
from dfl.transport.wire import Kind, WireSpec, encode_payload

log = logging.getLogger("dfl.node")

BYE_HISTORY = 8
"""Rounds back whose out-neighbours get the end-of-run notice (time-varying graphs)."""


class NodeCrashError(RuntimeError):
    """Raised by an injected crash (``transport.faults.crash_node``)."""


@dataclasses.dataclass
class Counters:
    """A node's cumulative message counters (checkpointed with its state).

    Attributes:
      bytes_sent: bytes of its wire messages on the wire (headers included).
      bytes_received: bytes of wire-message frames that reached it (headers
        included), counted by its transport as they arrive, for the rounds it has
        done (a frame of a later round that came early counts from that round on).
      messages_sent: wire messages sent (one per out-neighbour and round).
      messages_received: valid wire messages used.
      messages_missing: in-neighbour messages absent at the deadline (rejected ones included).
      messages_rejected: frames or messages rejected by validation (malformed,
        corrupted, foreign, non-finite, ...).
      messages_late: valid messages that arrived after their round was closed
        (they were counted missing then; a straggler's or a delayed link's).
      messages_reused: missing messages replaced by the neighbour's last one.
      rounds_skipped: rounds jumped over to rejoin the neighbours.
      dp_dropped_examples: DP-SGD only: Poisson-sampled examples cut by the batch cap.
    """

    bytes_sent: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    messages_missing: int = 0
    messages_rejected: int = 0
    messages_late: int = 0
    messages_reused: int = 0
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
      compile_time: seconds of its warm-up (compilation).
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
        self.last: dict[int, Any] = {}
        self.records: list[dict[str, Any]] = []
        self.dependents: list[int] = []
        self.keep_params = keep_params
        self.params_at: dict[int, Any] = {}

    # -- state ---------------------------------------------------------------------

    def _restore(self, state: Any) -> tuple[Any, int]:
        assert self.resume is not None
        meta = self.resume.read_meta()
        peers = [int(p) for p in meta.get("reuse_peers", [])]
        like_extra = None
        if peers:
            template = self.program.decode(
                self.program.spec.unflatten(
                    [
                        np.zeros(s, d)
                        for s, d in zip(
                            self.program.spec.shapes, self.program.spec.dtypes, strict=True
                        )
                    ]
                )
            )
            like_extra = {str(p): template for p in peers}
        state, extra, meta = self.resume.restore(state, like_extra=like_extra)
        if extra:
            self.last = {int(p): m for p, m in extra.items()}
        saved = meta.get("counters", {})
        self.counters = Counters(
            **{k: int(v) for k, v in saved.items() if k in Counters.__dataclass_fields__}
        )
        start = int(meta["round"])
        log.info("node %d resumed from %s at round %d", self.node, self.resume.directory, start)
        return state, start

    def _count_received(self, rounds_done: int) -> Counters:
        """The counters, ``bytes_received`` updated from the transport for rounds
        ``0 .. rounds_done - 1``."""
        received = self.transport.received_bytes(Kind.WIRE, through_round=rounds_done - 1)
        self.counters.bytes_received = self._received_before + received
        return self.counters

    def _save(self, rounds_done: int, state: Any) -> None:
        assert self.checkpointer is not None
        self._count_received(rounds_done)
        meta = {
            "round": rounds_done,
            "node": self.node,
            "counters": dataclasses.asdict(self.counters),
            "reuse_peers": sorted(self.last),
        }
        extra = {str(p): m for p, m in sorted(self.last.items())} or None
        self.checkpointer.save(rounds_done, state, meta=meta, extra=extra)

    # -- one round -----------------------------------------------------------------

    def _receive(self, t: int, peers: list[int], dependents: list[int], first: bool):
        """Waits for the in-neighbours' messages of round ``t``.

        A node still waiting after half its deadline tells ``dependents`` (who
        wait for its next message) with a ``WAITING`` notice every half deadline,
        and gives a neighbour that does the same a deadline from its latest
        notice: a lost message delays only the nodes that wait for it, instead
        of each neighbour timing out on the delayed node in turn. A crashed node
        sends no notice, so its neighbours stop waiting at their deadline. The
        wait never exceeds ``node.wait_timeout_s``.
        """
        node_cfg = self.cfg.node
        rule = self.exp.algorithm.missing_rule
        wait = node_cfg.first_deadline_s if first else node_cfg.deadline_s
        now = time.monotonic()
        hard = now + max(wait, node_cfg.wait_timeout_s)
        deadline = hard if rule == MissingRule.WAIT else now + wait
        # Neighbours give a notice node.deadline_s of patience (extend), also while
        # this node waits out a longer first-round deadline: notice at their pace.
        notice_every = min(wait, node_cfg.deadline_s) / 2
        notice_at = now + notice_every
        notice = encode_payload(WireSpec.empty(), ())
        rejections = []  # every receive hands over the rejections since the last one
        while True:
            got = self.transport.receive(
                t,
                peers,
                deadline,
                kind=Kind.WIRE,
                until=min(notice_at, hard),
                extend=wait,
                dependents=dependents,
            )
            rejections += got.rejections
            if got.done or time.monotonic() >= hard:
                got = dataclasses.replace(got, rejections=rejections)
                break
            for j in dependents:
                self.transport.send(j, t, Kind.WAITING, notice)
            notice_at += notice_every
        if rule == MissingRule.WAIT and got.missing:
            reasons = {p: got.rejected.get(p, "not received") for p in got.missing}
            raise RuntimeError(
                f"node {self.node}: round {t}: no valid message from {reasons} within "
                f"node.wait_timeout_s={node_cfg.wait_timeout_s}s and the algorithm "
                f"{self.exp.algorithm.name!r} must WAIT for every message"
            )
        return got

    def _round(self, t: int, state: Any, data: Any, first: bool):
        program, algorithm, spec = self.program, self.exp.algorithm, self.program.spec
        batches, dropped = program.sample(program.batch_key(t, self.node), self.node, *data)
        if self.exp.privacy is not None:
            self.counters.dp_dropped_examples += int(dropped)
        state, wire, info = program.step(state, batches, program.algorithm_key(t, self.node))
        own = program.decode(wire)
        got = None
        if algorithm.exchanges:
            W = np.asarray(self.exp.schedule.weights(t))
            payload = encode_payload(spec, wire, chunk_bytes=self.cfg.transport.chunk_bytes)
            outs = out_neighbours(W, self.node)
            for j in outs:
                self.counters.bytes_sent += self.transport.send(j, t, Kind.WIRE, payload)
                self.counters.messages_sent += 1
            got = self._receive(t, in_neighbours(W, self.node), outs, first)
            self.dependents = outs
            received = {
                j: program.decode(spec.unflatten(leaves)) for j, leaves in got.messages.items()
            }
            plan = plan_mix(
                self.node, W[self.node], own, received, algorithm.missing_rule, self.last
            )
            if algorithm.missing_rule == MissingRule.REUSE_LAST:
                self.last.update(received)
            self.counters.messages_received += len(received)
            self.counters.messages_missing += len(plan.missing)
            self.counters.messages_reused += len(plan.reused)
            late = sum(r.late for r in got.rejections)
            self.counters.messages_late += late
            self.counters.messages_rejected += len(got.rejections) - late
            if plan.missing:
                log.info(
                    "node %d round %d: missing %s (%s)",
                    self.node,
                    t,
                    plan.missing,
                    {
                        p: got.rejected.get(p, "no valid message by the deadline")
                        for p in plan.missing
                    },
                )
            mixed = program.mix(jnp.asarray(plan.weights), plan.messages)
        else:
            mixed = own
        state = program.combine(state, mixed)
        return state, info, got

    # -- the run -------------------------------------------------------------------

    def _warmup(self, state: Any, data: Any, t: int) -> float:
        """Compiles every jitted phase on round ``t``'s inputs (results discarded)."""
        program, fed = self.program, self.exp.federated
        start = time.perf_counter()
        batches, _ = program.sample(program.batch_key(t, self.node), self.node, *data)
        new, wire, _ = program.step(state, batches, program.algorithm_key(t, self.node))
        own = program.decode(wire)
        if self.exp.algorithm.exchanges:
            W = np.asarray(self.exp.schedule.weights(t))
            plan = plan_mix(self.node, W[self.node], own, {}, MissingRule.RENORMALIZE)
            own = program.mix(jnp.asarray(plan.weights), plan.messages)
        jax.block_until_ready(program.combine(new, own))
        jax.block_until_ready(program.accuracy(state, fed.test_x, fed.test_y))
        return time.perf_counter() - start

    def run(self) -> NodeResult:
        """Runs the node to ``cfg.rounds`` (or its stop/crash round).

        Raises:
          NodeCrashError: at an injected crash.
          RuntimeError: under ``WAIT`` when a message never arrives.
          TransportClosedError: if the transport is closed under it (launcher stop).
        """
        cfg, program, exp = self.cfg, self.program, self.exp
        self.transport.expect(Kind.WIRE, program.spec, senders_of(exp.schedule, self.node))
        state = program.init(self.node)
        start = 0
        if self.resume is not None and self.resume.latest_step() is not None:
            state, start = self._restore(state)
            self._received_before = self.counters.bytes_received
        data = tuple(dfl_data.node_slice(exp.federated.train, self.node))
        compile_time = self._warmup(state, data, min(start, cfg.rounds - 1))
        writer = None
        if self.workdir is not None:
            writer = MetricsWriter(self.workdir, append=start > 0)
        began = time.perf_counter()
        t, rounds_run, first = start, 0, True
        last_round_sent = start - 1
        try:
            while t < cfg.rounds:
                if self.cancel.is_set() or t == self.stop_round:
                    break
                if t == self.crash_round:
                    raise NodeCrashError(f"node {self.node}: injected crash at round {t}")
                delay = straggler_delay(cfg.transport.faults, self.node, t)
                if delay > 0:
                    time.sleep(delay)
                state, info, got = self._round(t, state, data, first)
                first = False
                last_round_sent = t
                rounds_run += 1
                t += 1
                if is_eval_round(t, cfg.rounds, cfg.eval_every):
                    self._evaluate(t, state, info, began, compile_time, writer)
                if self.checkpointer is not None and self.checkpointer.due(t, cfg.rounds):
                    self._save(t, state)
                if self.on_round is not None:
                    self.on_round(t, {"loss": float(info["loss"])})
                ahead = self._dependents_ahead(got)
                if cfg.node.rejoin and ahead is not None and ahead > t and t < cfg.rounds:
                    target = min(ahead, cfg.rounds - 1)
                    log.warning(
                        "node %d is behind its neighbours (at round %d, they sent round %d): "
                        "skipping to round %d",
                        self.node,
                        t,
                        ahead,
                        target,
                    )
                    self.counters.rounds_skipped += target - t
                    t = target
            if t >= cfg.rounds:
                self._goodbye(last_round_sent)
        finally:
            if writer is not None:
                writer.close()
        return NodeResult(self.node, state, self.records, self.counters, rounds_run, compile_time)

    def _dependents_ahead(self, got: Any) -> int | None:
        """The highest round of a neighbour that mixes this node's messages.

        Such a neighbour cannot be past this node's next round unless it stopped
        waiting for this node, which is then behind and rejoins at that round.
        """
        if got is None:
            return None
        rounds = [got.peer_rounds[j] for j in self.dependents if j in got.peer_rounds]
        return max(rounds, default=None)

    def _goodbye(self, last_round: int) -> None:
        """Tells recent out-neighbours that this node sends nothing after ``last_round``."""
        if not self.exp.algorithm.exchanges or last_round < 0:
            return
        peers: set[int] = set()
        for r in range(max(0, last_round - BYE_HISTORY + 1), last_round + 1):
            peers.update(out_neighbours(np.asarray(self.exp.schedule.weights(r)), self.node))
        bye = encode_payload(WireSpec.empty(), ())
        for j in sorted(peers):
            self.transport.send(j, last_round, Kind.BYE, bye)

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
            messages_reused=c.messages_reused,
            rounds_skipped=c.rounds_skipped,
            **privacy,
        )
        self.records.append(record)
        if self.keep_params:
            self.params_at[round_] = self.program.params(state)
        if writer is not None and self.workdir is not None:
            save_params(params_path(self.workdir, round_), self.program.params(state))
            writer.write(record)
