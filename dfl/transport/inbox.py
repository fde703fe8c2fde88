"""The inbox of one node: the lock, the wait for a round's messages, the liveness notices.

Transports hand an :class:`Inbox` frames (loopback: whole frames from a queue;
tcp: a header, then the chunk read straight into the :class:`Slot`
:meth:`Inbox.begin` returns). The inbox runs each frame through the pure checks
of :mod:`dfl.transport.validate`, the :class:`~dfl.transport.reassembly.Reassembler`
and the :class:`~dfl.transport.ledger.Ledger`, in that order and under one lock,
and keeps what only it can: the current round, the wait of :meth:`Inbox.collect`
(which ends when every expected message is settled, or at its deadline), and
what peers say of themselves (``WAITING`` and ``BYE`` notices, the rounds of
their valid messages). Every rejection is logged with its reason and counted;
nothing in a frame is executed or trusted beyond the checks.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from dfl.transport.counts import InboxStats, RoundBytes
from dfl.transport.ledger import KEEP_DONE_ROUNDS, Ledger, MessageState
from dfl.transport.reassembly import (
    MIN_POOLED_BYTES,
    Assembly,
    BufferPool,
    Reassembler,
    Slot,
    message_key,
)
from dfl.transport.validate import (
    Problem,
    Receiver,
    Senders,
    Window,
    addressing_problem,
    message_problem,
    notice_problem,
)
from dfl.transport.wire import (
    CHECKSUM_MASK,
    HEADER_NBYTES,
    Header,
    Kind,
    WireError,
    WireSpec,
    checksum,
    parse_header,
)

log = logging.getLogger("dfl.transport")

__all__ = [
    "KEEP_DONE_ROUNDS",
    "MAX_PENDING_PER_SENDER",
    "MIN_POOLED_BYTES",
    "Inbox",
    "InboxStats",
    "Received",
    "Rejection",
    "RoundBytes",
    "Senders",
    "Slot",
    "TransportClosedError",
]

MAX_PENDING_PER_SENDER = 8
"""Messages of the current and future rounds one sender may have buffered here."""
WAIT_REPORT_AFTER_S = 5.0
"""A wait for a round's messages longer than this is logged (which peers, how long)."""
WAIT_REPORT_MAX_EVERY_S = 60.0
"""Later reports of one wait come at doubling intervals, at most this far apart."""


class TransportClosedError(RuntimeError):
    """Raised by a receive on a transport that was closed (e.g. by the launcher)."""


@dataclasses.dataclass(frozen=True)
class Rejection:
    """One rejected frame or message.

    Attributes:
      reason: why it was rejected.
      sender: the claimed sender where the header could be trusted, else ``None``.
      round: the claimed round where the header could be trusted, else ``None``.
      late: a valid-looking message for a round this node has already closed
        (its sender is behind, e.g. a straggler), not a malformed one.
    """

    reason: str
    sender: int | None = None
    round: int | None = None
    late: bool = False


@dataclasses.dataclass
class Received:
    """What a node heard for one round.

    Attributes:
      round: the round.
      messages: in-neighbour → the validated leaves of its message: read-only
        views of a reassembly buffer lent to the holder (the buffer is reused
        only once every view of it is gone, see :mod:`dfl.transport.reassembly`).
      rejected: in-neighbour → why its message of this round was rejected.
      missing: expected in-neighbours without a valid message (rejected included).
      finished: expected in-neighbours that had already ended their run.
      rejections: every rejection since the previous receive (any sender/round).
      peer_rounds: peer → the highest round of a valid message it has sent this node.
      done: whether the wait ended (every peer settled or past its deadline);
        false when ``collect`` returned at its ``until`` time.
    """

    round: int
    messages: dict[int, list[np.ndarray]]
    rejected: dict[int, str]
    missing: list[int]
    finished: list[int]
    rejections: list[Rejection]
    peer_rounds: dict[int, int]
    done: bool = True


