"""Loopback transport and fault injection: delivery, deadlines, and reproducible faults."""

from __future__ import annotations

import logging
import time

import jax.numpy as jnp
import numpy as np
import pytest

from dfl.config.deploy_schema import FaultConfig
from dfl.transport import (
    FaultInjector,
    Kind,
    LoopbackNetwork,
    Transport,
    TransportClosedError,
    WireSpec,
    encode_payload,
    message_nbytes,
)
from dfl.transport.counts import RoundBytes
from dfl.transport.wire import frame_bytes, run_digest

TREE = {"w": jnp.arange(3000, dtype=jnp.float32).reshape(100, 30), "b": jnp.ones(7)}
SPEC = WireSpec.from_tree(TREE)


def endpoints(n=3, *, faults=None, chunk=1000):
    net = LoopbackNetwork(n, run_id="t", faults=faults)
    eps = [net.endpoint(i) for i in range(n)]
    for e in eps:
        e.expect(Kind.WIRE, SPEC)
    return net, eps, encode_payload(SPEC, TREE, chunk_bytes=chunk)


def soon(seconds=2.0):
    return time.monotonic() + seconds


def test_send_and_receive_chunked_messages():
    _, (a, b, c), payload = endpoints()
    assert a.send(1, 0, Kind.WIRE, payload) == message_nbytes(TREE, 1000)
    c.send(1, 0, Kind.WIRE, payload)
    got = b.receive(0, [0, 2], soon())
    assert sorted(got.messages) == [0, 2] and got.missing == []
    for leaves in got.messages.values():
        np.testing.assert_array_equal(SPEC.unflatten(leaves)["w"], TREE["w"])
    assert a.sent.bytes == message_nbytes(TREE, 1000) and a.sent.frames == len(payload.chunks)


def test_loopback_carries_bytes_not_array_references():
    _, (a, b, _), _ = endpoints()
    assert isinstance(a, Transport)  # the runtime-checkable protocol
    w = np.arange(3000, dtype=np.float32).reshape(100, 30)
    a.send(1, 0, Kind.WIRE, encode_payload(SPEC, {"w": w, "b": np.ones(7, np.float32)}))
    w[:] = -1  # the sender reuses its buffer before the receiver reads
    got = b.receive(0, [0], soon())
    np.testing.assert_array_equal(SPEC.unflatten(got.messages[0])["w"], TREE["w"])


def test_received_bytes_are_attributed_to_the_frames_rounds():
    _, (a, b, c), payload = endpoints()
    one = message_nbytes(TREE, 1000)
    a.send(1, 0, Kind.WIRE, payload)
    c.send(1, 0, Kind.WIRE, payload)
    a.send(1, 1, Kind.WIRE, payload)  # round 1's message arrives before round 0 is over
    b.receive(0, [0, 2], soon())
    assert b.received_bytes(Kind.WIRE, through_round=0) == 2 * one
    assert b.received_bytes(Kind.WIRE, through_round=1) == b.received_bytes(Kind.WIRE) == 3 * one
    assert b.received_bytes(Kind.WIRE, through_round=-1) == 0
    assert b.received_bytes(Kind.BYE) == 0


def test_round_bytes_stay_bounded_whatever_rounds_headers_name():
    counts = RoundBytes()
    counts.add(1, 10**15, 100, floor=3, last=5)  # far past the window: at round 6
    counts.add(1, 0, 10, floor=3, last=5)  # old: counts from now on
    counts.add(1, 4, 1, floor=3, last=5)
    counts.add(2, 4, 1000, floor=3, last=5)
    assert [counts.total(1, r) for r in (2, 4, 5, 6)] == [10, 11, 11, 111]
    counts.fold(5)
    assert counts.total(1, 4) == 11 and counts.total(1) == 111 and counts.total(2) == 1000
    assert len(counts._ahead) == 1  # rounds before 5 are folded away


def test_deadline_bounds_the_wait_for_a_silent_peer():
    _, (a, b, _), payload = endpoints()
    a.send(1, 0, Kind.WIRE, payload)
    start = time.monotonic()
    got = b.receive(0, [0, 2], start + 0.3)
    assert 0.25 <= time.monotonic() - start < 2.0
    assert list(got.messages) == [0] and got.missing == [2]


def test_future_rounds_wait_and_old_rounds_are_rejected():
    _, (a, b, _), payload = endpoints()
    a.send(1, 1, Kind.WIRE, payload)
    assert b.receive(0, [0], soon(0.1)).missing == [0]
    assert list(b.receive(1, [0], soon()).messages) == [0]
    a.send(1, 0, Kind.WIRE, payload)
    got = b.receive(2, [0], soon(0.1))
    assert any("old round 0" in r.reason for r in got.rejections)


def test_finished_peer_is_not_awaited():
    _, (a, b, _), payload = endpoints()
    a.send(1, 0, Kind.WIRE, payload)
    a.send(1, 0, Kind.BYE, encode_payload(WireSpec.empty(), ()))
    assert list(b.receive(0, [0], soon()).messages) == [0]
    start = time.monotonic()
    got = b.receive(1, [0], soon(10.0))
    assert got.finished == [0] and time.monotonic() - start < 3.0


def test_a_dependent_two_rounds_ahead_is_not_awaited():
    _, (a, b, _), payload = endpoints()
    a.send(1, 2, Kind.WIRE, payload)
    start = time.monotonic()
    got = b.receive(0, [0], soon(10.0), dependents=[0])
    assert got.missing == [0] and got.peer_rounds == {0: 2}
    assert time.monotonic() - start < 3.0


