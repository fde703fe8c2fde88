"""A deployed node's exchange: send, receive, plan and mix in one call.

:class:`NodeExchange` is the node-side implementation of the exchange protocol
of :mod:`dfl.gossip.mixer`, so a node's round reads like the simulation's::

    state, wire, info = step(state, batches, key)
    mixed = exchange.apply(wire, t)          # Σ_j W_ij decode(wire_j), i and its in-neighbours
    state = combine(state, mixed)

It takes the node's *wire* (what it sends; receivers decode) and returns
``mixed = Σ_j W_ij · message_j`` over node ``i``'s in-neighbours and itself. When
in-neighbour ``j``'s message is missing at the deadline, was rejected, or is left
out by the delivery mask, the algorithm's missing-message rule applies:

* ``RENORMALIZE``: its weight ``W_ij`` is added to the node's own weight (the
  row still sums to what it summed to), as :func:`dfl.gossip.dense.renormalize`
  does in the simulation;
* ``WAIT``: the node keeps waiting up to ``node.wait_timeout_s`` and then fails
  loudly; :func:`plan_mix` refuses a missing message under ``WAIT``.

Every slot of the mix keeps its position (missing ones get weight 0 and the node's
own message as a placeholder), so the jitted mix sees the same shapes every round.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.algorithms.base import MissingRule
from dfl.topology.schedule import MixingSchedule
from dfl.transport.base import Transport
from dfl.transport.inbox import Received
from dfl.transport.rejections import KEEP_RECENT
from dfl.transport.wire import Kind, WireSpec, encode_payload

log = logging.getLogger("dfl.node")

BYE_HISTORY = 8
"""Rounds back whose out-neighbours get the end-of-run notice (time-varying graphs)."""


RANDOM_SCAN_ROUNDS = 64
"""Rounds of a random schedule scanned for a peer's dependence on a node; beyond it, assumed."""


@dataclasses.dataclass
class MixPlan:
    """The weights and messages of one round's mix at one node.

    Attributes:
      sources: node ids of the slots, ascending (the node itself included).
      weights: float32 weight per slot.
      messages: message per slot.
      missing: in-neighbours whose message of this round was not used.
    """

    sources: list[int]
    weights: np.ndarray
    messages: list[Any]
    missing: list[int]


def plan_mix(
    node: int, row: np.ndarray, own: Any, received: Mapping[int, Any], rule: MissingRule
) -> MixPlan:
    """The mix of ``node`` for one round under ``rule``.

    Args:
      node: this node's id.
      row: ``W[node, :]`` (float64).
      own: this node's own decoded message.
      received: in-neighbour → decoded message, for those delivered (valid, in time,
        and in the delivery mask).
      rule: the algorithm's missing-message rule.

    Returns:
      The :class:`MixPlan`.

    Raises:
      RuntimeError: under ``WAIT`` with a message missing.
    """
    row = np.asarray(row, dtype=np.float64)
    sources = sorted({node, *np.flatnonzero(row).tolist()})
    weights = {j: float(row[j]) for j in sources}
    messages: dict[int, Any] = {}
    missing = []
    for j in sources:
        if j == node:
            messages[j] = own
        elif j in received:
            messages[j] = received[j]
        else:
            missing.append(j)
            if rule == MissingRule.WAIT:
                raise RuntimeError(
                    f"node {node}: the message of node {j} is missing and the algorithm's "
                    "missing-message rule is WAIT"
                )
            weights[node] += weights[j]
            weights[j] = 0.0
            messages[j] = own
    return MixPlan(
        sources=sources,
        weights=np.asarray([weights[j] for j in sources], dtype=np.float32),
        messages=[messages[j] for j in sources],
        missing=missing,
    )


def mix(weights: jax.Array, messages: Sequence[Any]) -> Any:
    """``Σ_k weights[k] · messages[k]`` for every leaf, as the simulation's dense mixer.

    Computed in (at least) float32 with ``Precision.HIGHEST`` and cast back to
    each leaf's dtype, like :class:`dfl.gossip.DenseMixer`.
    """

    def leaf(*xs: jax.Array) -> jax.Array:
        dtype = xs[0].dtype
        stacked = jnp.stack([x.astype(jnp.promote_types(dtype, jnp.float32)) for x in xs])
        out = jnp.tensordot(weights, stacked, axes=(0, 0), precision=jax.lax.Precision.HIGHEST)
        return out.astype(dtype)

    return jax.tree.map(leaf, *messages)