@dataclasses.dataclass
class _Wait:
    """The wait for one round's messages (it spans the collects of that round)."""

    round: int
    kind: int
    began: float
    report_at: float


class Inbox:
    """Validated, reassembled messages of one node, keyed by round.

    Args:
      node_id: this node.
      num_nodes: nodes of the run (senders must lie in ``[0, num_nodes)``).
      run: the run digest (:func:`dfl.transport.wire.run_digest`).
      max_rounds_ahead: frames for rounds beyond ``current + max_rounds_ahead``
        are rejected (bounds what a peer can make this node buffer).
      max_message_bytes: larger messages are rejected.
    """

    def __init__(
        self,
        node_id: int,
        num_nodes: int,
        run: bytes,
        *,
        max_rounds_ahead: int = 1024,
        max_message_bytes: int = 1 << 31,
    ):
        self.node_id = node_id
        self.num_nodes = num_nodes
        self.run = run
        self.me = Receiver(node_id, num_nodes, run)
        self.max_rounds_ahead = max_rounds_ahead
        self.max_message_bytes = max_message_bytes
        self.stats = InboxStats()
        self._round_bytes = RoundBytes()
        self._specs: dict[int, WireSpec] = {
            Kind.BYE: WireSpec.empty(),
            Kind.WAITING: WireSpec.empty(),
        }
        self._senders: dict[int, Senders] = {}
        self._cond = threading.Condition()
        self._floor = 0
        self._reassembler = Reassembler(BufferPool(capacity=4 * num_nodes))
        self._ledger = Ledger()
        self._finished: dict[int, int] = {}
        self._waiting: dict[int, tuple[int, float]] = {}
        self._peer_seen: dict[int, int] = {}
        self._rejections: list[Rejection] = []
        self._wait: _Wait | None = None
        self._closed = False

    # -- configuration -------------------------------------------------------------

    def expect(self, kind: int, spec: WireSpec, senders: Senders | None = None) -> None:
        """Accept messages of ``kind`` laid out as ``spec`` (others are rejected).

        Args:
          kind: a message kind (not a control kind).
          spec: the payload layout.
          senders: ``senders(round)``: the nodes allowed to send ``kind`` at that
            round (the in-neighbours of the round's W); a frame from any other
            node is rejected. ``None``: any node of the run. Called under the
            inbox lock for every frame: it should be cheap (cached).
        """
        if spec.nbytes > self.max_message_bytes:
            raise ValueError(
                f"messages of kind {kind} have {spec.nbytes} bytes, over "
                f"transport.max_message_bytes={self.max_message_bytes}"
            )
        with self._cond:
            self._specs[int(kind)] = spec
            if senders is None:
                self._senders.pop(int(kind), None)
            else:
                self._senders[int(kind)] = senders

    # -- feeding -------------------------------------------------------------------

    def _reject(
        self,
        reason: str,
        header: Header | None = None,
        *,
        settles: bool = False,
        late: bool = False,
    ) -> None:
        """Records a rejection (caller holds the lock).

        ``settles``: the header's message is rejected as a whole (its round's
        wait for it ends); else only the frame is dropped.
        """
        sender = header.sender if header is not None else None
        round_ = header.round if header is not None else None
        self._rejections.append(Rejection(reason, sender, round_, late))
        self.stats.rejected += 1
        where = "" if header is None else f" from node {sender} for round {round_}"
        log.warning("node %d rejected a message%s: %s", self.node_id, where, reason)
        if settles and header is not None:
            key = message_key(header)
            self._ledger.reject(key, reason, floor=self._floor)
            self._reassembler.drop(key)
            self._cond.notify_all()

    def reject_frame(self, reason: str) -> None:
        """Records a frame that could not be parsed (its header is untrusted)."""
        with self._cond:
            self._reject(reason)

    def begin(self, header_bytes: Any, *, sender: int | None = None) -> Slot | None:
        """Validates one frame's header; returns where its chunk goes.

        Args:
          header_bytes: the frame's first 96 bytes.
          sender: the sender a connection is bound to (tcp), checked when given.

        Returns:
          A :class:`Slot` (``view`` is ``None``: read the chunk and drop it), or ``None``
          when the header itself failed (the frame is rejected; a stream
          transport cannot trust its length and must drop the connection).
        """
        try:
            header = parse_header(header_bytes)
        except WireError as e:
            self.reject_frame(e.reason)
            return None
        with self._cond:
            return self._begin(header, sender)

    def _count(self, h: Header) -> None:
        """Counts a frame whose header parsed (valid or not)."""
        nbytes = HEADER_NBYTES + h.length
        self.stats.frames += 1
        self.stats.bytes += nbytes
        window = self._window()
        self._round_bytes.add(h.kind, h.round, nbytes, floor=window.floor, last=window.last)

    def _window(self) -> Window:
        return Window(self._floor, self.max_rounds_ahead)

    def _begin(self, h: Header, bound: int | None) -> Slot:
        """The checks a frame passes in order (see :mod:`dfl.transport.validate`)."""
        drop = Slot(h, None)
        self._count(h)
        if self._closed:
            return drop
        problem = addressing_problem(h, self.me, bound=bound)
        if problem is not None:
            self._reject(problem, h)
            return drop
        spec = self._specs.get(h.kind)
        if spec is None:
            self._reject(f"unexpected message kind {h.kind}", h)
            return drop
        if h.kind == Kind.WAITING:
            self._notice(h, spec)
            return drop
        state = self._ledger.state(message_key(h))
        if state is not None:  # its message is finished: a duplicate
            if state is not MessageState.REJECTED:
                self.stats.duplicates += 1
            return drop
        return self._admit(h, spec)

    def _admit(self, h: Header, spec: WireSpec) -> Slot:
        """The slot of a frame of a message not yet finished, after its content checks."""
        drop = Slot(h, None)
        problem = message_problem(
            h,
            spec,
            self._window(),
            senders=self._senders.get(h.kind),
            max_message_bytes=self.max_message_bytes,
        )
        opens = not self._reassembler.is_open(message_key(h))
        if problem is None and opens and self._pending(h.sender) >= MAX_PENDING_PER_SENDER:
            problem = Problem(f"over {MAX_PENDING_PER_SENDER} messages of node {h.sender} pending")
        if problem is None:
            slot = self._reassembler.slot(h)
            if slot is None:  # the chunk is written or being written
                self.stats.duplicates += 1
                return drop
            if isinstance(slot, Slot):
                return slot
            problem = slot
        self._reject(problem.reason, h, settles=problem.settles, late=problem.late)
        return drop

    def _pending(self, sender: int) -> int:
        return self._reassembler.pending(sender) + self._ledger.held(sender)

    def _notice(self, h: Header, spec: WireSpec) -> None:
        """A ``WAITING`` notice: the sender is alive, waiting for ``h.round``'s messages."""
        problem = notice_problem(h, spec)
        if problem is not None:
            self._reject(problem, h)
            return
        self.stats.messages += 1
        self._waiting[h.sender] = (h.round, time.monotonic())
        self._cond.notify_all()

    def end(self, slot: Slot, crc: int | None = None) -> None:
        """Finishes a chunk whose bytes were written into ``slot.view``.

        Args:
          slot: from :meth:`begin`.
          crc: the header's checksum of exactly the bytes written, if the
            caller computed it while they arrived (cache-hot); else computed here.
        """
        if slot.view is None:
            return
        h = slot.header
        if crc is None:
            crc = checksum([slot.view], h.flags & CHECKSUM_MASK)
        with self._cond:
            done = self._reassembler.finish(slot, crc_ok=crc == h.payload_crc)
            if isinstance(done, Problem):
                self._reject(done.reason, h, settles=True)
                return
            if done is None:
                return
            self._ledger.validating(done.key)
        self._complete(h, done)

    def _complete(self, h: Header, assembly: Assembly) -> None:
        """Decodes a complete message (outside the lock), then delivers or rejects it."""
        leaves = self._reassembler.decode(assembly, self._specs[h.kind])
        with self._cond:
            if isinstance(leaves, str):
                self._reject(leaves, h, settles=True)
                return
            key = message_key(h)
            self.stats.messages += 1
            if h.kind == Kind.BYE:
                self._ledger.deliver(key, None, floor=self._floor)
                self._finished[h.sender] = h.round
            else:
                self._ledger.deliver(key, leaves, floor=self._floor)
                # Only a validated message moves what this node believes of the peer's round.
                self._peer_seen[h.sender] = max(h.round, self._peer_seen.get(h.sender, -1))
            self._cond.notify_all()

    def feed(self, frame: Any) -> None:
        """Takes one whole frame (header and chunk), e.g. from a loopback queue."""
        view = memoryview(frame).cast("B")
        try:
            header = parse_header(view[:HEADER_NBYTES])
        except WireError as e:
            self.reject_frame(e.reason)
            return
        body = view[HEADER_NBYTES:]
        with self._cond:
            if body.nbytes != header.length:
                self.stats.frames += 1
                self._reject(
                    f"truncated frame: {body.nbytes} payload bytes, header says {header.length}",
                    header,
                )
                return
            slot = self._begin(header, None)
        if slot.view is not None:
            slot.view[:] = body
            self.end(slot)

    # -- collecting ----------------------------------------------------------------

    def _patience(
        self, peer: int, round_: int, deadline: float, extend: float, cap: float | None
    ) -> float:
        """When to stop waiting for ``peer``: at ``deadline`` (or ``cap`` if sooner),
        later while it reports waiting for an older round itself."""
        end = deadline if cap is None else min(deadline, cap)
        waiting = self._waiting.get(peer)
        if extend > 0 and waiting is not None and waiting[0] < round_:
            return max(end, waiting[1] + extend)
        return end

    def _ends(
        self,
        round_: int,
        kind: int,
        peers: list[int],
        deadline: float,
        extend: float,
        dependents: Collection[int],
        caps: Mapping[int, float],
    ) -> dict[int, float]:
        """Peer → when to stop waiting for it, for the peers not settled yet."""
        return {
            p: self._patience(p, round_, deadline, extend, caps.get(p))
            for p in peers
            if not self._settled(p, round_, kind, dependents)
        }

    def _settled(self, peer: int, round_: int, kind: int, dependents: Collection[int]) -> bool:
        if self._ledger.settled(peer, round_, kind):
            return True
        last = self._finished.get(peer)
        if last is not None and last < round_:
            return True
        # A peer that needs this node's messages cannot pass round_ + 1 before this
        # node sends its round_ + 1 message, unless it gave up waiting: then its
        # message of round_ was sent long ago and is lost.
        return peer in dependents and self._peer_seen.get(peer, -1) >= round_ + 2

    def _advance(self, round_: int) -> None:
        if round_ <= self._floor:
            return
        self._floor = round_
        self._round_bytes.fold(round_)
        self._ledger.advance(round_)
        self._reassembler.purge(round_)

    def _open_wait(self, round_: int, kind: int) -> _Wait:
        """The wait for ``round_``'s messages, begun by its first collect."""
        w = self._wait
        if w is None or (w.round, w.kind) != (round_, kind):
            now = time.monotonic()
            w = self._wait = _Wait(round_, kind, now, now + WAIT_REPORT_AFTER_S)
        return w

    def _report(self, w: _Wait, awaited: Mapping[int, float], now: float) -> None:
        """Logs a long wait: which peers, which round, how long so far and at most."""
        if now < w.report_at or not awaited:
            return
        waited = now - w.began
        log.info(
            "node %d has waited %.1f s for the round %d messages of node(s) %s; "
            "gives up in at most %.1f s",
            self.node_id,
            waited,
            w.round,
            sorted(awaited),
            max(awaited.values()) - now,
        )
        w.report_at = w.began + waited + min(waited, WAIT_REPORT_MAX_EVERY_S)

    def collect(
        self,
        round_: int,
        kind: int,
        peers: Collection[int],
        deadline: float,
        *,
        until: float | None = None,
        extend: float = 0.0,
        dependents: Collection[int] = (),
        give_up_after: Mapping[int, float] | None = None,
        pump: Callable[[float], bool] | None = None,
    ) -> Received:
        """Waits until every peer's message of ``round_`` is settled or ``deadline``.

        Also makes ``round_`` the current round: older messages are dropped and
        frames for older rounds are rejected from now on. A wait longer than
        :data:`WAIT_REPORT_AFTER_S` is logged, with the peers it waits for.

        Args:
          round_: the round.
          kind: the message kind.
          peers: the expected in-neighbours.
          deadline: ``time.monotonic()`` value to stop waiting at.
          until: return by then even if waiting goes on (``Received.done`` is
            false), e.g. to send a ``WAITING`` notice; ``None``: ``deadline``.
          extend: a peer that sent a ``WAITING`` notice for an older round (it is
            alive, waiting for a message itself) is awaited until ``extend``
            seconds after its latest notice, if that is past ``deadline``.
          dependents: peers that mix this node's messages; one of them seen two
            rounds ahead has given up on this node, so its message is not awaited.
          give_up_after: peer → seconds after the wait for ``round_`` began (its
            first collect) after which that peer's message is no longer awaited,
            even before ``deadline`` (e.g. one the run's fault injector dropped);
            a peer's ``WAITING`` notices still extend its wait as above.
          pump: for transports whose frames are fed by the waiting thread itself
            (loopback): ``pump(timeout)`` feeds what arrives within ``timeout``
            (the lock is not held); ``None`` waits for other threads to feed.

        Raises:
          TransportClosedError: if the inbox was closed.
        """
        peers = list(peers)
        dependents = frozenset(dependents)
        give_up_after = give_up_after or {}
        with self._cond:
            self._advance(round_)
            w = self._open_wait(round_, kind)
        caps = {p: w.began + s for p, s in give_up_after.items()}
        while True:
            with self._cond:
                if self._closed:
                    raise TransportClosedError(f"node {self.node_id}: transport closed")
                now = time.monotonic()
                ends = self._ends(round_, kind, peers, deadline, extend, dependents, caps)
                end = max(ends.values(), default=now)
                if end <= now:
                    return self._result(round_, kind, peers, done=True)
                if until is not None and until <= now:
                    return self._result(round_, kind, peers, done=False)
                self._report(w, {p: e for p, e in ends.items() if e > now}, now)
                stop = end if until is None else min(end, until)
                remaining = max(min(stop, w.report_at) - now, 0.0)
                if pump is None:
                    self._cond.wait(remaining)
                    continue
            pump(remaining)

    def _result(self, round_: int, kind: int, peers: list[int], *, done: bool) -> Received:
        complete = self._ledger.delivered(round_, kind)
        rejected = self._ledger.rejected(round_, kind)
        messages = {p: complete[p] for p in peers if p in complete}
        finished = [
            p for p in peers if p not in messages and self._finished.get(p, round_) < round_
        ]
        rejections, self._rejections = self._rejections, []
        return Received(
            round=round_,
            messages=messages,
            rejected={p: rejected[p] for p in peers if p in rejected and p not in messages},
            missing=[p for p in peers if p not in messages],
            finished=finished,
            rejections=rejections,
            peer_rounds=dict(self._peer_seen),
            done=done,
        )

    def received_bytes(self, kind: int, through_round: int | None = None) -> int:
        """Bytes of the frames of ``kind`` whose header parsed (headers included,
        valid or not), of rounds up to ``through_round`` when given: see
        :class:`RoundBytes` (frames of rounds before the current one always count)."""
        with self._cond:
            return self._round_bytes.total(int(kind), through_round)

    def close(self) -> None:
        """Wakes every waiting collect, which then raises :class:`TransportClosedError`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
