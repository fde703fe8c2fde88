"""One member cannot make others skip rounds (issue 13, finding 1).

A single valid frame claiming to be node 1 at a far round used to make node 1's
out-neighbours jump to the end of the run (``rounds_skipped`` 9 of 10, nothing
logged). Now a node skips only when more than half of its in-neighbours over a
schedule period are ahead, as far as they agree, and as far as its silence allows.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dfl.experiment import build_experiment
from dfl.node import build_program, run_loopback
from dfl.node.rejoin import agreed_round, members, rejoin_target, time_bound
from dfl.node.setup import run_id
from dfl.transport import Kind, encode_payload, run_digest
from dfl.transport.wire import frame_bytes
from tests.node.common import compose_config

FORGED_ROUND = 500  # past the 10-round run: never reached, so no genuine message is shadowed


def test_one_forged_far_round_frame_makes_nobody_skip(monkeypatch, caplog):
    cfg, opt = compose_config(
        "rounds=10",
        "eval_every=5",
        "node.deadline_s=1",
        "node.first_deadline_s=60",
        "node.wait_timeout_s=30",
        "transport.max_rounds_ahead=1024",
    )
    program = build_program(build_experiment(cfg, opt))
    spec = program.spec
    good = [np.zeros(s, d) for s, d in zip(spec.shapes, spec.dtypes, strict=True)]
    payload = encode_payload(spec, spec.unflatten(good))

    def forged(recipient: int) -> list[bytes]:
        frames = payload.frames(
            run=run_digest(run_id(cfg)),
            sender=1,
            recipient=recipient,
            round=FORGED_ROUND,
            kind=Kind.WIRE,
        )
        return [frame_bytes(f) for f in frames]

    from dfl.transport.loopback import LoopbackNetwork

    original = LoopbackNetwork.endpoint

    def endpoint(self, node_id):
        ep = original(self, node_id)
        if node_id in (0, 2):  # node 1's out-neighbours on the ring: the frame is valid there
            for f in forged(node_id):
                ep.queue.put(f)
        return ep

    monkeypatch.setattr(LoopbackNetwork, "endpoint", endpoint)
    with caplog.at_level(logging.WARNING, logger="dfl.node"):
        result = run_loopback(cfg, program=program)
    skipped = {i: result.nodes[i].counters.rounds_skipped for i in range(4)}
    # The nodes the forged frame reached (0, 2) and node 3 run every round (before:
    # all four skipped 7-8 of 10 rounds).
    assert [skipped[i] for i in (0, 2, 3)] == [0, 0, 0], skipped
    assert [result.nodes[i].rounds_run for i in (0, 2, 3)] == [10, 10, 10]
    assert result.records[-1]["round"] == 10 and result.records[-1]["nodes_reporting"] == 4
    # Node 1 may fall behind: the transport's inbox stops waiting for a peer it saw
    # 2+ rounds ahead (dfl.transport.inbox, not this fix), so 0 and 2 run on without
    # its messages; then both of its in-neighbours are ahead, a genuine majority.
    jumps = [r.getMessage() for r in caplog.records if "skipping to round" in r.getMessage()]
    assert all(m.startswith("node 1 ") and "2 of its 2 in-neighbours [0, 2]" in m for m in jumps)
    refused = [r.getMessage() for r in caplog.records if "not skipping" in r.getMessage()]
    assert any(f"{{1: {FORGED_ROUND}}}" in line and "node 0" in line for line in refused), refused


def ring_w(n: int) -> np.ndarray:
    W = np.zeros((n, n))
    for i in range(n):
        W[i, i] = W[i, (i + 1) % n] = W[i, (i - 1) % n] = 1 / 3
    return W


def test_members_are_the_union_over_a_period():
    one_peer = [np.eye(4) * 0.5 + np.roll(np.eye(4), s, axis=1) * 0.5 for s in (1, 2)]
    assert members(lambda r: one_peer[r % 2], 0, 0, 1) == [1]
    assert members(lambda r: one_peer[r % 2], 0, 0, 2) == [1, 2]
    assert members(lambda r: ring_w(4), 0, 3, 1) == [1, 3]


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
    peers = [1, 2, 3, 4, 5]
    assert agreed_round(0, peers, {1: 50, 2: 40, 3: 30}) == 30
    assert agreed_round(0, peers, {1: 50, 2: 40}) == 0
    assert time_bound(0.0, 2.0) == 1 and time_bound(9.9, 2.0) == 5
    common = {"silent_s": 9.9, "deadline_s": 2.0, "last_round": 99}
    assert rejoin_target(10, [1, 3], {1: 40, 3: 30}, **common) == 15  # 5 rounds in 9.9 s
    assert rejoin_target(10, [1, 3], {1: 12, 3: 13}, **common) == 12
    assert rejoin_target(10, [1, 3], {1: 40}, **common) == 10
    assert (
        rejoin_target(10, [1, 3], {1: 400, 3: 400}, silent_s=1e6, deadline_s=2.0, last_round=99)
        == 99
    )
