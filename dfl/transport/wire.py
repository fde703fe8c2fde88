"""The wire format every transport and runner shares: framed, checksummed raw arrays.

A message is the payload of one pytree of arrays (a node's ``wire`` pytree) sent
as one or more *frames*. Each frame is a fixed 96-byte header followed by one
chunk of the payload::

    offset size field
         0    4 magic            b"DFLW"
         4    1 version          FORMAT_VERSION
         5    1 kind             message kind (Kind)
         6    2 flags            bits 0-3: the payload checksum (Checksum)
         8    4 sender           node id
        12    4 recipient        node id
        16    8 round            int64
        24   16 run              blake2b-128 of the run id
        40   16 schema           blake2b-128 of the payload's treedef, shapes, dtypes
        56    8 total            payload bytes of the whole message
        64    4 chunk_index
        68    4 chunk_count
        72    8 offset           where this chunk starts in the payload
        80    8 length           bytes of this chunk (the frame's length prefix)
        88    4 payload_crc      checksum of this chunk (xxh3-64's low 32 bits, or crc32)
        92    4 header_crc       zlib.crc32 of bytes 0..91

All integers are little-endian. The payload checksum is xxh3-64 (its low 32
bits; about 25 GB/s) when the ``xxhash`` package is installed, else zlib's crc32
(about 3 GB/s); the header names it, and a receiver checks with the one named.

The payload is the leaves of the pytree in ``jax.tree.flatten`` order, each as
its C-ordered little-endian bytes, with no padding and no per-leaf metadata:
both ends derive the shapes and dtypes from the config (:class:`WireSpec`), and
the schema digest proves they agree. Nothing in a frame is ever interpreted as
code (no pickle); a receiver decodes only into its own expected dtypes and
shapes and checks every header field, both checksums, the payload size and
that every float is finite.

The header is a fixed ``struct`` rather than msgpack: msgpack's integers are
variable-length, so a message's size would depend on its round and a stream
reader could not know the header's length before parsing it. A fixed header
is parsed with one ``unpack``, is the length prefix of its frame, and makes the
bytes of one message on the wire exactly :func:`message_nbytes`, whatever its
round or sender: the simulation counts the same number as the transports carry.

Example::

    spec = WireSpec.from_tree(jax.eval_shape(algorithm.step, state, batches, key)[1])
    payload = encode_payload(spec, wire, chunk_bytes=DEFAULT_CHUNK_BYTES)
    frames = payload.frames(run=run_digest("run-1"), sender=0, recipient=1, round=3, kind=Kind.WIRE)
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import struct
import threading
import zlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

try:  # optional: a checksum ~8x faster than crc32
    import xxhash
except ImportError:  # pragma: no cover - depends on the install
    xxhash = None

MAGIC = b"DFLW"
FORMAT_VERSION = 1
HEADER = struct.Struct("<4sBBHIIq16s16sQIIQQII")
HEADER_NBYTES = HEADER.size
"""Bytes of one frame header (96)."""
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
"""Largest payload of one frame unless configured (``transport.chunk_bytes``)."""
_HEADER_CRC_AT = HEADER_NBYTES - 4
CHECKSUM_MASK = 0xF


class Checksum(enum.IntEnum):
    """Payload checksum algorithms (header ``flags`` bits 0-3)."""

    CRC32 = 0
    XXH3 = 1


def checksum_available(algorithm: int) -> bool:
    """Whether this host can compute ``algorithm``."""
    return algorithm == Checksum.CRC32 or (algorithm == Checksum.XXH3 and xxhash is not None)


DEFAULT_CHECKSUM = Checksum.XXH3 if xxhash is not None else Checksum.CRC32
"""The checksum this host puts on the wire: xxh3 where ``xxhash`` is installed."""


class Hasher:
    """Incremental payload checksum: ``update`` with consecutive pieces, then ``digest``."""

    def __init__(self, algorithm: int):
        if not checksum_available(algorithm):
            raise WireError(f"payload checksum algorithm {algorithm} is not available here")
        self._xxh = None
        if algorithm == Checksum.XXH3:
            assert xxhash is not None
            self._xxh = xxhash.xxh3_64()
        self._crc = 0

    def update(self, data: Any) -> None:
        """Adds the next bytes."""
        if self._xxh is not None:
            self._xxh.update(data)
        else:
            self._crc = zlib.crc32(data, self._crc)

    def digest(self) -> int:
        """The 32-bit checksum of everything added."""
        if self._xxh is not None:
            return self._xxh.intdigest() & 0xFFFFFFFF
        return self._crc


def checksum(parts: Sequence[Any], algorithm: int = DEFAULT_CHECKSUM) -> int:
    """The 32-bit payload checksum of the concatenation of ``parts``."""
    if algorithm == Checksum.XXH3 and len(parts) == 1 and xxhash is not None:
        return xxhash.xxh3_64_intdigest(parts[0]) & 0xFFFFFFFF
    hasher = Hasher(algorithm)
    for part in parts:
        hasher.update(part)
    return hasher.digest()


assert HEADER_NBYTES == 96, HEADER_NBYTES


class Kind(enum.IntEnum):
    """Message kinds. Transports treat them as opaque numbers but for the control kinds.

    * ``HELLO``: tcp connection handshake (empty payload).
    * ``WIRE``: an algorithm's wire pytree of one round.
    * ``BYE``: the sender finished the run (empty payload; ``round`` is its last).
    * ``WAITING``: the sender is alive but still waiting for messages of ``round``
      (empty payload); receivers give its next message more time.
    """

    HELLO = 0
    WIRE = 1
    BYE = 2
    WAITING = 3


class WireError(ValueError):
    """A frame or message that fails validation; ``reason`` says why.

    Attributes:
      reason: human-readable cause (logged by the receiver).
      header: the parsed header when it was trustworthy (its checksum held),
        so the rejection can be attributed to a sender and round; else ``None``.
    """

    def __init__(self, reason: str, header: Header | None = None):
        super().__init__(reason)
        self.reason = reason
        self.header = header


def run_digest(run_id: str) -> bytes:
    """The 16-byte digest of a run id carried in every header."""
    return hashlib.blake2b(run_id.encode(), digest_size=16).digest()


def _dtype_name(dtype: np.dtype) -> str:
    return f"{np.dtype(dtype).name}:{np.dtype(dtype).itemsize}"


@dataclasses.dataclass(frozen=True)
class WireSpec:
    """The expected layout of one kind of message: treedef, shapes, dtypes.

    Built by each end from its own config (never from the wire), e.g. from
    ``jax.eval_shape(algorithm.step, ...)``. Compressed wires are registered
    dataclass pytrees whose static metadata (original shapes) lives in the
    treedef, so :meth:`unflatten` rebuilds them exactly.

    Attributes:
      treedef: the pytree structure.
      shapes: every leaf's shape.
      dtypes: every leaf's dtype.
      offsets: every leaf's byte offset in the payload.
      nbytes: payload bytes.
      digest: 16-byte blake2b of :attr:`description`.
      description: the treedef and ``shape:dtype`` of every leaf, as text.
    """

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]
    offsets: tuple[int, ...]
    nbytes: int
    digest: bytes
    description: str

    @classmethod
    def from_tree(cls, tree: Any) -> WireSpec:
        """The spec of a pytree of arrays or ``jax.ShapeDtypeStruct``.

        Raises:
          ValueError: for a leaf that cannot go on the wire (PRNG keys, objects).
        """
        leaves, treedef = jax.tree.flatten(tree)
        shapes, dtypes, offsets = [], [], []
        offset = 0
        for k, leaf in enumerate(leaves):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) or not (
                jax.dtypes.issubdtype(leaf.dtype, np.number) or leaf.dtype == np.bool_
            ):
                raise ValueError(
                    f"leaf {k} of the wire pytree has dtype {leaf.dtype}, "
                    "which cannot be sent; expected numeric arrays"
                )
            dtype = np.dtype(leaf.dtype)
            shape = tuple(int(d) for d in leaf.shape)
            shapes.append(shape)
            dtypes.append(dtype)
            offsets.append(offset)
            offset += math.prod(shape) * dtype.itemsize
        text = (
            str(treedef)
            + "|"
            + ";".join(f"{s}:{_dtype_name(d)}" for s, d in zip(shapes, dtypes, strict=True))
        )
        return cls(
            treedef=treedef,
            shapes=tuple(shapes),
            dtypes=tuple(dtypes),
            offsets=tuple(offsets),
            nbytes=offset,
            digest=hashlib.blake2b(text.encode(), digest_size=16).digest(),
            description=text,
        )

    @classmethod
    def empty(cls) -> WireSpec:
        """The spec of a message without payload (``HELLO``, ``BYE``, ``WAITING``)."""
        return cls.from_tree(())

    def leaf_nbytes(self, k: int) -> int:
        """Bytes of leaf ``k``."""
        return math.prod(self.shapes[k]) * self.dtypes[k].itemsize

    def decode(self, payload: Any) -> list[np.ndarray]:
        """The leaves of a complete payload (views into it, no copy), validated.

        Args:
          payload: a bytes-like object of exactly :attr:`nbytes` bytes.

        Returns:
          One read-only numpy array per leaf with this spec's shape and dtype.

        Raises:
          WireError: for a wrong size or a non-finite float.
        """
        view = memoryview(payload).cast("B")
        if view.nbytes != self.nbytes:
            raise WireError(f"payload has {view.nbytes} bytes, expected {self.nbytes}")
        leaves = []
        for k, (shape, dtype, offset) in enumerate(
            zip(self.shapes, self.dtypes, self.offsets, strict=True)
        ):
            count = math.prod(shape)
            leaf = np.frombuffer(view, dtype=_little(dtype), count=count, offset=offset)
            leaf = leaf.reshape(shape)
            if jax.dtypes.issubdtype(dtype, np.inexact) and not bool(np.isfinite(leaf).all()):
                bad = int(np.size(leaf) - np.count_nonzero(np.isfinite(leaf)))
                raise WireError(f"leaf {k} {shape} has {bad} non-finite values")
            leaves.append(leaf)
        return leaves

    def unflatten(self, leaves: Sequence[Any]) -> Any:
        """Rebuilds the pytree (static metadata from the expected treedef)."""
        return jax.tree.unflatten(self.treedef, list(leaves))

    def buffers(self, tree: Any) -> list[memoryview]:
        """The payload of ``tree`` as one byte view per leaf (no copy where possible).

        Raises:
          ValueError: if ``tree`` does not match this spec.
        """
        leaves, treedef = jax.tree.flatten(tree)
        if treedef != self.treedef:
            raise ValueError(f"wire pytree {treedef} does not match the spec {self.treedef}")
        views = []
        for k, leaf in enumerate(leaves):
            arr = np.asarray(leaf)
            if arr.shape != self.shapes[k] or arr.dtype != self.dtypes[k]:
                raise ValueError(
                    f"wire leaf {k} is {arr.shape}:{arr.dtype}, expected "
                    f"{self.shapes[k]}:{self.dtypes[k]}"
                )
            arr = np.ascontiguousarray(arr, dtype=_little(arr.dtype))
            views.append(arr.reshape(-1).view(np.uint8).data)
        return views


def _little(dtype: np.dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.itemsize == 1 or dtype.byteorder in ("<", "|", "="):
        # '=' is native; dfl assumes little-endian hosts (checked at import).
        return dtype
    return dtype.newbyteorder("<")


def num_chunks(payload_nbytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Frames of a message of ``payload_nbytes`` (at least one, for empty payloads)."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, found {chunk_bytes}")
    return max(1, -(-payload_nbytes // chunk_bytes))


def header_nbytes(payload_nbytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Header bytes of one message of ``payload_nbytes``: 96 per frame."""
    return HEADER_NBYTES * num_chunks(payload_nbytes, chunk_bytes)


