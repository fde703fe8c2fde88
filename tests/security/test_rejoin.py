"""One member cannot make others skip rounds or stop waiting (issue 13, finding 1).

Before: a single valid frame claiming to be node 1 at a far round made every node
skip to the end of the run (nothing logged), and made node 1's out-neighbours stop
waiting for its messages (the inbox's "seen two rounds ahead" rule). Now both
decisions need more than half of a node's in-neighbours over a schedule period
(:mod:`dfl.transport.quorum`), and a skip is bounded by the time since the node
was last in step (:mod:`dfl.node.rejoin`).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from dfl.node import run_loopback
from dfl.node.rejoin import InStep, rejoin_target
from dfl.node.setup import run_id
from dfl.transport import Kind, encode_payload, run_digest
from dfl.transport.loopback import LoopbackNetwork
from dfl.transport.quorum import agreed_round, majority_at
from dfl.transport.wire import frame_bytes
from tests.node.common import compose_config, replace
from tests.security.frames import feed, frames, inbox

FORGED_ROUND = 500  # past the 10-round run: never reached, so no genuine message is shadowed


def test_one_forged_far_round_frame_makes_nobody_skip(ring, monkeypatch, caplog):
    cfg, program = ring
    cfg = replace(cfg, **{"transport.max_rounds_ahead": 1024})
    spec = program.spec
    good = [np.zeros(s, d) for s, d in zip(spec.shapes, spec.dtypes, strict=True)]
    payload = encode_payload(spec, spec.unflatten(good))

    def forged(recipient: int) -> list[bytes]:
        out = payload.frames(
            run=run_digest(run_id(cfg)),
            sender=1,
            recipient=recipient,
            round=FORGED_ROUND,
            kind=Kind.WIRE,
        )
        return [frame_bytes(f) for f in out]

    original = LoopbackNetwork.endpoint

    def endpoint(self, node_id):
        ep = original(self, node_id)
        if node_id in (0, 2):  # node 1's out-neighbours on the ring: valid there
            for f in forged(node_id):
                ep.queue.put((1, f))  # on node 1's own channel (node 1 is the attacker)
        return ep

    monkeypatch.setattr(LoopbackNetwork, "endpoint", endpoint)
    with caplog.at_level(logging.WARNING, logger="dfl.node"):
        result = run_loopback(cfg, program=program)
    # Before: nodes 0 and 2 jumped to round 9 at once, then 1 and 3 followed.
    assert [result.nodes[i].counters.rounds_skipped for i in range(4)] == [0, 0, 0, 0]
    assert [result.nodes[i].rounds_run for i in range(4)] == [10] * 4
    last = result.records[-1]
    assert last["round"] == 10 and last["nodes_reporting"] == 4
    assert last["messages_missing"] == 0 and last["bytes_rejected"] == 0
    refused = [r.getMessage() for r in caplog.records if "not skipping" in r.getMessage()]
    assert any(f"{{1: {FORGED_ROUND}}}" in m and m.startswith("node 0 ") for m in refused)


def test_one_forged_far_frame_does_not_stop_the_wait_for_genuine_messages():
    box = inbox()
    feed(box, frames(round_=FORGED_ROUND), 1)  # "node 1 is far ahead"
    feed(box, frames(round_=0, sender=2), 2)
    threading.Timer(0.1, feed, (box, frames(round_=0), 1)).start()
    got = box.collect(0, Kind.WIRE, [1, 2], time.monotonic() + 5, dependents=[1, 2])
    assert sorted(got.messages) == [1, 2]  # before: node 1 was not awaited
    # When more than half of the members are seen there, the wait ends (a genuine rejoin).
    box = inbox()
    for j in (1, 2):
        feed(box, frames(round_=5, sender=j), j)
    began = time.monotonic()
    got = box.collect(0, Kind.WIRE, [1, 2], began + 5, dependents=[1, 2])
    assert time.monotonic() - began < 1 and got.missing == [1, 2]


@pytest.mark.parametrize(
    ("rounds", "want"),
    [
        ({1: 140}, 5),  # one of two: no majority
        ({1: 140, 3: 5}, 5),
        ({1: 140, 3: 9}, 9),  # both ahead: only as far as both reached
        ({1: 9, 3: 140}, 9),
    ],
)
def test_agreed_round_needs_a_strict_majority(rounds, want):
    assert agreed_round(5, [1, 3], rounds) == want


def test_three_of_five_decide_and_time_bounds_the_jump():
    members = [1, 2, 3, 4, 5]
    assert agreed_round(0, members, {1: 50, 2: 40, 3: 30}) == 30
    assert agreed_round(0, members, {1: 50, 2: 40}) == 0
    assert majority_at(30, members, {1: 50, 2: 40, 3: 30}) and not majority_at(31, members, {})
    step = InStep(round=10, time=100.0)
    assert step.bound(100.0, 2.0) == 11 and step.bound(109.9, 2.0) == 15
    assert rejoin_target(10, [1, 3], {1: 40, 3: 30}, bound=15, last_round=99) == 15
    assert rejoin_target(10, [1, 3], {1: 12, 3: 13}, bound=15, last_round=99) == 12
    assert rejoin_target(10, [1, 3], {1: 40}, bound=15, last_round=99) == 10
    assert rejoin_target(10, [1, 3], {1: 400, 3: 400}, bound=10**6, last_round=99) == 99


def test_members_are_the_in_neighbours_over_a_period():
    """One-peer exponential over 8 nodes has in-degree 1 each round; over its period
    node 0 hears from several members, so one of them is never a majority."""
    from dfl.topology import build_schedule
    from tests.node.test_exchange import exchange_at

    cfg, _ = compose_config("topology=one_peer_exponential", "topology.n=8", "mixing=uniform")
    schedule = build_schedule(cfg.topology, cfg.mixing, seed=cfg.seed)
    ex = exchange_at(0, schedule, {})
    period = schedule.period
    assert period is not None and period > 1
    want = set()
    for r in range(period):
        W = np.asarray(schedule.weights(r))
        want |= {j for j in range(1, 8) if W[0, j] > 0}
    assert ex.members(0) == want and len(want) >= 3
