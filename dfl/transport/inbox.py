"""The inbox of one node: the lock, the wait for a round's messages, the liveness notices.

Transports hand an :class:`Inbox` frames (loopback: whole frames from a queue;
tcp: a header, then the chunk read straight into the :class:`Slot`
:meth:`Inbox.begin` returns). The inbox runs each frame through the pure checks
of :mod:`dfl.transport.validate`, the :class:`~dfl.transport.reassembly.Reassembler`
and the :class:`~dfl.transport.ledger.Ledger`, in that order and under one lock,
and keeps what only it can: the current round, the wait of :meth:`Inbox.collect`
(which ends when every expected message is settled, or at its deadline), and
what peers say of themselves (``WAITING`` and ``BYE`` notices, the rounds of
their valid messages, whether they are down: :mod:`dfl.transport.liveness`).
Every rejection is counted and logged, rate-limited
(:mod:`dfl.transport.rejections`); nothing in a frame is executed or trusted
beyond the checks. Each sender has one slot per round
(:data:`BUFFER_ROUNDS_AHEAD`), and a frame failing a check on a channel bound
to a sender settles only that sender's message of its round.
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
from dfl.transport.liveness import PeerHealth
from dfl.transport.quorum import majority_at
from dfl.transport.reassembly import (
    MIN_POOLED_BYTES,
    Assembly,
    BufferPool,
    MessageKey,
    Reassembler,
    Slot,
    message_key,
)
from dfl.transport.rejections import Rejection, RejectionLog, Rejections
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
    "BUFFER_ROUNDS_AHEAD",
    "KEEP_DONE_ROUNDS",
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

BUFFER_ROUNDS_AHEAD = 8
"""Each sender has one slot per round for the current round and this many after it
(its junk for one round cannot evict or block its message of another), and one
more for its furthest round beyond them (a later one replaces it): where a node
that fell behind learns its neighbours' round and finds their messages of it."""
WAIT_REPORT_AFTER_S = 5.0
"""A wait for a round's messages longer than this is logged (which peers, how long)."""
WAIT_REPORT_MAX_EVERY_S = 60.0
"""Later reports of one wait come at doubling intervals, at most this far apart."""


class TransportClosedError(RuntimeError):
    """Raised by a receive on a transport that was closed (e.g. by the launcher)."""


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
      rejections: the rejections since the previous receive (any sender or
        round; the first :data:`~dfl.transport.rejections.KEEP_RECENT` of them).
      peer_rounds: peer → the highest round of a valid message it has sent this node.
      done: whether the wait ended (every peer settled or past its deadline);
        false when ``collect`` returned at its ``until`` time.
      rejected_count: how many frames were rejected since the previous receive
        (``rejections`` keeps only the first ones).
      late_count: how many of them were late messages (``Rejection.late``).
      down: expected in-neighbours held for down (see :mod:`dfl.transport.liveness`).
    """

    round: int
    messages: dict[int, list[np.ndarray]]
    rejected: dict[int, str]
    missing: list[int]
    finished: list[int]
    rejections: list[Rejection]
    peer_rounds: dict[int, int]
    done: bool = True
    rejected_count: int = 0
    late_count: int = 0
    down: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Wait:
    """The wait for one round's messages (it spans the collects of that round)."""

    round: int
    kind: int
    began: float
    report_at: float


