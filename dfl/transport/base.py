"""The :class:`Transport` protocol and the framing logic every backend shares.

A transport moves validated bytes between nodes and knows nothing of
algorithms: the node runner hands it a :class:`~dfl.transport.wire.Payload`
(an encoded pytree) per out-neighbour and asks, per round, for what its
in-neighbours sent. Backends only implement how frames travel
(:meth:`FramedTransport._transmit`, and for loopback how they are pumped into
the inbox); headers, chunking, fault injection, validation and reassembly live
here, in :mod:`dfl.transport.wire`, :mod:`dfl.transport.validate`,
:mod:`dfl.transport.reassembly` and :mod:`dfl.transport.inbox`.
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Protocol, runtime_checkable

from dfl.transport.faults import Delayer, FaultInjector, FrameParts
from dfl.transport.inbox import Inbox, Received, Senders
from dfl.transport.wire import Kind, Payload, WireSpec, run_digest


@runtime_checkable
class Transport(Protocol):
    """What a node runner needs from a network.

    Attributes:
      node_id: this node's id.
      num_nodes: nodes of the run.
    """

    node_id: int
    num_nodes: int

    def expect(self, kind: int, spec: WireSpec, senders: Senders | None = None) -> None:
        """Accept messages of ``kind`` laid out as ``spec``; others are rejected.

        ``senders(round)`` names the nodes that may send ``kind`` at that round
        (e.g. the in-neighbours of W at that round); ``None``: any node of the run.
        """
        ...

    def send(self, peer: int, round: int, kind: int, payload: Payload) -> int:
        """Sends ``payload`` to ``peer``; returns the bytes put on the wire (headers included).

        Never blocks on the peer: an unreachable peer loses the message (its
        receiver applies its missing-message rule).
        """
        ...

    def receive(
        self,
        round: int,
        expected_peers: Collection[int],
        deadline: float,
        *,
        kind: int = ...,
        until: float | None = ...,
        extend: float = ...,
        dependents: Collection[int] = ...,
        members: Collection[int] | None = ...,
        down_after_missed: int = ...,
    ) -> Received:
        """Waits until every expected peer's message of ``round`` arrived or was
        rejected, or until ``deadline`` (a ``time.monotonic()`` value).

        See :meth:`dfl.transport.inbox.Inbox.collect` for ``until`` (return
        early to send a ``WAITING`` notice), ``extend`` (more time for a peer
        that says it is waiting itself), ``dependents`` and ``members`` (peers
        that mix this node's messages: seen two rounds ahead, with more than
        half of the members, they gave up on this node) and
        ``down_after_missed`` (peers held for down are not awaited).
        """
        ...

    def received_bytes(self, kind: int, through_round: int | None = None) -> int:
        """Bytes of the valid frames of ``kind`` that reached this node (headers
        included): what the network delivered, measured at the receiver.

        ``through_round`` counts only frames whose header names that round or an
        earlier one, so a count taken after round ``r`` does not depend on how many
        of round ``r + 1``'s frames happened to arrive already.
        """
        ...

    def rejected_bytes(self) -> int:
        """Bytes of the frames this node rejected (any kind; counted apart)."""
        ...

    def close(self) -> None:
        """Flushes what is being sent and releases every resource."""
        ...


@dataclasses.dataclass
class SendStats:
    """Bytes and frames a node put on the wire (cumulative; headers included)."""

    messages: int = 0
    frames: int = 0
    bytes: int = 0


class FramedTransport(abc.ABC):
    """A transport over frames: headers, faults and inbox shared by every backend.

    Args:
      node_id: this node.
      num_nodes: nodes of the run.
      run_id: the run's id (every frame carries its digest).
      max_rounds_ahead: see :class:`~dfl.transport.inbox.Inbox`.
      max_message_bytes: see :class:`~dfl.transport.inbox.Inbox`.
      faults: a fault injector applied to every sent message, or ``None``.
      dropped_wait_s: how long a receive waits for a message that ``faults``
        loses (:meth:`~dfl.transport.faults.FaultInjector.loses`), counted from
        the start of the wait for its round, however late the receive's own
        deadline: a node's normal ``node.deadline_s``, so the first round's
        longer start-up deadline never waits out a message that was never
        going to come (a peer's ``WAITING`` notices still extend the wait).
        ``None``: such a message is awaited like any other.

    Backend hooks (stable: the loopback, tcp and pilot backends build on them):

    * :meth:`_transmit` (abstract): put frames on the way to a peer; never block
      on the peer.
    * :meth:`_pump` with ``_pumps = True``: for backends whose frames are fed to
      :attr:`inbox` by the receiving thread itself (loopback); others feed
      :attr:`inbox` from their own threads (:meth:`Inbox.begin`/:meth:`Inbox.end`
      or :meth:`Inbox.feed`) and keep ``_pumps = False``.
    * :meth:`close` (``drain``): a backend closes its own resources, then calls
      ``super().close(drain=...)``; :meth:`crash` (default ``close(drain=False)``)
      stops as a killed process would.
    * :attr:`inbox`, :attr:`faults`, :attr:`sent`: shared state a backend may read.
    """

    def __init__(
        self,
        node_id: int,
        num_nodes: int,
        *,
        run_id: str,
        max_rounds_ahead: int = 1024,
        max_message_bytes: int = 1 << 31,
        faults: FaultInjector | None = None,
        dropped_wait_s: float | None = None,
    ):
        if not 0 <= node_id < num_nodes:
            raise ValueError(f"node id must lie in [0, {num_nodes}), found {node_id}")
        self.node_id = node_id
        self.num_nodes = num_nodes
        self.run_id = run_id
        self.run = run_digest(run_id)
        self.inbox = Inbox(
            node_id,
            num_nodes,
            self.run,
            max_rounds_ahead=max_rounds_ahead,
            max_message_bytes=max_message_bytes,
        )
        self.faults = faults if faults is not None and faults.active else None
        self.dropped_wait_s = dropped_wait_s
        self.sent = SendStats()
        self.blocked: set[int] = set()
        self._expected: dict[int, tuple[WireSpec, Senders | None]] = {}
        self._delayer: Delayer | None = None
        self._delayer_lock = threading.Lock()

    def received_bytes(self, kind: int, through_round: int | None = None) -> int:
        """Bytes of the frames of ``kind`` that reached this node (headers included),
        of rounds up to ``through_round`` when given."""
        return self.inbox.received_bytes(kind, through_round)

    def rejected_bytes(self) -> int:
        """Bytes of the frames this node rejected."""
        return self.inbox.rejected_bytes()

    def expect(self, kind: int, spec: WireSpec, senders: Senders | None = None) -> None:
        """Accept messages of ``kind`` laid out as ``spec`` from ``senders(round)``."""
        self._expected[int(kind)] = (spec, senders)
        self.inbox.expect(kind, spec, self._unblocked(senders))

    def block(self, peer: int, *, revoke: bool = False) -> None:
        """Refuses ``peer``'s frames from now on (e.g. a Byzantine detector flagged it).

        Its frames fail the inbox's sender check like a non-neighbour's. ``revoke``:
        also withdraw the peer's trust where the backend has one (Pilot); ignored here.
        """
        del revoke
        self.blocked.add(int(peer))
        for kind, (spec, senders) in self._expected.items():
            self.inbox.expect(kind, spec, self._unblocked(senders))

    def _unblocked(self, senders: Senders | None) -> Senders | None:
        """``senders`` without the blocked peers (``None`` stays ``None`` until one is)."""
        if not self.blocked:
            return senders
        blocked = frozenset(self.blocked)
        if senders is None:
            allowed = frozenset(range(self.num_nodes)) - blocked
            return lambda round: allowed
        inner = senders
        return lambda round: [s for s in inner(round) if s not in blocked]

    def send(self, peer: int, round: int, kind: int, payload: Payload) -> int:
        """Frames ``payload`` for ``peer`` and hands it to the backend (after faults)."""
        if not 0 <= peer < self.num_nodes or peer == self.node_id:
            raise ValueError(f"node {self.node_id} cannot send to node {peer}")
        frames = payload.frames(
            run=self.run, sender=self.node_id, recipient=peer, round=round, kind=kind
        )
        self.sent.messages += 1
        self.sent.frames += len(frames)
        self.sent.bytes += payload.wire_nbytes
        if self.faults is None:
            self._transmit(peer, frames)
            return payload.wire_nbytes
        now: list[FrameParts] = []
        for delay, frame in self.faults.plan(self.node_id, peer, round, kind, frames):
            if delay <= 0:
                now.append(frame)
            else:
                self._delay(delay, lambda f=frame: self._transmit(peer, [f]))
        if now:
            self._transmit(peer, now)
        return payload.wire_nbytes

    def _delay(self, delay: float, fn: Callable[[], None]) -> None:
        with self._delayer_lock:
            if self._delayer is None:
                self._delayer = Delayer(f"dfl-delayer-{self.node_id}")
        self._delayer.schedule(delay, fn)

    @abc.abstractmethod
    def _transmit(self, peer: int, frames: Sequence[FrameParts]) -> None:
        """Puts ``frames`` (each a list of byte buffers) on the way to ``peer``."""

    def _pump(self, timeout: float) -> bool:
        """Loopback-style backends feed the inbox here; ``False``: others feed it."""
        del timeout
        return False

    def receive(
        self,
        round: int,
        expected_peers: Collection[int],
        deadline: float,
        *,
        kind: int = Kind.WIRE,
        until: float | None = None,
        extend: float = 0.0,
        dependents: Collection[int] = (),
        members: Collection[int] | None = None,
        down_after_missed: int = 0,
    ) -> Received:
        """See :meth:`Transport.receive`."""
        pump = self._pump if self._pumps else None
        return self.inbox.collect(
            round,
            kind,
            expected_peers,
            deadline,
            until=until,
            extend=extend,
            dependents=dependents,
            members=members,
            down_after_missed=down_after_missed,
            give_up_after=self._lost(round, kind, expected_peers),
            pump=pump,
        )

    def _lost(self, round: int, kind: int, peers: Collection[int]) -> dict[int, float]:
        """Peer → :attr:`dropped_wait_s`, for the peers whose message of ``round``
        this run's fault injector loses."""
        if self.faults is None or self.dropped_wait_s is None:
            return {}
        return {
            p: self.dropped_wait_s for p in peers if self.faults.loses(p, self.node_id, round, kind)
        }

    _pumps = False

    def crash(self) -> None:
        """Stops abruptly, as a killed process would: delayed frames are lost.

        Backends with queued sends override it to drop those too.
        """
        self.close(drain=False)

    def _stop_delayer(self, *, drain: bool) -> None:
        """Stops the fault injector's delay queue: its frames delivered (``drain``) or lost."""
        with self._delayer_lock:
            if self._delayer is not None:
                self._delayer.close(drain=drain)

    def close(self, *, drain: bool = True) -> None:
        """Delivers delayed frames (``drain``; else drops them), wakes any waiting receive."""
        self._stop_delayer(drain=drain)
        self.inbox.close()
