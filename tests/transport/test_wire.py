"""Wire format: exact sizes, round trips, chunking, and rejection of bad input."""

from __future__ import annotations

import logging
import pickle
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfl.compression import top_k
from dfl.config.deploy_schema import TransportConfig
from dfl.transport import (
    DEFAULT_CHUNK_BYTES,
    HEADER_NBYTES,
    Inbox,
    Kind,
    WireError,
    WireSpec,
    encode_payload,
    header_nbytes,
    message_nbytes,
    parse_header,
    run_digest,
)
from dfl.transport.wire import DEFAULT_CHECKSUM, Checksum, Hasher, checksum, checksum_available
from tests.transport.forge import reheader

RUN = run_digest("run-a")


def tree(seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(64, 10)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(10,)), jnp.float32),
        "n": jnp.asarray(rng.integers(0, 9, size=(3,)), jnp.int32),
    }


def frames_of(
    spec,
    t,
    *,
    sender=1,
    recipient=0,
    round_=0,
    chunk=DEFAULT_CHUNK_BYTES,
    run=RUN,
    kind=Kind.WIRE,
    checksum=DEFAULT_CHECKSUM,
):
    payload = encode_payload(spec, t, chunk_bytes=chunk, checksum=checksum)
    return [
        b"".join(f)
        for f in payload.frames(
            run=run, sender=sender, recipient=recipient, round=round_, kind=kind
        )
    ]


def inbox_for(spec, n=3):
    inbox = Inbox(0, n, RUN)
    inbox.expect(Kind.WIRE, spec)
    return inbox


def collect(inbox, peers=(1,), round_=0, wait=0.0):
    return inbox.collect(round_, Kind.WIRE, list(peers), time.monotonic() + wait)


def assert_tree_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_header_is_96_bytes_and_message_nbytes_is_exact():
    t = tree()
    spec = WireSpec.from_tree(t)
    payload = 64 * 10 * 4 + 10 * 4 + 3 * 4
    assert HEADER_NBYTES == 96
    assert spec.nbytes == payload
    assert message_nbytes(t) == payload + 96
    assert message_nbytes(jax.eval_shape(lambda: t)) == payload + 96
    assert sum(len(f) for f in frames_of(spec, t)) == message_nbytes(t)
    for chunk in (1, 7, 100, 1000, payload - 1, payload, payload + 1):
        frames = frames_of(spec, t, chunk=chunk)
        assert sum(map(len, frames)) == message_nbytes(t, chunk)
        assert header_nbytes(payload, chunk) == 96 * len(frames)


def test_default_chunk_matches_config_default():
    assert TransportConfig().chunk_bytes == DEFAULT_CHUNK_BYTES


CHECKSUMS = [c for c in Checksum if checksum_available(c)]


@pytest.mark.parametrize("checksum", CHECKSUMS, ids=[c.name for c in CHECKSUMS])
@pytest.mark.parametrize("chunk", [DEFAULT_CHUNK_BYTES, 1000, 37])
def test_round_trip_in_any_chunk_order(chunk, checksum):
    t = tree()
    spec = WireSpec.from_tree(t)
    frames = frames_of(spec, t, chunk=chunk, checksum=checksum)
    assert parse_header(frames[0]).flags == checksum
    inbox = inbox_for(spec)
    for f in reversed(frames):
        inbox.feed(f)
    got = collect(inbox)
    assert got.missing == [] and got.rejections == []
    assert_tree_equal(spec.unflatten(got.messages[1]), t)


def test_compressed_wire_round_trips_through_the_expected_treedef():
    comp = top_k(fraction=0.2)
    encoded, _ = comp.compress(tree(), ())
    spec = WireSpec.from_tree(jax.eval_shape(lambda: encoded))
    inbox = inbox_for(spec)
    for f in frames_of(spec, encoded, chunk=50):
        inbox.feed(f)
    got = spec.unflatten(collect(inbox).messages[1])
    assert_tree_equal(got, encoded)
    assert_tree_equal(comp.decompress(got), comp.decompress(encoded))


def test_duplicates_are_ignored_not_rejected():
    t = tree()
    spec = WireSpec.from_tree(t)
    inbox = inbox_for(spec)
    frames = frames_of(spec, t, chunk=500)
    for f in frames + frames[::-1] + frames:
        inbox.feed(f)
    got = collect(inbox)
    assert got.rejections == [] and 1 in got.messages
    assert inbox.stats.duplicates == 2 * len(frames)