@dataclasses.dataclass(frozen=True)
class _Ask:
    """What one collect asks beyond its round: see :meth:`Inbox.collect`."""

    dependents: frozenset[int]
    members: frozenset[int]
    down_after_missed: int


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
        self._rejections = Rejections()
        self._log = RejectionLog(node_id)
        self.health = PeerHealth(node_id)
        self._channels: dict[int, int] = {}  # peer → its open bound connections (tcp)
        self._largest = 0  # the largest payload expected of any kind
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
            self._largest = max(self._largest, spec.nbytes)
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
        bound: int | None = None,
        settles: bool = False,
        late: bool = False,
        nbytes: int | None = None,
    ) -> None:
        """Records a rejection (caller holds the lock).

        ``settles``: the failure is the message's own (not a window or resource
        limit); then, on a channel bound to a sender, that sender's message of
        the header's round is rejected as a whole (its round's wait for it
        ends). Frames bound to no member never end a wait. ``nbytes``: the bytes
        rejected (default: the frame's header and its plausible chunk).
        """
        sender = header.sender if header is not None else None
        round_ = header.round if header is not None else None
        late = late and bound is not None
        self._rejections.add(Rejection(reason, sender, round_, late))
        self.stats.rejected += 1
        self.stats.bytes_rejected += self._frame_bytes(header) if nbytes is None else nbytes
        self._log.rejected(reason, sender, round_)
        if settles and header is not None and bound is not None:
            if header.round > self._window().last:
                return  # nobody waits for it, and the ledger stays bounded
            key = (bound, header.round, self._message_kind(header.kind))
            self._ledger.reject(key, reason, floor=self._floor)
            self._reassembler.drop(key)
            self._cond.notify_all()

    def _message_kind(self, kind: int) -> int:
        """The message kind a failing frame of ``kind`` stands for (an unexpected
        or control kind: the round's wire message)."""
        if kind in self._specs and kind not in (Kind.BYE, Kind.WAITING):
            return kind
        return int(Kind.WIRE)

    def _frame_bytes(self, h: Header | None) -> int:
        """A frame's bytes as far as they can be believed: its header, and its chunk
        when no larger than the largest payload expected (a header may claim 2^40)."""
        if h is None:
            return HEADER_NBYTES
        return HEADER_NBYTES + (h.length if h.length <= self._largest else 0)

    def reject_frame(self, reason: str) -> None:
        """Records a frame that could not be parsed (its header is untrusted)."""
        with self._cond:
            self._reject(reason)

    def peer_lost(self, peer: int, why: str = "refused") -> None:
        """A transport saw ``peer``'s connection refused or lost: it is down
        (see :mod:`dfl.transport.liveness`) until its next valid frame."""
        with self._cond:
            if not self._closed and 0 <= peer < self.num_nodes:
                self.health.lost(peer, why)
                self._cond.notify_all()

    def channel_opened(self, peer: int) -> None:
        """A connection bound to ``peer`` was opened (after its handshake)."""
        with self._cond:
            self._channels[peer] = self._channels.get(peer, 0) + 1

    def channel_closed(self, peer: int, why: str = "closed") -> None:
        """A connection bound to ``peer`` closed; when it was its last one, the
        peer is down until its next valid frame (one of several closing is not)."""
        with self._cond:
            left = self._channels[peer] = max(0, self._channels.get(peer, 0) - 1)
        if left == 0:
            self.peer_lost(peer, why)

    def begin(self, header_bytes: Any, *, sender: int | None = None) -> Slot | None:
        """Validates one frame's header; returns where its chunk goes.

        Args:
          header_bytes: the frame's first 96 bytes.
          sender: the sender the frame's channel is bound to (tcp, Pilot): the
            header must name it, and a frame failing a check then settles that
            sender's message of its round at once. ``None``: not bound.

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

    def _received(self, kind: int, round_: int, nbytes: int) -> None:
        """Counts validated bytes (a delivered message's frames, a notice, a duplicate)."""
        self.stats.bytes += nbytes
        window = self._window()
        self._round_bytes.add(kind, round_, nbytes, floor=window.floor, last=window.last)

    def _window(self) -> Window:
        return Window(self._floor, self.max_rounds_ahead)

    def _begin(self, h: Header, bound: int | None) -> Slot:
        """The checks a frame passes in order (see :mod:`dfl.transport.validate`)."""
        drop = Slot(h, None)
        self.stats.frames += 1
        if self._closed:
            return drop
        problem = addressing_problem(h, self.me, bound=bound)
        if problem is not None:
            self._reject(problem, h, bound=bound, settles=True)
            return drop
        spec = self._specs.get(h.kind)
        if spec is None:
            self._reject(f"unexpected message kind {h.kind}", h, bound=bound, settles=True)
            return drop
        if h.kind == Kind.WAITING:
            self._notice(h, spec, bound)
            return drop
        state = self._ledger.state(message_key(h))
        if state is not None:  # its message is finished: a duplicate
            if state is MessageState.REJECTED:
                self.stats.bytes_rejected += self._frame_bytes(h)
            elif h.total == spec.nbytes and h.length <= h.total:
                self.stats.duplicates += 1
                self._received(h.kind, h.round, HEADER_NBYTES + h.length)
            else:
                self._reject("duplicate of a finished message with another size", h)
            return drop
        return self._admit(h, spec, bound)

    def _admit(self, h: Header, spec: WireSpec, bound: int | None) -> Slot:
        """The slot of a frame of a message not yet finished, after its content checks."""
        drop = Slot(h, None)
        problem = message_problem(
            h,
            spec,
            self._window(),
            senders=self._senders.get(h.kind),
            max_message_bytes=self.max_message_bytes,
        )
        if bound is not None and (problem is None or problem.late):
            self.health.heard(bound)  # a valid frame, if late: its sender is alive
        if problem is None:
            key = message_key(h)
            if not self._reassembler.is_open(key) and not self._room(key):
                self._reject(
                    f"round {h.round} is past this node's slots for node {h.sender} "
                    f"(rounds {self._floor}..{self._floor + BUFFER_ROUNDS_AHEAD} and its "
                    "furthest one): not buffered",
                    h,
                )
                return drop
            slot = self._reassembler.slot(h, bound)
            if slot is None:  # the chunk is written already
                self.stats.duplicates += 1
                self._received(h.kind, h.round, HEADER_NBYTES + h.length)
                return drop
            if isinstance(slot, Slot):
                return slot
            problem = slot
        self._reject(problem.reason, h, bound=bound, settles=problem.settles, late=problem.late)
        return drop

    def _room(self, key: MessageKey) -> bool:
        """Whether ``key``'s message gets a slot: every round up to
        :data:`BUFFER_ROUNDS_AHEAD` ahead does; beyond them, its sender's furthest
        message only (it replaces a nearer one there)."""
        sender, round_, kind = key
        near = self._floor + BUFFER_ROUNDS_AHEAD
        if round_ <= near:
            return True
        mine = self._reassembler.open_keys(sender, kind) + self._ledger.held_keys(sender, kind)
        far = [k for k in mine if k[1] > near]
        if any(k[1] > round_ for k in far):
            return False
        for k in far:
            self._reassembler.drop(k)
            self._ledger.forget(k)
        return True

    def _notice(self, h: Header, spec: WireSpec, bound: int | None) -> None:
        """A ``WAITING`` notice: the sender is alive, waiting for ``h.round``'s messages."""
        problem = notice_problem(h, spec)
        if problem is not None:
            self._reject(problem, h, bound=bound, settles=True)
            return
        self.stats.messages += 1
        self._received(h.kind, h.round, HEADER_NBYTES)
        if bound is not None:
            self.health.heard(bound)
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
                self._reject(done.reason, h, bound=slot.bound, settles=True)
                return
            if done is None:
                return
            self._ledger.validating(done.key)
        self._complete(h, done, slot.bound)

    def _complete(self, h: Header, assembly: Assembly, bound: int | None) -> None:
        """Decodes a complete message (outside the lock), then delivers or rejects it."""
        leaves = self._reassembler.decode(assembly, self._specs[h.kind])
        nbytes = HEADER_NBYTES * assembly.count + assembly.buf.nbytes
        with self._cond:
            if isinstance(leaves, str):
                self._reject(leaves, h, bound=bound, settles=True, nbytes=nbytes)
                if bound is None:  # nothing else ends its state: let a good copy in
                    self._ledger.forget(message_key(h))
                return
            key = message_key(h)
            self.stats.messages += 1
            self._received(h.kind, h.round, nbytes)
            if h.kind == Kind.BYE:
                self._ledger.deliver(key, None, floor=self._floor)
                self._finished[h.sender] = h.round
            else:
                self._ledger.deliver(key, leaves, floor=self._floor)
                # Only a validated message moves what this node believes of the peer's round.
                self._peer_seen[h.sender] = max(h.round, self._peer_seen.get(h.sender, -1))
            self._cond.notify_all()

    def feed(self, frame: Any, *, sender: int | None = None) -> None:
        """Takes one whole frame (header and chunk), e.g. from a loopback queue.

        ``sender``: the sender the frame's channel is bound to, as for :meth:`begin`.
        """
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
                    bound=sender,
                    settles=True,
                    nbytes=view.nbytes,
                )
                return
            slot = self._begin(header, sender)
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
        ask: _Ask,
        caps: Mapping[int, float],
    ) -> dict[int, float]:
        """Peer → when to stop waiting for it, for the peers not settled yet."""
        return {
            p: self._patience(p, round_, deadline, extend, caps.get(p))
            for p in peers
            if not self._settled(p, round_, kind, ask)
        }

    def _settled(self, peer: int, round_: int, kind: int, ask: _Ask) -> bool:
        if self._ledger.settled(peer, round_, kind):
            return True
        last = self._finished.get(peer)
        if last is not None and last < round_:
            return True
        if self.health.is_down(peer, ask.down_after_missed):
            return True
        # A peer that needs this node's messages cannot pass round_ + 1 before this
        # node sends its round_ + 1 message, unless it gave up waiting: then its
        # message of round_ was sent long ago and is lost. One member's claim
        # decides nothing for the others: more than half of the members must be there.
        return (
            peer in ask.dependents
            and self._peer_seen.get(peer, -1) >= round_ + 2
            and majority_at(round_ + 2, ask.members, self._peer_seen)
        )

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
        members: Collection[int] | None = None,
        down_after_missed: int = 0,
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
            rounds ahead has given up on this node, so its message is not
            awaited, provided more than half of ``members`` are seen there too
            (:mod:`dfl.transport.quorum`: one member decides nothing for others).
          members: the node's in-neighbours over one schedule period; ``None``:
            ``peers``.
          down_after_missed: a peer held for down (:mod:`dfl.transport.liveness`:
            its connection was lost, or it missed this many consecutive
            deadlines) is not awaited; 0: every peer is (WAIT algorithms).
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
        ask = _Ask(
            frozenset(dependents),
            frozenset(peers if members is None else members),
            down_after_missed,
        )
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
                ends = self._ends(round_, kind, peers, deadline, extend, ask, caps)
                end = max(ends.values(), default=now)
                if end <= now:
                    self._missed(round_, kind, peers, ask, give_up_after)
                    return self._result(round_, kind, peers, ask, done=True)
                if until is not None and until <= now:
                    return self._result(round_, kind, peers, ask, done=False)
                self._report(w, {p: e for p, e in ends.items() if e > now}, now)
                stop = end if until is None else min(end, until)
                remaining = max(min(stop, w.report_at) - now, 0.0)
                if pump is None:
                    self._cond.wait(remaining)
                    continue
            pump(remaining)

    def _missed(
        self, round_: int, kind: int, peers: list[int], ask: _Ask, lost: Mapping[int, float]
    ) -> None:
        """Counts a missed deadline for every peer whose message of ``round_`` is
        neither delivered nor rejected as the wait ends (not one that finished,
        or whose message the run's fault injector lost)."""
        for p in peers:
            if p in lost or self._ledger.settled(p, round_, kind):
                continue
            if self._finished.get(p, round_) < round_:
                continue
            self.health.missed(p, round_)

    def _result(
        self, round_: int, kind: int, peers: list[int], ask: _Ask, *, done: bool
    ) -> Received:
        complete = self._ledger.delivered(round_, kind)
        rejected = self._ledger.rejected(round_, kind)
        messages = {p: complete[p] for p in peers if p in complete}
        finished = [
            p for p in peers if p not in messages and self._finished.get(p, round_) < round_
        ]
        rejections, count, late = self._rejections.take()
        self._log.flush()
        return Received(
            round=round_,
            messages=messages,
            rejected={p: rejected[p] for p in peers if p in rejected and p not in messages},
            missing=[p for p in peers if p not in messages],
            finished=finished,
            rejections=rejections,
            peer_rounds=dict(self._peer_seen),
            done=done,
            rejected_count=count,
            late_count=late,
            down=[p for p in peers if self.health.is_down(p, ask.down_after_missed)],
        )

    def received_bytes(self, kind: int, through_round: int | None = None) -> int:
        """Bytes of the valid frames of ``kind`` (headers included: delivered
        messages, notices, duplicates of them), of rounds up to ``through_round``
        when given: see :class:`RoundBytes` (frames of rounds before the current
        one always count). Rejected bytes are :attr:`InboxStats.bytes_rejected`."""
        with self._cond:
            return self._round_bytes.total(int(kind), through_round)

    def rejected_bytes(self) -> int:
        """Bytes of rejected frames (each its header and the chunk it could
        plausibly carry, however large a length it declared)."""
        with self._cond:
            return self.stats.bytes_rejected

    def close(self) -> None:
        """Wakes every waiting collect, which then raises :class:`TransportClosedError`."""
        with self._cond:
            self._closed = True
            self._log.flush(force=True)
            self._cond.notify_all()