def out_neighbours(W: np.ndarray, node: int) -> list[int]:
    """Nodes that mix ``node``'s message: ``W[j, node] != 0``, ``j != node``."""
    return [j for j in np.flatnonzero(W[:, node]).tolist() if j != node]


def in_neighbours(W: np.ndarray, node: int) -> list[int]:
    """Nodes whose message ``node`` mixes: ``W[node, j] != 0``, ``j != node``."""
    return [j for j in np.flatnonzero(W[node]).tolist() if j != node]


@dataclasses.dataclass
class ExchangeCounts:
    """What a node's exchanges sent and received (cumulative).

    Attributes:
      bytes_sent: bytes of its wire messages on the wire (headers included).
      messages_sent: wire messages sent (one per out-neighbour and round).
      messages_received: valid wire messages used.
      messages_missing: in-neighbour messages not used (absent at the deadline,
        rejected, or left out by the delivery mask).
      messages_rejected: frames or messages rejected by validation.
      messages_late: messages that arrived after their round was closed, valid
        in every other respect and from the sender their channel is bound to.
    """

    bytes_sent: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    messages_missing: int = 0
    messages_rejected: int = 0
    messages_late: int = 0


class NodeExchange:
    """One node's exchange over a transport: ``apply(wire, round) -> mixed``.

    Args:
      node: this node's id.
      schedule: the run's mixing schedule (``weights(round)``).
      spec: the layout of the algorithm's wire pytree.
      decode: the algorithm's (jitted) ``decode``.
      transport: this node's transport (``expect`` already called).
      rule: the algorithm's missing-message rule.
      algorithm: the algorithm's name (for errors).
      deadline_s, first_deadline_s, wait_timeout_s: ``node.*`` of the config.
      chunk_bytes: ``transport.chunk_bytes``.
      counts: the counters to add to (the node's, restored from a checkpoint).
      down_after_missed: ``transport.down_after_missed``: under ``RENORMALIZE``, a
        peer held for down (:mod:`dfl.transport.liveness`) is not awaited, except
        in the first round after a (re)start (``first_deadline_s`` is for peers
        slow to start); ``WAIT`` algorithms always wait.
      robust: this node's :class:`dfl.node.byzantine.NodeByzantine` (``None``: an
        ordinary run): an attacker sends each out-neighbour its attack message, the
        mix is the robust rule's, and newly flagged peers go to ``transport.block``.
      revoke_flagged: ask the transport to also revoke a flagged peer's trust (Pilot).
    """

    def __init__(
        self,
        *,
        node: int,
        schedule: MixingSchedule,
        spec: WireSpec,
        decode: Callable[[Any], Any],
        transport: Transport,
        rule: MissingRule,
        algorithm: str,
        deadline_s: float,
        first_deadline_s: float,
        wait_timeout_s: float,
        chunk_bytes: int,
        counts: ExchangeCounts,
        down_after_missed: int = 0,
        robust: Any = None,
        revoke_flagged: bool = False,
    ):
        self.node = node
        self.schedule = schedule
        self.spec = spec
        self.decode = decode
        self.transport = transport
        self.rule = rule
        self.algorithm = algorithm
        self.deadline_s = deadline_s
        self.first_deadline_s = first_deadline_s
        self.wait_timeout_s = wait_timeout_s
        self.chunk_bytes = chunk_bytes
        self.counts = counts
        self.down_after_missed = down_after_missed if rule == MissingRule.RENORMALIZE else 0
        self._members: dict[int, frozenset[int]] = {}
        self.robust = robust
        self.revoke_flagged = revoke_flagged
        self.mix = jax.jit(mix)
        self.first = True  # the first exchange of this process waits first_deadline_s
        self.dependents: list[int] = []
        self.received: Received | None = None
        self.plan: MixPlan | None = None  # the last round's mix (the runner's finite guard)

    def apply(self, wire: Any, round: int, *, delivered: Collection[int] | None = None) -> Any:
        """Sends ``wire``, receives the in-neighbours' of ``round`` and mixes them.

        Args:
          wire: this node's wire message of ``round``.
          round: the round.
          delivered: the delivery mask: the in-neighbours whose message may be
            used (e.g. a replayed network schedule's); a message outside it counts
            as missing even if it arrived, and is not waited for. ``None``: what
            the transport delivered.

        Returns:
          ``Σ_j W_ij decode(wire_j)`` under the algorithm's missing-message rule.

        Raises:
          ValueError: a mask that leaves out an in-neighbour under ``WAIT``.
          RuntimeError: under ``WAIT`` when a message never arrives.
        """
        W = np.asarray(self.schedule.weights(round))
        ins, outs = in_neighbours(W, self.node), out_neighbours(W, self.node)
        dropped = sorted(set(ins) - set(delivered)) if delivered is not None else []
        if dropped and self.rule == MissingRule.WAIT:
            raise ValueError(
                f"node {self.node}: round {round}: the delivery mask drops {dropped}, "
                f"but {self.algorithm!r} must WAIT for every message"
            )
        own = self.decode(wire)
        payload = encode_payload(self.spec, wire, chunk_bytes=self.chunk_bytes)
        per_peer = self.robust.outgoing(own, round) if self.robust is not None else None
        for j in outs:
            if per_peer is not None:  # an attacker: each recipient its own message
                payload = encode_payload(self.spec, per_peer[j], chunk_bytes=self.chunk_bytes)
            self.counts.bytes_sent += self.transport.send(j, round, Kind.WIRE, payload)
            self.counts.messages_sent += 1
        # Messages outside the mask count as missing anyway: wait only for the others.
        awaited = ins if delivered is None else [j for j in ins if j in delivered]
        if self.robust is not None:  # do not wait for peers cut off at the transport
            awaited = [j for j in awaited if j not in self.robust.flagged]
        got = self._receive(round, awaited, outs)
        self.first, self.dependents, self.received = False, outs, got
        received = {
            j: self.decode(self.spec.unflatten(leaves))
            for j, leaves in got.messages.items()
            if delivered is None or j in delivered
        }
        if self.robust is not None:
            return self._robust_mix(W, own, received, got, round)
        plan = plan_mix(self.node, W[self.node], own, received, self.rule)
        self.plan = plan
        self._count(got, received, plan)
        if plan.missing:
            reasons = {
                p: "left out by the delivery mask"
                if p in got.messages
                else got.rejected.get(p, "no valid message by the deadline")
                for p in plan.missing
            }
            log.info("node %d round %d: missing %s (%s)", self.node, round, plan.missing, reasons)
        return self.mix(jnp.asarray(plan.weights), plan.messages)

    def _robust_mix(
        self, W: np.ndarray, own: Any, received: dict[int, Any], got: Received, round: int
    ) -> Any:
        """The robust rule's mix; newly flagged peers are cut off at the transport."""
        assert self.robust is not None
        mixed, flagged = self.robust.combine(own, received, round)
        plan = plan_mix(self.node, W[self.node], own, received, MissingRule.RENORMALIZE)
        self.plan = plan  # the sources the finite guard names
        self._count(got, received, plan)
        block = getattr(self.transport, "block", None)
        for j in flagged:
            log.warning("node %d round %d: flagged node %d (byzantine.detect)", self.node, round, j)
            if block is not None:
                block(j, revoke=self.revoke_flagged)
        return mixed

    def _count(self, got: Received, received: Mapping[int, Any], plan: MixPlan) -> None:
        self.counts.messages_received += len(received)
        self.counts.messages_missing += len(plan.missing)
        self.counts.messages_late += got.late_count
        self.counts.messages_rejected += got.rejected_count - got.late_count

    def members(self, t: int) -> frozenset[int]:
        """The in-neighbours of this node over one schedule period from round ``t``
        (the union over the period's rounds; a random schedule: every other node),
        whose strict majority decides whether this node is behind
        (:mod:`dfl.transport.quorum`)."""
        period = self.schedule.period
        if period is None:
            n = np.asarray(self.schedule.weights(t)).shape[0]
            return frozenset(range(n)) - {self.node}
        key = t % period
        if key not in self._members:
            out: set[int] = set()
            for r in range(t, t + max(1, period)):
                out.update(in_neighbours(np.asarray(self.schedule.weights(r)), self.node))
            self._members[key] = frozenset(out)
        return self._members[key]

    def _receive(self, t: int, peers: list[int], dependents: list[int]) -> Received:
        """Waits for the in-neighbours' messages of round ``t``.

        A node still waiting after half its deadline tells ``dependents`` (who
        wait for its next message) with a ``WAITING`` notice every half deadline,
        and gives a neighbour that does the same a deadline from its latest
        notice: a lost message delays only the nodes that wait for it, instead
        of each neighbour timing out on the delayed node in turn. A crashed node
        sends no notice, so its neighbours stop waiting at their deadline. The
        wait never exceeds ``node.wait_timeout_s``.
        """
        wait = self.first_deadline_s if self.first else self.deadline_s
        now = time.monotonic()
        hard = now + max(wait, self.wait_timeout_s)
        deadline = hard if self.rule == MissingRule.WAIT else now + wait
        # Neighbours give a notice node.deadline_s of patience (extend), also while
        # this node waits out a longer first-round deadline: notice at their pace.
        notice_every = min(wait, self.deadline_s) / 2
        notice_at = now + notice_every
        notice = encode_payload(WireSpec.empty(), ())
        members = self.members(t)
        # every receive hands over the rejections since the last one (a bounded list)
        rejections, rejected, late = [], 0, 0
        while True:
            got = self.transport.receive(
                t,
                peers,
                deadline,
                kind=Kind.WIRE,
                until=min(notice_at, hard),
                extend=wait,
                dependents=dependents,
                members=members,
                # The first round after a (re)start awaits slow starters regardless.
                down_after_missed=0 if self.first else self.down_after_missed,
            )
            rejections += got.rejections[: max(0, KEEP_RECENT - len(rejections))]
            rejected, late = rejected + got.rejected_count, late + got.late_count
            if got.done or time.monotonic() >= hard:
                got = dataclasses.replace(
                    got, rejections=rejections, rejected_count=rejected, late_count=late
                )
                break
            for j in dependents:
                self.transport.send(j, t, Kind.WAITING, notice)
            notice_at += notice_every
        if self.rule == MissingRule.WAIT and got.missing:
            reasons = {p: got.rejected.get(p, "not received") for p in got.missing}
            raise RuntimeError(
                f"node {self.node}: round {t}: no valid message from {reasons} within "
                f"node.wait_timeout_s={self.wait_timeout_s}s and the algorithm "
                f"{self.algorithm!r} must WAIT for every message"
            )
        return got

    def dependents_ahead(self, next_round: int) -> int | None:
        """The highest round ``r`` of a peer that must have stopped waiting for this node.

        Peer ``j`` sent a message of round ``r > next_round``, so it finished every
        round before ``r``. If it mixes this node's message in some round ``s`` of
        ``[next_round, r)`` (``W_s[j, i] > 0``), which this node has not sent yet,
        it went on without this node: this node is behind and rejoins at ``r``. A
        peer that needed nothing from this node in those rounds (a one-peer or
        directed schedule) is ahead legitimately and says nothing about it.
        """
        if self.received is None:
            return None
        ahead = [
            r
            for j, r in self.received.peer_rounds.items()
            if r > next_round and self._mixes_me(j, next_round, r)
        ]
        return max(ahead, default=None)

    def rejoin_claims(self, next_round: int) -> dict[int, int]:
        """Member → its highest round, for the members (:meth:`members`) that sent a
        valid message of a round ``r > next_round`` and mix this node's message in
        a round of ``[next_round, r)`` (as :meth:`dependents_ahead`): what the
        rejoin quorum (:mod:`dfl.node.rejoin`) counts."""
        if self.received is None:
            return {}
        members = self.members(next_round)
        return {
            j: r
            for j, r in self.received.peer_rounds.items()
            if j in members and r > next_round and self._mixes_me(j, next_round, r)
        }

    def _mixes_me(self, peer: int, start: int, end: int) -> bool:
        """Whether ``peer`` mixes this node's message in some round of ``[start, end)``."""
        period = self.schedule.period
        if period is None and end - start > RANDOM_SCAN_ROUNDS:
            return True  # a random schedule pairs any two nodes within so many rounds
        stop = end if period is None else min(end, start + period)
        return any(
            np.asarray(self.schedule.weights(s))[peer, self.node] > 0 for s in range(start, stop)
        )

    def goodbye(self, last_round: int) -> None:
        """Tells recent out-neighbours that this node sends nothing after ``last_round``."""
        if last_round < 0:
            return
        peers: set[int] = set()
        for r in range(max(0, last_round - BYE_HISTORY + 1), last_round + 1):
            peers.update(out_neighbours(np.asarray(self.schedule.weights(r)), self.node))
        bye = encode_payload(WireSpec.empty(), ())
        for j in sorted(peers):
            self.transport.send(j, last_round, Kind.BYE, bye)