def test_schema_digest_tells_layouts_apart():
    base = WireSpec.from_tree(tree())
    other_shape = WireSpec.from_tree({**tree(), "b": jnp.zeros(11, jnp.float32)})
    other_dtype = WireSpec.from_tree({**tree(), "b": jnp.zeros(10, jnp.float16)})
    other_tree = WireSpec.from_tree([tree()["w"], tree()["b"], tree()["n"]])
    digests = {s.digest for s in (base, other_shape, other_dtype, other_tree)}
    assert len(digests) == 4
    assert WireSpec.from_tree(tree(1)).digest == base.digest


def test_prng_keys_cannot_go_on_the_wire():
    with pytest.raises(ValueError, match="cannot be sent"):
        WireSpec.from_tree({"k": jax.random.key(0)})


def rejected(inbox, caplog, frames, *, peers=(1,), round_=0, channel: int | None = 1):
    """Feeds ``frames`` as arriving on node ``channel``'s bound channel (as every
    transport's frames do), then collects."""
    with caplog.at_level(logging.WARNING, logger="dfl.transport"):
        for f in frames:
            inbox.feed(f, sender=channel)
        got = collect(inbox, peers, round_)
    assert got.messages == {}
    assert got.missing == list(peers)
    assert got.rejections, "expected a rejection"
    assert any("rejected" in r.message for r in caplog.records)
    return got


def test_rejects_wrong_shape(caplog):
    spec = WireSpec.from_tree(tree())
    bad = {**tree(), "b": jnp.zeros(11, jnp.float32)}
    got = rejected(inbox_for(spec), caplog, frames_of(WireSpec.from_tree(bad), bad))
    assert "schema digest mismatch" in got.rejected[1]


def test_rejects_nan(caplog):
    t = tree()
    t["w"] = t["w"].at[3, 4].set(jnp.nan)
    spec = WireSpec.from_tree(t)
    got = rejected(inbox_for(spec), caplog, frames_of(spec, t))
    assert "non-finite" in got.rejected[1]


def test_rejects_inf_in_a_later_chunk(caplog):
    t = tree()
    t["b"] = t["b"].at[9].set(jnp.inf)
    spec = WireSpec.from_tree(t)
    got = rejected(inbox_for(spec), caplog, frames_of(spec, t, chunk=64))
    assert "leaf 0" in got.rejected[1] and "non-finite" in got.rejected[1]


def test_rejects_wrong_run_id(caplog):
    spec = WireSpec.from_tree(tree())
    other = frames_of(spec, tree(), run=run_digest("other"))
    got = rejected(inbox_for(spec), caplog, other, channel=None)
    assert "wrong run id" in got.rejections[0].reason
    assert got.rejected == {}  # a stranger (bound to no member) cannot block the real message
    got = rejected(inbox_for(spec), caplog, other)  # on node 1's own channel: its own loss
    assert "wrong run id" in got.rejected[1]


def test_rejects_old_round(caplog):
    spec = WireSpec.from_tree(tree())
    inbox = inbox_for(spec)
    collect(inbox, round_=5)
    got = rejected(inbox, caplog, frames_of(spec, tree(), round_=4), round_=5)
    assert "old round 4" in got.rejections[0].reason


def test_rejects_far_future_round(caplog):
    spec = WireSpec.from_tree(tree())
    got = rejected(inbox_for(spec), caplog, frames_of(spec, tree(), round_=10**6))
    assert "ahead" in got.rejections[0].reason


def test_rejects_unknown_sender_and_wrong_recipient(caplog):
    spec = WireSpec.from_tree(tree())
    got = rejected(inbox_for(spec), caplog, frames_of(spec, tree(), sender=7))
    assert "unknown sender 7" in got.rejections[0].reason
    got = rejected(inbox_for(spec), caplog, frames_of(spec, tree(), sender=0))
    assert "unknown sender 0" in got.rejections[0].reason
    got = rejected(inbox_for(spec), caplog, frames_of(spec, tree(), recipient=2))
    assert "addressed to node 2" in got.rejections[0].reason


