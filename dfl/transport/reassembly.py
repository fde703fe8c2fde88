"""Reassembly of chunked messages into buffers whose owner is always known.

A message of ``total`` payload bytes arrives as ``chunk_count`` frames in any
order. The :class:`Reassembler` opens one :class:`Assembly` per ``(sender,
round, kind)``, hands out one :class:`Slot` per chunk (the view a transport
writes the chunk's bytes into: tcp's ``recv_into``, loopback's copy), and
returns the assembly once every chunk is in.

Every buffer has exactly one owner at a time (:class:`BufferPool`):

* **free**: in the pool, reused for the next message of the same size (large
  messages are spared fresh memory's page faults every round);
* **filling**: owned by its assembly; each chunk being written is *in flight*
  (its slot is lent to a writer). An assembly dropped meanwhile (rejected,
  or its round closed) is *abandoned*: its buffer returns to the pool when the
  last in-flight chunk ends, never while a writer may still write into it;
* **lent**: the decoded leaves of a complete message are views of a *lease*
  (:meth:`BufferPool.lend`), handed to the inbox and by it to the node. The
  buffer returns to the pool when the lease object is finalized, i.e. once no
  leaf, view or array derived from it exists any more (``weakref.finalize``:
  the pool never inspects reference counts, and a consumer that keeps a leaf
  forever simply keeps the buffer).

The reassembler is not thread-safe (the inbox calls it under its lock, except
:meth:`Reassembler.decode`, which only touches the thread-safe pool).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import weakref

import numpy as np

from dfl.transport.validate import Problem
from dfl.transport.wire import Header, WireError, WireSpec

MessageKey = tuple[int, int, int]
"""``(sender, round, kind)``: one message."""

MIN_POOLED_BYTES = 1 << 20
"""Buffers at least this large are pooled for reuse; smaller ones are cheap to allocate."""


def message_key(h: Header) -> MessageKey:
    """The message a frame belongs to."""
    return (h.sender, h.round, h.kind)


class BufferPool:
    """Free reassembly buffers, reused by size (at most ``capacity`` kept). Thread-safe.

    Args:
      capacity: buffers kept free; the oldest beyond it are released.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._free: list[np.ndarray] = []
        # Leases end on whatever thread drops the last view: they only append here
        # (atomic, lock-free); take() moves them to the free list.
        self._returned: collections.deque[np.ndarray] = collections.deque()

    def take(self, nbytes: int) -> np.ndarray:
        """A free buffer of ``nbytes``, or a new one (contents undefined)."""
        while self._returned:
            self.give_back(self._returned.popleft())
        with self._lock:
            for i, buf in enumerate(self._free):
                if buf.nbytes == nbytes:
                    return self._free.pop(i)
        return np.empty(nbytes, np.uint8)

    def give_back(self, buf: np.ndarray) -> None:
        """Makes ``buf`` free again; its caller must hold no view of it."""
        if buf.nbytes < MIN_POOLED_BYTES:
            return
        with self._lock:
            self._free.append(buf)
            del self._free[: max(0, len(self._free) - self.capacity)]

    def lend(self, buf: np.ndarray) -> memoryview:
        """A lease on ``buf``: a byte view to decode from; ``buf`` is free again once
        the lease and everything made from it (leaves, views) are gone.

        The lease is a ``memoryview`` of a private array view: numpy arrays made
        from it (``np.frombuffer``, and their views) refer to it, whereas a
        numpy view of an array would refer straight to ``buf`` (numpy collapses
        view chains) and outlive the lease unnoticed.
        """
        owner = buf.view()
        weakref.finalize(owner, self._returned.append, buf)
        return owner.data

    @property
    def free(self) -> int:
        """Buffers free now (leases already ended included)."""
        return len(self._free) + len(self._returned)


@dataclasses.dataclass
class Assembly:
    """One message being reassembled.

    Attributes:
      key: its ``(sender, round, kind)``.
      buf: the payload buffer (owned by this assembly until it completes).
      count: chunks announced by its first frame.
      chunks: chunk index → ``(offset, length)`` of the chunks written.
      inflight: chunk indices whose slot is lent to a writer.
      abandoned: dropped before completing; its buffer returns to the pool
        when ``inflight`` empties.
      released: its buffer went back to the pool (it is no longer this assembly's).
    """

    key: MessageKey
    buf: np.ndarray
    count: int
    chunks: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    inflight: set[int] = dataclasses.field(default_factory=set)
    abandoned: bool = False
    released: bool = False

    def tiling_problem(self) -> str | None:
        """Why the written chunks do not tile the payload exactly (``None`` if they do)."""
        position = 0
        for index in range(self.count):
            offset, length = self.chunks[index]
            if offset != position:
                return f"chunk {index} starts at {offset}, expected {position}"
            position += length
        if position != self.buf.nbytes:
            return f"chunks cover {position} of {self.buf.nbytes} payload bytes"
        return None


