"""A dead peer costs its neighbours K deadlines, not one per round (issue 13, finding 8).

Before: after a SIGKILL at round 20 of 60 every remaining round waited the full
deadline (148 s instead of 31 s). Now a peer that missed ``down_after_missed``
consecutive deadlines, or whose connection was refused or closed, is down: a
RENORMALIZE algorithm does not wait for it until its next valid frame.
"""

from __future__ import annotations

import time

import numpy as np

from dfl.node import run_loopback
from dfl.transport import Kind, encode_payload
from dfl.transport.tcp import TcpTransport, free_ports
from tests.node.common import replace
from tests.security.conftest import DEADLINE
from tests.security.frames import SPEC, TREE, feed, frames, inbox

DEADLINE_S = 0.2
K = 3


def timed_collect(box, round_, *, down_after_missed=K):
    began = time.monotonic()
    got = box.collect(
        round_, Kind.WIRE, [1, 2], began + DEADLINE_S, down_after_missed=down_after_missed
    )
    return got, time.monotonic() - began


def test_a_silent_peer_costs_k_deadlines_then_none_until_it_is_heard_again():
    box = inbox()
    waits = []
    for r in range(K + 3):
        feed(box, frames(round_=r, sender=2), 2)
        got, waited = timed_collect(box, r)
        assert list(got.messages) == [2] and got.missing == [1]
        waits.append(waited)
    assert all(w >= DEADLINE_S * 0.9 for w in waits[:K]), waits
    assert all(w < DEADLINE_S / 2 for w in waits[K:]), waits
    assert got.down == [1]
    # Its next valid frame marks it up: it is awaited (and used) again.
    feed(box, frames(round_=K + 3, sender=2), 2)
    feed(box, frames(round_=K + 3, sender=1), 1)
    got, _ = timed_collect(box, K + 3)
    assert sorted(got.messages) == [1, 2] and got.down == []


def test_wait_algorithms_still_wait_for_a_down_peer():
    box = inbox()
    for r in range(K + 1):
        got, waited = timed_collect(box, r, down_after_missed=0)
        assert waited >= DEADLINE_S * 0.9 and got.down == []


def test_down_once_its_last_connection_closes_or_a_connect_is_refused():
    box = inbox()
    box.channel_opened(1)
    box.channel_opened(1)  # e.g. a second connection authenticated as node 1
    box.channel_closed(1)
    got, waited = timed_collect(box, 0)
    assert got.down == [] and waited >= DEADLINE_S * 0.9
    box.channel_closed(1)
    got, waited = timed_collect(box, 1)
    assert got.down == [1] and waited >= DEADLINE_S * 0.9  # node 2 is still awaited
    feed(box, frames(round_=2, sender=2), 2)
    got, waited = timed_collect(box, 2)
    assert got.down == [1] and waited < DEADLINE_S / 2
    box.peer_lost(2, "refused")
    got, waited = timed_collect(box, 3)
    assert got.down == [1, 2] and waited < DEADLINE_S / 2


def test_a_closed_tcp_connection_marks_its_peer_down_at_once():
    addresses = [("127.0.0.1", p) for p in free_ports(2)]
    a, b = (TcpTransport(i, addresses, run_id="t", connect_timeout_s=5) for i in range(2))
    try:
        for e in (a, b):
            e.expect(Kind.WIRE, SPEC)
        a.send(1, 0, Kind.WIRE, encode_payload(SPEC, TREE))
        got = b.receive(0, [0], time.monotonic() + 10, down_after_missed=K)
        np.testing.assert_array_equal(SPEC.unflatten(got.messages[0])["w"], TREE["w"])
        a.crash()  # as a SIGKILLed process: its connection closes
        time.sleep(0.3)
        began = time.monotonic()
        got = b.receive(1, [0], began + 5, down_after_missed=K)
        assert time.monotonic() - began < 1.0 and got.missing == [0] and got.down == [0]
    finally:
        a.close()
        b.close()


def test_a_crashed_node_costs_its_neighbours_k_deadlines_not_one_per_round(ring):
    """Node 2 of a 10-round ring stops at round 2 for good: its neighbours wait K
    deadlines for it, then run the 8-K other rounds without waiting (before: one
    deadline each)."""
    cfg, program = ring
    cfg = replace(
        cfg,
        **{
            "transport.faults.crash_node": 2,
            "transport.faults.crash_round": 2,
            "transport.faults.restart_after_s": -1.0,
            "transport.down_after_missed": K,
        },
    )
    result = run_loopback(cfg, program=program)
    assert result.records[-1]["round"] == cfg.rounds
    for i in (1, 3):  # node 2's in-neighbours: rounds 5..9 cost no deadline (before: 5 s)
        at = {r["round"]: r["wall_time"] for r in result.nodes[i].records}
        assert at[10] - at[5] < 2.5 * DEADLINE, (i, at)
    missing = {i: result.nodes[i].counters.messages_missing for i in (0, 1, 3)}
    assert missing == {0: 0, 1: 8, 3: 8}, missing  # node 2's rounds 2..9, at 1 and 3