def test_rejects_a_node_that_is_not_an_in_neighbour_at_that_round(caplog):
    spec = WireSpec.from_tree(tree())
    inbox = Inbox(0, 4, RUN)
    inbox.expect(Kind.WIRE, spec, senders=lambda r: {1} if r % 2 == 0 else {2})
    frames = frames_of(spec, tree(), sender=2, round_=0)
    got = rejected(inbox, caplog, frames, peers=(1,), channel=2)
    assert "node 2 is not an in-neighbour of node 0 at round 0" in got.rejections[0].reason
    for sender, round_ in ((1, 0), (2, 1)):  # each in its own round
        for f in frames_of(spec, tree(), sender=sender, round_=round_):
            inbox.feed(f)
        got = collect(inbox, (sender,), round_)
        assert got.missing == [] and got.rejections == []
        assert_tree_equal(spec.unflatten(got.messages[sender]), tree())


def test_rejects_oversized_payload(caplog):
    spec = WireSpec.from_tree(tree())
    big = {**tree(), "w": jnp.zeros((640, 10), jnp.float32)}
    inbox = inbox_for(spec)
    # Same schema digest claimed, bigger payload: forge the header.
    frames = frames_of(WireSpec.from_tree(big), big)
    forged = reheader(frames[0], schema=spec.digest)
    got = rejected(inbox, caplog, [forged])
    assert "payload of" in got.rejected[1]


def test_max_message_bytes_refuses_large_specs():
    inbox = Inbox(0, 3, RUN, max_message_bytes=100)
    with pytest.raises(ValueError, match="max_message_bytes"):
        inbox.expect(Kind.WIRE, WireSpec.from_tree(tree()))


def test_rejects_truncated_and_corrupted_frames(caplog):
    spec = WireSpec.from_tree(tree())
    frame = frames_of(spec, tree())[0]
    got = rejected(inbox_for(spec), caplog, [frame[:-5]])
    assert "truncated" in got.rejections[0].reason
    got = rejected(inbox_for(spec), caplog, [frame[:50]])
    assert "truncated header" in got.rejections[0].reason
    flipped = bytearray(frame)
    flipped[HEADER_NBYTES + 100] ^= 1
    got = rejected(inbox_for(spec), caplog, [bytes(flipped)])
    assert "payload checksum" in got.rejected[1]
    flipped = bytearray(frame)
    flipped[20] ^= 1
    got = rejected(inbox_for(spec), caplog, [bytes(flipped)])
    assert "header checksum" in got.rejections[0].reason


class _Boom:
    def __reduce__(self):
        return (_explode, ())


def _explode():  # pragma: no cover - must never run
    raise AssertionError("decoding executed code from the wire")


def test_garbage_and_pickles_are_rejected_without_executing(caplog):
    spec = WireSpec.from_tree(tree())
    evil = pickle.dumps(_Boom()) * 3
    got = rejected(inbox_for(spec), caplog, [evil, b"", b"\x00" * 200, b"DFLW" + evil])
    assert len(got.rejections) == 4
    assert "bad magic" in got.rejections[0].reason
    assert "truncated header" in got.rejections[1].reason
    assert "header checksum" in got.rejections[3].reason


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 2000))
def test_random_bytes_never_crash_the_inbox(junk, where):
    spec = WireSpec.from_tree(tree())
    inbox = inbox_for(spec)
    frame = bytearray(frames_of(spec, tree())[0])
    inbox.feed(junk)
    pos = where % len(frame)
    frame[pos : pos + len(junk)] = junk
    inbox.feed(bytes(frame))
    got = collect(inbox)
    if 1 in got.messages:  # the mutation left the frame intact
        assert_tree_equal(spec.unflatten(got.messages[1]), tree())


def test_hasher_matches_one_shot_checksums():
    data = np.random.default_rng(0).bytes(10_000)
    for algorithm in CHECKSUMS:
        hasher = Hasher(algorithm)
        for start in range(0, len(data), 999):
            hasher.update(data[start : start + 999])
        assert hasher.digest() == checksum([data], algorithm)
        assert checksum([data[:10], data[10:]], algorithm) == checksum([data], algorithm)


def test_unknown_checksum_algorithm_is_rejected(caplog):
    spec = WireSpec.from_tree(tree())
    frame = frames_of(spec, tree())[0]
    got = rejected(inbox_for(spec), caplog, [reheader(frame, flags=7)])
    assert "unsupported flags" in got.rejections[0].reason


def test_parse_header_fields():
    spec = WireSpec.from_tree(tree())
    h = parse_header(frames_of(spec, tree(), sender=2, recipient=1, round_=9)[0])
    assert (h.sender, h.recipient, h.round, h.kind) == (2, 1, 9, Kind.WIRE)
    assert h.total == spec.nbytes and h.schema == spec.digest and h.run == RUN
    with pytest.raises(WireError, match="bad magic"):
        parse_header(b"X" * 96)
