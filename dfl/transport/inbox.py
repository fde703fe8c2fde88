"""Reassembly and validation of incoming frames, shared by every transport.

An :class:`Inbox` belongs to one node. Transports hand it frames (loopback: whole
frames from a queue; tcp: a header, then the chunk read straight into the slot
:meth:`Inbox.begin` returns). It checks each frame against what the node
expects, reassembles chunked messages, verifies checksums and finite values,
and keeps the complete messages until the node's runner collects them for a
round. Every rejection is logged with its reason and counted; nothing in a frame
is executed or trusted beyond the checks.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

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

Senders = Callable[[int], Collection[int]]
"""``senders(round)``: the nodes allowed to send a message kind at ``round``."""

KEEP_DONE_ROUNDS = 8
"""Rounds behind the current one whose finished messages are remembered, so a late
duplicate is recognised as a duplicate (ignored) rather than an old-round message."""
MIN_POOLED_BYTES = 1 << 20
"""Reassembly buffers at least this large are reused across rounds (see ``Inbox._buffer``)."""
MAX_PENDING_PER_SENDER = 8
"""Messages of the current and future rounds one sender may have buffered here."""


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
        views into a reassembly buffer, which is reused once nothing refers to
        it any more (copy or convert them, e.g. with ``jnp.asarray``, to keep them).
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
class InboxStats:
    """Counters of one inbox (cumulative)."""

    frames: int = 0
    bytes: int = 0
    messages: int = 0
    duplicates: int = 0
    rejected: int = 0


class RoundBytes:
    """Bytes received per message kind, attributed to the round in each frame's header.

    Rounds before the inbox's current round are folded into one total per kind,
    and rounds past its window into the window's last round, so memory stays
    bounded whatever round numbers a peer writes into its headers.
    """

    def __init__(self) -> None:
        self._past: dict[int, int] = {}
        self._ahead: dict[tuple[int, int], int] = {}

    def add(self, kind: int, round_: int, nbytes: int, *, floor: int, last: int) -> None:
        """Counts a frame of ``round_`` when the current round is ``floor`` and
        ``last`` is the furthest round accepted."""
        if round_ < floor:
            self._past[kind] = self._past.get(kind, 0) + nbytes
            return
        key = (kind, min(round_, last + 1))
        self._ahead[key] = self._ahead.get(key, 0) + nbytes

    def fold(self, floor: int) -> None:
        """Folds the rounds before ``floor`` into the per-kind totals."""
        for key in [k for k in self._ahead if k[1] < floor]:
            self._past[key[0]] = self._past.get(key[0], 0) + self._ahead.pop(key)

    def total(self, kind: int, through_round: int | None = None) -> int:
        """Bytes of ``kind``, of rounds up to ``through_round`` when given (rounds
        already folded are always included)."""
        ahead = sum(
            n
            for (k, r), n in self._ahead.items()
            if k == kind and (through_round is None or r <= through_round)
        )
        return self._past.get(kind, 0) + ahead


@dataclasses.dataclass
class _Partial:
    buf: np.ndarray
    count: int
    chunks: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    inflight: set[int] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class Slot:
    """Where one chunk goes: write ``header.length`` bytes into ``view``, then ``Inbox.end``.

    ``view`` is ``None`` when the chunk is to be read and dropped (a duplicate or
    a rejected message).
    """

    header: Header
    view: memoryview | None

    @property
    def keep(self) -> bool:
        """Whether the chunk's bytes are wanted."""
        return self.view is not None


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
        self._partial: dict[tuple[int, int, int], _Partial] = {}
        self._done: dict[tuple[int, int, int], str] = {}
        self._complete: dict[tuple[int, int], dict[int, list[np.ndarray]]] = (
            collections.defaultdict(dict)
        )
        self._rejected: dict[tuple[int, int], dict[int, str]] = collections.defaultdict(dict)
        self._finished: dict[int, int] = {}
        self._waiting: dict[int, tuple[int, float]] = {}
        self._peer_seen: dict[int, int] = {}
        self._buffers: dict[tuple[int, int], list[np.ndarray]] = {}
        self._retired: list[np.ndarray] = []
        self._rejections: list[Rejection] = []
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
        self, reason: str, header: Header | None = None, *, key=None, late: bool = False
    ) -> None:
        """Records a rejection (caller holds the lock)."""
        sender = header.sender if header is not None else None
        round_ = header.round if header is not None else None
        rejection = Rejection(reason, sender, round_, late)
        self._rejections.append(rejection)
        self.stats.rejected += 1
        where = "" if header is None else f" from node {sender} for round {round_}"
        log.warning("node %d rejected a message%s: %s", self.node_id, where, reason)
        if key is not None:
            self._done[key] = "rejected"
            dropped = self._partial.pop(key, None)
            if dropped is not None:
                self._retire(dropped.buf)
            if header is not None and header.round >= self._floor:
                self._rejected[(header.round, header.kind)][header.sender] = reason
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

    def _begin(self, h: Header, bound: int | None) -> Slot:
        drop = Slot(h, None)
        self.stats.frames += 1
        self.stats.bytes += HEADER_NBYTES + h.length
        self._round_bytes.add(
            h.kind,
            h.round,
            HEADER_NBYTES + h.length,
            floor=self._floor,
            last=self._floor + self.max_rounds_ahead,
        )
        if self._closed:
            return drop
        if h.run != self.run:
            self._reject("wrong run id (a message from another run)", h)
            return drop
        if h.recipient != self.node_id:
            self._reject(f"addressed to node {h.recipient}, not {self.node_id}", h)
            return drop
        if not 0 <= h.sender < self.num_nodes or h.sender == self.node_id:
            self._reject(f"unknown sender {h.sender} (nodes are 0..{self.num_nodes - 1})", h)
            return drop
        if bound is not None and h.sender != bound:
            self._reject(f"sender {h.sender} on the connection of node {bound}", h)
            return drop
        spec = self._specs.get(h.kind)
        if spec is None:
            self._reject(f"unexpected message kind {h.kind}", h)
            return drop
        control = h.kind in (Kind.BYE, Kind.WAITING)
        if h.kind == Kind.WAITING:
            if h.length == 0 and h.total == 0 and h.schema == spec.digest:
                self.stats.messages += 1
                self._waiting[h.sender] = (h.round, time.monotonic())
                self._cond.notify_all()
            else:
                self._reject("malformed WAITING notice", h)
            return drop
        key = (h.sender, h.round, h.kind)
        state = self._done.get(key)
        if state is not None:
            if state != "rejected":
                self.stats.duplicates += 1
            return drop
        if h.round < self._floor and not control:
            self._reject(f"old round {h.round} (this node is at round {self._floor})", h, late=True)
            self._done[key] = "rejected"
            return drop
        if h.round > self._floor + self.max_rounds_ahead:
            self._reject(
                f"round {h.round} is more than {self.max_rounds_ahead} rounds ahead of "
                f"{self._floor}",
                h,
            )
            return drop
        senders = self._senders.get(h.kind)
        if senders is not None and h.sender not in senders(h.round):
            self._reject(
                f"node {h.sender} is not an in-neighbour of node {self.node_id} at round {h.round}",
                h,
            )
            return drop
        if h.schema != spec.digest:
            self._reject(
                "payload schema digest mismatch (different shapes, dtypes or pytree "
                f"structure; expected {spec.description[:200]})",
                h,
                key=key,
            )
            return drop
        if h.total != spec.nbytes or h.total > self.max_message_bytes:
            self._reject(f"payload of {h.total} bytes, expected {spec.nbytes}", h, key=key)
            return drop
        partial = self._partial.get(key)
        if partial is None:
            if h.chunk_count > max(1, h.total):
                self._reject(f"{h.chunk_count} chunks for {h.total} bytes", h, key=key)
                return drop
            if self._pending(h.sender) >= MAX_PENDING_PER_SENDER:
                self._reject(
                    f"over {MAX_PENDING_PER_SENDER} messages of node {h.sender} pending", h
                )
                return drop
            partial = _Partial(self._buffer(h.total), h.chunk_count)
            self._partial[key] = partial
        elif partial.count != h.chunk_count:
            self._reject(f"chunk count {h.chunk_count} disagrees with {partial.count}", h, key=key)
            return drop
        if h.chunk_index in partial.chunks or h.chunk_index in partial.inflight:
            self.stats.duplicates += 1
            return drop
        partial.inflight.add(h.chunk_index)
        return Slot(h, partial.buf.data[h.offset : h.offset + h.length])

    def _buffer(self, nbytes: int) -> np.ndarray:
        """A reassembly buffer: a retired one nothing refers to any more, or a new one.

        Reusing buffers spares a large message the page faults of fresh memory
        every round. A retired buffer is reused only when its reference count
        shows that no array, view or reader still refers to it (CPython).
        """
        pool = self._retired
        for i in range(len(pool)):
            if pool[i].nbytes == nbytes and sys.getrefcount(pool[i]) == 2:
                return pool.pop(i)
        return np.empty(nbytes, np.uint8)

    def _retire(self, *buffers: np.ndarray) -> None:
        self._retired.extend(b for b in buffers if b.nbytes >= MIN_POOLED_BYTES)
        del self._retired[: max(0, len(self._retired) - 4 * self.num_nodes)]

    def _pending(self, sender: int) -> int:
        partial = sum(1 for k in self._partial if k[0] == sender)
        return partial + sum(1 for v in self._complete.values() if sender in v)

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
        key = (h.sender, h.round, h.kind)
        if crc is None:
            crc = checksum([slot.view], h.flags & CHECKSUM_MASK)
        crc_ok = crc == h.payload_crc
        with self._cond:
            partial = self._partial.get(key)
            if partial is None:  # rejected or purged meanwhile
                return
            partial.inflight.discard(h.chunk_index)
            if not crc_ok:
                self._reject(f"payload checksum mismatch in chunk {h.chunk_index}", h, key=key)
                return
            partial.chunks[h.chunk_index] = (h.offset, h.length)
            if len(partial.chunks) < partial.count:
                return
            del self._partial[key]
            self._done[key] = "validating"
        problem = _tiling_problem(partial)
        leaves: list[np.ndarray] = []
        if problem is None:
            try:
                leaves = self._specs[h.kind].decode(partial.buf)
            except WireError as e:
                problem = e.reason
        with self._cond:
            if problem is not None:
                self._reject(problem, h, key=key)
                return
            self._done[key] = "ok"
            self.stats.messages += 1
            if h.kind == Kind.BYE:
                self._finished[h.sender] = h.round
            else:
                if h.round >= self._floor:
                    self._complete[(h.round, h.kind)][h.sender] = leaves
                    self._buffers.setdefault((h.round, h.kind), []).append(partial.buf)
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

    def _patience(self, peer: int, round_: int, deadline: float, extend: float) -> float:
        """When to stop waiting for ``peer``: later while it reports waiting for an older round."""
        waiting = self._waiting.get(peer)
        if extend > 0 and waiting is not None and waiting[0] < round_:
            return max(deadline, waiting[1] + extend)
        return deadline

    def _settled(self, peer: int, round_: int, kind: int, dependents: Collection[int]) -> bool:
        if peer in self._complete.get((round_, kind), ()):
            return True
        if peer in self._rejected.get((round_, kind), ()):
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
        for key in [k for k in self._complete if k[0] < round_]:
            del self._complete[key]
        for key in [k for k in self._buffers if k[0] < round_]:
            self._retire(*self._buffers.pop(key))
        for key in [k for k in self._rejected if k[0] < round_]:
            del self._rejected[key]
        for key in [k for k in self._partial if k[1] < round_]:
            self._retire(self._partial.pop(key).buf)
        for key in [k for k in self._done if k[1] < round_ - KEEP_DONE_ROUNDS]:
            del self._done[key]

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
        pump: Callable[[float], bool] | None = None,
    ) -> Received:
        """Waits until every peer's message of ``round_`` is settled or ``deadline``.

        Also makes ``round_`` the current round: older messages are dropped and
        frames for older rounds are rejected from now on.

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
          pump: for transports whose frames are fed by the waiting thread itself
            (loopback): ``pump(timeout)`` feeds what arrives within ``timeout``
            (the lock is not held); ``None`` waits for other threads to feed.

        Raises:
          TransportClosedError: if the inbox was closed.
        """
        peers = list(peers)
        dependents = frozenset(dependents)
        with self._cond:
            self._advance(round_)
        while True:
            with self._cond:
                if self._closed:
                    raise TransportClosedError(f"node {self.node_id}: transport closed")
                now = time.monotonic()
                pending = [p for p in peers if not self._settled(p, round_, kind, dependents)]
                end = max(
                    (self._patience(p, round_, deadline, extend) for p in pending), default=now
                )
                if end <= now:
                    return self._result(round_, kind, peers, done=True)
                if until is not None and until <= now:
                    return self._result(round_, kind, peers, done=False)
                remaining = min(end, until if until is not None else end) - now
                if pump is None:
                    self._cond.wait(remaining)
                    continue
            pump(remaining)

    def _result(self, round_: int, kind: int, peers: list[int], *, done: bool) -> Received:
        complete = self._complete.get((round_, kind), {})
        rejected = self._rejected.get((round_, kind), {})
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

    def latest_round(self) -> int | None:
        """The highest round of any valid message a peer has sent this node."""
        with self._cond:
            return max(self._peer_seen.values(), default=None)

    def close(self) -> None:
        """Wakes every waiting collect, which then raises :class:`TransportClosedError`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _tiling_problem(partial: _Partial) -> str | None:
    """Why the received chunks do not tile the payload exactly (``None`` if they do)."""
    position = 0
    for index in range(partial.count):
        offset, length = partial.chunks[index]
        if offset != position:
            return f"chunk {index} starts at {offset}, expected {position}"
        position += length
    if position != partial.buf.nbytes:
        return f"chunks cover {position} of {partial.buf.nbytes} payload bytes"
    return None
