"""Reassembly buffers: who owns each, when it is reused, and never while in use."""

from __future__ import annotations

import gc

import jax.numpy as jnp
import numpy as np

from dfl.transport import Kind, WireSpec, encode_payload, run_digest
from dfl.transport.ledger import Ledger, MessageState
from dfl.transport.reassembly import (
    MIN_POOLED_BYTES,
    BufferPool,
    Reassembler,
    Slot,
    message_key,
)
from dfl.transport.validate import Problem
from dfl.transport.wire import parse_header

BIG = {"w": jnp.arange(MIN_POOLED_BYTES // 4, dtype=jnp.float32)}  # exactly 1 MiB
SPEC = WireSpec.from_tree(BIG)


def headers(chunk=MIN_POOLED_BYTES // 2, round_=0):
    frames = encode_payload(SPEC, BIG, chunk_bytes=chunk).frames(
        run=run_digest("t"), sender=1, recipient=0, round=round_, kind=Kind.WIRE
    )
    return [parse_header(f.header()) for f in frames]


def test_a_lent_buffer_is_reused_only_once_every_view_is_gone():
    pool = BufferPool(capacity=4)
    buf = pool.take(MIN_POOLED_BYTES)
    lease = pool.lend(buf)
    leaf = np.frombuffer(lease, dtype=np.float32)[10:20].reshape(2, 5).T
    del lease
    gc.collect()
    assert pool.free == 0 and pool.take(MIN_POOLED_BYTES) is not buf  # a view is alive
    del leaf
    assert pool.free == 1 and pool.take(MIN_POOLED_BYTES) is buf
    small = pool.take(10)
    pool.give_back(small)
    assert pool.free == 0  # small buffers are not pooled


def test_pool_keeps_at_most_its_capacity():
    pool = BufferPool(capacity=2)
    for _ in range(5):
        pool.give_back(np.empty(MIN_POOLED_BYTES, np.uint8))
    assert pool.free == 2


def test_an_abandoned_assembly_frees_its_buffer_after_its_last_writer():
    reasm = Reassembler(BufferPool(capacity=4))
    first, second = headers()
    slot = reasm.slot(first)
    assert isinstance(slot, Slot) and slot.view is not None
    # Its copy in flight stalled (a truncated frame held open): the message starts over.
    again = reasm.slot(first)
    assert isinstance(again, Slot) and again.assembly is not slot.assembly
    assert reasm.pool.free == 0  # the stalled writer still holds a view of the first buffer
    assert reasm.finish(slot, crc_ok=True) is None  # it ends into the abandoned assembly
    assert reasm.pool.free == 1
    reasm.drop(message_key(first))  # e.g. rejected while the chunk is being read
    assert reasm.pool.free == 1  # a writer still holds a view of it
    assert reasm.finish(again, crc_ok=True) is None
    assert reasm.pool.free == 2
    assert not reasm.is_open(message_key(second))
    assert reasm.slot(first) is not None and reasm.slot(first) is not None  # restarts again


def test_a_complete_message_decodes_from_a_lease():
    reasm = Reassembler(BufferPool(capacity=4))
    payload = encode_payload(SPEC, BIG, chunk_bytes=MIN_POOLED_BYTES // 2)
    done = None
    for h, chunk in zip(headers(), payload.chunks, strict=True):
        slot = reasm.slot(h)
        assert isinstance(slot, Slot) and slot.view is not None
        slot.view[:] = b"".join(chunk)
        done = reasm.finish(slot, crc_ok=True)
    assert done is not None and not isinstance(done, Problem)
    leaves = reasm.decode(done, SPEC)
    assert not isinstance(leaves, str)
    np.testing.assert_array_equal(leaves[0], np.asarray(BIG["w"]))
    assert reasm.pool.free == 0
    del leaves
    assert reasm.pool.free == 1


def test_disagreeing_chunks_and_checksums_are_problems_that_settle():
    reasm = Reassembler(BufferPool(capacity=4))
    first = headers()[0]
    slot = reasm.slot(first)
    assert isinstance(slot, Slot)
    odd = headers(chunk=MIN_POOLED_BYTES // 4)[1]
    problem = reasm.slot(odd)
    assert isinstance(problem, Problem) and problem.settles
    assert "chunk count 4 disagrees with 2" in problem.reason
    problem = reasm.finish(slot, crc_ok=False)
    assert isinstance(problem, Problem) and "checksum mismatch in chunk 0" in problem.reason
    assert reasm.pending(1) == 1 and reasm.pending(2) == 0
    reasm.purge(1)
    assert reasm.pending(1) == 0


def test_ledger_states_and_forgetting():
    ledger = Ledger()
    ledger.deliver((1, 0, Kind.WIRE), [np.zeros(1)], floor=0)
    ledger.reject((2, 0, Kind.WIRE), "bad", floor=0)
    ledger.validating((3, 0, Kind.WIRE))
    assert ledger.state((1, 0, Kind.WIRE)) is MessageState.DELIVERED
    assert ledger.state((2, 0, Kind.WIRE)) is MessageState.REJECTED
    assert ledger.settled(1, 0, Kind.WIRE) and ledger.settled(2, 0, Kind.WIRE)
    assert not ledger.settled(3, 0, Kind.WIRE) and ledger.held(1) == 1
    ledger.advance(1)
    assert ledger.delivered(0, Kind.WIRE) == {} and ledger.held(1) == 0
    assert ledger.state((1, 0, Kind.WIRE)) is MessageState.DELIVERED  # kept for duplicates
    ledger.advance(100)
    assert ledger.state((1, 0, Kind.WIRE)) is None