def framed_nbytes(payload_nbytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Bytes one message of ``payload_nbytes`` occupies on the wire: payload plus headers."""
    return payload_nbytes + header_nbytes(payload_nbytes, chunk_bytes)


def message_nbytes(wire: Any, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Exact bytes one message of the pytree ``wire`` occupies on the wire.

    Args:
      wire: a pytree of arrays or ``jax.ShapeDtypeStruct`` (one node, no node axis).
      chunk_bytes: ``transport.chunk_bytes``.

    Returns:
      :func:`framed_nbytes` of its payload; what a transport carries per
      message and recipient (tcp adds no other framing).
    """
    return framed_nbytes(WireSpec.from_tree(wire).nbytes, chunk_bytes)


@dataclasses.dataclass(frozen=True)
class Header:
    """One parsed frame header (see the module docstring for the layout)."""

    version: int
    kind: int
    flags: int
    sender: int
    recipient: int
    round: int
    run: bytes
    schema: bytes
    total: int
    chunk_index: int
    chunk_count: int
    offset: int
    length: int
    payload_crc: int

    def pack(self) -> bytes:
        """The 96 header bytes, with the header checksum."""
        head = HEADER.pack(
            MAGIC,
            self.version,
            self.kind,
            self.flags,
            self.sender,
            self.recipient,
            self.round,
            self.run,
            self.schema,
            self.total,
            self.chunk_index,
            self.chunk_count,
            self.offset,
            self.length,
            self.payload_crc,
            0,
        )
        crc = zlib.crc32(memoryview(head)[:_HEADER_CRC_AT])
        return head[:_HEADER_CRC_AT] + struct.pack("<I", crc)


def parse_header(buf: Any) -> Header:
    """Parses and checks the first 96 bytes of a frame.

    Checks the magic, the format version, the header checksum and that the
    chunk fields are consistent (index < count, chunk inside the payload).

    Raises:
      WireError: naming the first problem found (``header`` is ``None``: a
        frame whose header failed is never attributed to a sender).
    """
    view = memoryview(buf).cast("B")
    if view.nbytes < HEADER_NBYTES:
        raise WireError(f"truncated header: {view.nbytes} of {HEADER_NBYTES} bytes")
    fields = HEADER.unpack_from(view)
    magic, version = fields[0], fields[1]
    if magic != MAGIC:
        raise WireError(f"bad magic {bytes(magic)!r} (not a dfl frame)")
    (crc,) = struct.unpack_from("<I", view, _HEADER_CRC_AT)
    if zlib.crc32(view[:_HEADER_CRC_AT]) != crc:
        raise WireError("header checksum mismatch")
    if version != FORMAT_VERSION:
        raise WireError(f"unsupported wire format version {version} (this is {FORMAT_VERSION})")
    header = Header(*fields[1:-1])
    if not checksum_available(header.flags & CHECKSUM_MASK) or header.flags & ~CHECKSUM_MASK:
        raise WireError(f"unsupported flags {header.flags:#x} (checksum algorithm not available)")
    if header.chunk_count < 1 or header.chunk_index >= header.chunk_count:
        raise WireError(f"bad chunk {header.chunk_index} of {header.chunk_count}")
    if header.offset + header.length > header.total:
        raise WireError(
            f"chunk [{header.offset}, {header.offset + header.length}) outside a payload "
            f"of {header.total} bytes"
        )
    return header


class Payload:
    """A message's payload cut into chunks, each checksummed once for all recipients.

    A chunk's checksum is computed when its first frame is sent (not up front), so
    the checksum pass brings the chunk into cache right before the socket copies
    it, and sending overlaps checksumming of the next chunk. Thread-safe.

    Attributes:
      spec: the payload's spec.
      chunks: per chunk, the byte views it spans (a chunk may span leaves).
      offsets: per chunk, its byte offset in the payload.
      lengths: per chunk, its bytes.
    """

    def __init__(
        self,
        spec: WireSpec,
        chunks: tuple[tuple[memoryview, ...], ...],
        offsets: tuple[int, ...],
        lengths: tuple[int, ...],
        checksum: int = DEFAULT_CHECKSUM,
    ):
        self.spec = spec
        self.checksum = int(checksum)
        self.chunks = chunks
        self.offsets = offsets
        self.lengths = lengths
        self._crcs: list[int | None] = [None] * len(chunks)
        self._locks = [threading.Lock() for _ in chunks]

    @property
    def nbytes(self) -> int:
        """Payload bytes."""
        return self.spec.nbytes

    @property
    def wire_nbytes(self) -> int:
        """Bytes of one copy of the message on the wire (headers included)."""
        return self.spec.nbytes + HEADER_NBYTES * len(self.chunks)

    def crc(self, k: int) -> int:
        """The checksum of chunk ``k`` (computed once)."""
        crc = self._crcs[k]
        if crc is None:
            with self._locks[k]:
                crc = self._crcs[k]
                if crc is None:
                    crc = checksum(self.chunks[k], self.checksum)
                    self._crcs[k] = crc
        return crc

    def frames(
        self, *, run: bytes, sender: int, recipient: int, round: int, kind: int
    ) -> list[Frame]:
        """The frames to one recipient (headers built, and chunks checksummed, on use)."""
        return [
            Frame(self, k, run=run, sender=sender, recipient=recipient, round=round, kind=int(kind))
            for k in range(len(self.chunks))
        ]


class Frame(Sequence):
    """One frame as a sequence of buffers: the 96 header bytes, then the chunk's views.

    The header (which carries the chunk's checksum) is packed on first access.
    """

    def __init__(
        self,
        payload: Payload,
        k: int,
        *,
        run: bytes,
        sender: int,
        recipient: int,
        round: int,
        kind: int,
    ):
        self.payload = payload
        self.k = k
        self._fields = (run, sender, recipient, round, kind)
        self._header: bytes | None = None

    def header(self) -> bytes:
        """The packed header of this frame."""
        if self._header is None:
            run, sender, recipient, round_, kind = self._fields
            p, k = self.payload, self.k
            self._header = Header(
                FORMAT_VERSION,
                kind,
                p.checksum,
                sender,
                recipient,
                round_,
                run,
                p.spec.digest,
                p.spec.nbytes,
                k,
                len(p.chunks),
                p.offsets[k],
                p.lengths[k],
                p.crc(k),
            ).pack()
        return self._header

    @property
    def nbytes(self) -> int:
        """Bytes of the frame on the wire."""
        return HEADER_NBYTES + self.payload.lengths[self.k]

    def __len__(self) -> int:
        return 1 + len(self.payload.chunks[self.k])

    def __getitem__(self, i):  # type: ignore[override]
        parts = [self.header(), *self.payload.chunks[self.k]]
        return parts[i]

    def __iter__(self):
        yield self.header()
        yield from self.payload.chunks[self.k]


def encode_payload(
    spec: WireSpec,
    tree: Any,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    checksum: int = DEFAULT_CHECKSUM,
) -> Payload:
    """Cuts ``tree``'s bytes into chunks of at most ``chunk_bytes`` (no copy).

    Chunks are views into the leaves' buffers; checksums (``checksum``, a
    :class:`Checksum`) are computed lazily (:meth:`Payload.crc`).
    """
    views = spec.buffers(tree) if spec.nbytes or jax.tree.leaves(tree) else []
    count = num_chunks(spec.nbytes, chunk_bytes)
    chunks, offsets, lengths = [], [], []
    leaf, within = 0, 0
    for k in range(count):
        start = k * chunk_bytes
        length = min(chunk_bytes, spec.nbytes - start) if spec.nbytes else 0
        parts, need = [], length
        while need:
            view = views[leaf]
            take = min(need, view.nbytes - within)
            if take:
                parts.append(view[within : within + take])
            within += take
            need -= take
            if within == view.nbytes:
                leaf, within = leaf + 1, 0
        chunks.append(tuple(parts))
        offsets.append(start if spec.nbytes else 0)
        lengths.append(length)
    return Payload(spec, tuple(chunks), tuple(offsets), tuple(lengths), checksum)


def frame_bytes(frame: Sequence[Any]) -> bytes:
    """One frame as a single ``bytes`` object (what loopback queues carry)."""
    return b"".join(frame)


if np.little_endian is not True:  # pragma: no cover - every supported host is little-endian
    raise ImportError("dfl's wire format assumes a little-endian host")