@dataclasses.dataclass
class Slot:
    """Where one chunk goes: write ``header.length`` bytes into ``view``, then ``Inbox.end``.

    ``view`` is ``None`` when the chunk is to be read and dropped (a duplicate or
    a rejected message).

    Attributes:
      header: the chunk's frame header.
      view: the bytes to fill, or ``None``.
      assembly: the assembly ``view`` belongs to (``None`` with ``view``).
      bound: the sender the frame's channel is bound to (``None``: not bound;
        its failures then end no wait).
    """

    header: Header
    view: memoryview | None
    assembly: Assembly | None = None
    bound: int | None = None

    @property
    def keep(self) -> bool:
        """Whether the chunk's bytes are wanted."""
        return self.view is not None


class Reassembler:
    """The messages being reassembled at one node, and their buffers.

    Args:
      pool: where buffers come from and return to.
    """

    def __init__(self, pool: BufferPool):
        self.pool = pool
        self._open: dict[MessageKey, Assembly] = {}

    def pending(self, sender: int) -> int:
        """Messages of ``sender`` being reassembled."""
        return sum(1 for key in self._open if key[0] == sender)

    def open_keys(self, sender: int, kind: int) -> list[MessageKey]:
        """The messages of ``sender`` and ``kind`` being reassembled."""
        return [k for k in self._open if k[0] == sender and k[2] == kind]

    def is_open(self, key: MessageKey) -> bool:
        """Whether the message of ``key`` is being reassembled."""
        return key in self._open

    def slot(self, h: Header, bound: int | None = None) -> Slot | Problem | None:
        """The slot for the chunk of ``h``, opening its assembly on its first chunk.

        A chunk whose earlier copy is still in flight (its writer stalled: a
        truncated frame held open) starts the message over in a fresh assembly,
        so a stalled copy cannot shadow a later complete one; the stalled
        writer's bytes then go to the abandoned buffer.

        Args:
          h: a header that passed :func:`~dfl.transport.validate.message_problem`
            (the caller decides whether the sender may open one more assembly).
          bound: the sender the frame's channel is bound to (kept in the slot).

        Returns:
          The :class:`Slot`; a :class:`Problem` (it ``settles``: the chunks
          disagree, so the whole message is bad); or ``None`` for a chunk already
          written.
        """
        key = message_key(h)
        assembly = self._open.get(key)
        if assembly is not None and h.chunk_index in assembly.inflight:
            self.drop(key)
            assembly = None
        if assembly is None:
            assembly = Assembly(key, self.pool.take(h.total), h.chunk_count)
            self._open[key] = assembly
        elif assembly.count != h.chunk_count:
            return Problem(
                f"chunk count {h.chunk_count} disagrees with {assembly.count}", settles=True
            )
        if h.chunk_index in assembly.chunks:
            return None
        assembly.inflight.add(h.chunk_index)
        return Slot(h, assembly.buf.data[h.offset : h.offset + h.length], assembly, bound)

    def finish(self, slot: Slot, *, crc_ok: bool) -> Assembly | Problem | None:
        """Ends the chunk written into ``slot``.

        Returns:
          The complete :class:`Assembly` (no longer open; its buffer is the
          caller's, see :meth:`decode`); a :class:`Problem` for a checksum
          mismatch (the assembly is dropped); ``None`` while chunks are missing
          or when the assembly was dropped meanwhile.
        """
        assembly, h = slot.assembly, slot.header
        assert assembly is not None, "finish() of a slot without a view"
        assembly.inflight.discard(h.chunk_index)
        if assembly.abandoned:
            self._release(assembly)
            return None
        if not crc_ok:
            return Problem(f"payload checksum mismatch in chunk {h.chunk_index}", settles=True)
        assembly.chunks[h.chunk_index] = (h.offset, h.length)
        if len(assembly.chunks) < assembly.count:
            return None
        del self._open[assembly.key]
        return assembly

    def decode(self, assembly: Assembly, spec: WireSpec) -> list[np.ndarray] | str:
        """The validated leaves of a complete assembly (views of a lease on its
        buffer, which returns to the pool once they are all gone), or why not."""
        problem = assembly.tiling_problem()
        if problem is not None:
            self.pool.give_back(assembly.buf)
            return problem
        try:
            return spec.decode(self.pool.lend(assembly.buf))
        except WireError as e:
            return e.reason

    def drop(self, key: MessageKey) -> None:
        """Abandons the assembly of ``key`` (if open)."""
        assembly = self._open.pop(key, None)
        if assembly is not None:
            assembly.abandoned = True
            self._release(assembly)

    def purge(self, floor: int) -> None:
        """Abandons every assembly of a round before ``floor``."""
        for key in [k for k in self._open if k[1] < floor]:
            self.drop(key)

    def _release(self, assembly: Assembly) -> None:
        """Frees an abandoned assembly's buffer once no writer holds a slot of it."""
        if assembly.abandoned and not assembly.inflight and not assembly.released:
            assembly.released = True
            self.pool.give_back(assembly.buf)