def test_close_wakes_a_waiting_receive_and_dead_peers_lose_messages():
    net, (a, b, _), payload = endpoints()
    b.close()
    with pytest.raises(TransportClosedError):
        b.receive(0, [0], soon())
    a.send(1, 0, Kind.WIRE, payload)
    assert net.undelivered == len(payload.chunks)


def test_fault_plans_are_reproducible_and_counted():
    cfg = FaultConfig(
        seed=3, drop=0.3, duplicate=0.3, corrupt=0.3, reorder=0.3, delay=0.3, delay_s=0.01
    )
    frames = encode_payload(SPEC, TREE, chunk_bytes=1000).frames(
        run=run_digest("t"), sender=0, recipient=1, round=5, kind=Kind.WIRE
    )

    def plan(injector, round_):
        return [(d, frame_bytes(f)) for d, f in injector.plan(0, 1, round_, Kind.WIRE, frames)]

    one, two = FaultInjector(cfg, 3), FaultInjector(cfg, 3)
    for r in range(30):
        assert plan(one, r) == plan(two, r)
    assert one.stats == two.stats
    assert min(one.stats.dropped, one.stats.duplicated, one.stats.corrupted) > 0
    # Handshakes and end-of-run notices are never faulted.
    assert len(one.plan(0, 1, 5, Kind.BYE, frames)) == len(frames)


def test_partition_drops_only_across_groups_in_its_rounds():
    cfg = FaultConfig(partition=[[0, 1], [2]], partition_rounds=[2, 4])
    inj = FaultInjector(cfg, 4)
    assert inj.partitioned(0, 2, 2) and inj.partitioned(3, 1, 3)  # node 3: its own group
    assert not inj.partitioned(0, 1, 2) and not inj.partitioned(0, 2, 4)
    with pytest.raises(ValueError, match="names node 9"):
        FaultInjector(FaultConfig(partition=[[9]]), 4)


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(duplicate=1.0),
        FaultConfig(reorder=1.0, reorder_window_s=0.05),
        FaultConfig(delay=1.0, delay_s=0.05),
    ],
    ids=["duplicate", "reorder", "delay"],
)
def test_benign_faults_deliver_the_exact_message(faults):
    _, (a, b, _), payload = endpoints(faults=faults, chunk=500)
    for r in range(3):
        a.send(1, r, Kind.WIRE, payload)
        got = b.receive(r, [0], soon())
        assert got.rejections == [] and got.missing == []
        np.testing.assert_array_equal(SPEC.unflatten(got.messages[0])["w"], TREE["w"])


def test_drop_and_corrupt_are_missing_and_rejected_never_silent():
    _, (a, b, _), payload = endpoints(faults=FaultConfig(corrupt=1.0), chunk=500)
    a.send(1, 0, Kind.WIRE, payload)
    got = b.receive(0, [0], soon(0.5))
    assert got.missing == [0] and len(got.rejections) == 1
    _, (a, b, _), payload = endpoints(faults=FaultConfig(drop=1.0), chunk=500)
    a.send(1, 0, Kind.WIRE, payload)
    assert b.receive(0, [0], soon(0.2)).missing == [0]
    assert a.faults is not None and a.faults.stats.dropped == 1


def test_loses_predicts_exactly_what_plan_loses():
    cfg = FaultConfig(seed=5, drop=0.4, partition=[[0], [1, 2]], partition_rounds=[3, 4])
    frames = encode_payload(SPEC, TREE, chunk_bytes=1000).frames(
        run=run_digest("t"), sender=0, recipient=1, round=0, kind=Kind.WIRE
    )
    injector = FaultInjector(cfg, 3)
    outcomes = []
    for sender, receiver in ((0, 1), (1, 2), (2, 0)):
        for r in range(12):
            lost = len(injector.plan(sender, receiver, r, Kind.WIRE, frames)) < len(frames)
            assert injector.loses(sender, receiver, r, Kind.WIRE) == lost
            outcomes.append(lost)
    assert 0 < sum(outcomes) < len(outcomes)
    assert not injector.loses(0, 1, 0, Kind.BYE) and injector.loses(0, 1, 3, Kind.BYE)


def test_a_message_the_injector_lost_is_awaited_only_dropped_wait_s():
    # Node 2 is cut off from node 1 (its message is lost); node 0 just stays silent.
    faults = FaultConfig(partition=[[0, 1], [2]])
    net = LoopbackNetwork(3, run_id="t", faults=faults, dropped_wait_s=0.2)
    a, b, c = (net.endpoint(i) for i in range(3))
    for e in (a, b, c):
        e.expect(Kind.WIRE, SPEC)
    c.send(1, 0, Kind.WIRE, encode_payload(SPEC, TREE))
    start = time.monotonic()
    got = b.receive(0, [2], start + 30.0)  # e.g. the first round's long deadline
    assert got.missing == [2] and time.monotonic() - start < 3.0
    start = time.monotonic()
    got = b.receive(1, [0, 2], start + 0.8)  # a silent peer still gets its deadline
    assert got.missing == [0, 2] and time.monotonic() - start >= 0.75


def test_a_long_wait_says_what_it_waits_for(monkeypatch, caplog):
    monkeypatch.setattr("dfl.transport.inbox.WAIT_REPORT_AFTER_S", 0.1)
    _, (a, b, _), payload = endpoints()
    a.send(1, 0, Kind.WIRE, payload)
    with caplog.at_level(logging.INFO, logger="dfl.transport"):
        got = b.receive(0, [0, 2], soon(0.5))
    assert got.missing == [2]
    lines = [r.getMessage() for r in caplog.records if "has waited" in r.getMessage()]
    assert lines and all("round 0 messages of node(s) [2]" in line for line in lines)
    assert len(lines) <= 4  # at doubling intervals, not every wake-up
