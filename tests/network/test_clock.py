"""Virtual clocks of hand-built cases, computed by hand; numpy and jnp agree."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.network import clock, draws
from tests.network.models import hand_model

COMPLETE3 = ~np.eye(3, dtype=bool)
MESSAGE3 = np.array([[0.0, 0.05, 0.3], [0.05, 0.0, 0.1], [0.3, 0.1, 0.0]])


def run(xp, model, adjacency, rounds):
    net, outs = clock.init(xp, model.n), []
    for _ in range(rounds):
        net, out = clock.step(xp, model, net, xp.asarray(adjacency))
        outs.append((net, out))
    return outs


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jnp"])
def test_three_nodes_renormalize_sim_time_by_hand(xp):
    # Round 0: sends at 0.1, 0.2, 0.5. Node 0 hears 1 at 0.25 but 2 only at 0.8,
    # after its deadline 0.1 + 0.5: it combines at 0.6 without 2. Node 1 hears
    # 0 at 0.15 and 2 at 0.6 (deadline 0.7): combines at 0.6. Node 2 hears 0 at
    # 0.4 and 1 at 0.3, before its own send at 0.5: combines at 0.5.
    # Round 1 (0.1 s compute each): sends at 0.7, 0.7, 0.6; node 0 hears 1 at 0.75,
    # 2 at 0.9 -> 0.9; node 1 hears 0 at 0.75, 2 at 0.7 -> 0.75; node 2 hears
    # 0 at 1.0, 1 at 0.8 -> 1.0.
    compute = np.array([[0.1, 0.2, 0.5], [0.1, 0.1, 0.1]])
    model = hand_model(MESSAGE3, compute, deadline_s=0.5)
    (net0, out0), (net1, out1) = run(xp, model, COMPLETE3, 2)
    np.testing.assert_allclose(np.asarray(net0.clock), [0.6, 0.6, 0.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(net1.clock), [0.9, 0.75, 1.0], rtol=1e-6)
    expected = COMPLETE3.copy()
    expected[0, 2] = False
    np.testing.assert_array_equal(np.asarray(out0.delivered), expected)
    np.testing.assert_array_equal(np.asarray(out0.missing), [1, 0, 0])
    np.testing.assert_array_equal(np.asarray(out1.delivered), COMPLETE3)
    np.testing.assert_array_equal(np.asarray(net1.missing), [1, 0, 0])
    assert float(np.max(np.asarray(net1.clock))) == pytest.approx(1.0)  # the record's sim_time


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jnp"])
def test_wait_offline_node_pauses_its_neighbours_by_hand(xp):
    # WAIT, node 2 offline in round 0 for away_s = 2: it sends at 0.5 + 2 = 2.5;
    # node 0 waits until 2.5 + 0.3, node 1 until 2.5 + 0.1, node 2 combines at 2.5.
    compute = np.array([[0.1, 0.2, 0.5]])
    online = np.array([[True, True, False]])
    model = hand_model(MESSAGE3, compute, wait=True, online=online, away_s=2.0)
    ((net, out),) = run(xp, model, COMPLETE3, 1)
    np.testing.assert_allclose(np.asarray(net.clock), [2.8, 2.6, 2.5], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(out.missing), [0, 0, 0])
    np.testing.assert_array_equal(np.asarray(out.delivered), COMPLETE3)


def test_wait_retransmissions_are_geometric_in_the_drop_draw():
    # k = floor(log u / log p) failures before the first success, arrival = send + k·rto + m.
    p, n = 0.5, 3
    model = hand_model(MESSAGE3, np.zeros((1, n)), wait=True, drop=p, rto_s=0.25)
    ((net, out),) = run(np, model, COMPLETE3, 1)
    u = draws.uniform(np, 0, draws.DROP, 0, np.arange(n)[None, :], np.arange(n)[:, None])
    k = np.floor(np.log(u.astype(np.float64)) / np.log(p)).astype(int) * COMPLETE3
    assert k.sum() > 0  # the case exercises retransmissions
    np.testing.assert_array_equal(np.asarray(out.retransmissions), k.sum(axis=1))
    arrive = np.where(COMPLETE3, k * 0.25 + MESSAGE3, -np.inf)
    np.testing.assert_allclose(np.asarray(net.clock), arrive.max(axis=1), rtol=1e-6)


def test_shared_uplink_sends_one_message_after_another():
    # Node 0 sends to 1 then 2 over a 0.2 s/message uplink (latency 0.01): they hear it
    # at 0.21 and 0.41; nodes 1 and 2 each have one out-neighbour (0) on a path 1-0-2.
    adjacency = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], bool)
    latency = np.full((3, 3), 0.01)
    model = hand_model(latency, np.zeros((1, 3)), uplink=np.array([0.2, 0.2, 0.2], np.float32))
    ((net, _),) = run(np, model, adjacency, 1)
    np.testing.assert_allclose(net.clock, [0.21, 0.21, 0.41], rtol=1e-6)


def test_a_peer_down_after_missed_deadlines_is_not_waited_for():
    # Node 2 is offline for rounds 0-2; with down_after=2 node 0 waits out its deadline
    # (1 s) in rounds 0 and 1, then stops waiting for 2 in round 2 (combines at once).
    online = np.ones((4, 3), bool)
    online[:3, 2] = False
    model = hand_model(
        np.zeros((3, 3)), np.zeros((4, 3)), deadline_s=1.0, online=online, down_after=2
    )
    rounds = run(np, model, COMPLETE3, 4)
    np.testing.assert_allclose([net.clock[0] for net, _ in rounds], [1.0, 2.0, 2.0, 2.0])
    # Node 2 rejoined at its neighbours' clock (2.0): its message of round 3 arrives in
    # time again and ends its down state.
    np.testing.assert_allclose([net.clock[2] for net, _ in rounds], [1.0, 2.0, 2.0, 2.0])
    assert not rounds[2][1].delivered[0, 2] and rounds[3][1].delivered[0, 2]
    assert rounds[3][0].missed[0, 2] == 0


def test_numpy_and_jit_agree_bit_for_bit():
    rng = np.random.default_rng(0)
    n, rounds = 16, 5
    message = rng.uniform(0, 0.2, (n, n))
    compute = rng.uniform(0, 0.3, (rounds, n))
    online = rng.uniform(size=(rounds, n)) > 0.2
    model = hand_model(message, compute, deadline_s=0.3, drop=0.2, online=online, down_after=2)
    adjacency = rng.uniform(size=(n, n)) < 0.4
    host = run(np, model, adjacency, rounds)
    step = jax.jit(lambda net, a: clock.step(jnp, model, net, a))
    net = clock.init(jnp, n)
    for net_np, out_np in host:
        net, out = step(net, jnp.asarray(adjacency))
        for a, b in zip((*net, *out), (*net_np, *out_np), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_late_but_valid_message_ends_the_down_state():
    # Node 2 is offline in rounds 0-1 (down at node 0 after 2 missed deadlines), rejoins
    # at 2.0 and computes 0.3 s in round 2: node 0 (send 2.0) does not wait for it and
    # combines at 2.0; its message arrives at 2.3, within node 0's deadline (3.0): not
    # mixed, but node 2 is up again, so in round 3 node 0 waits for it (until 2.3).
    online = np.ones((4, 3), bool)
    online[:2, 2] = False
    compute = np.zeros((4, 3))
    compute[2, 2] = 0.3
    model = hand_model(np.zeros((3, 3)), compute, deadline_s=1.0, online=online, down_after=2)
    rounds = run(np, model, COMPLETE3, 4)
    np.testing.assert_allclose([net.clock[0] for net, _ in rounds], [1.0, 2.0, 2.0, 2.3])
    assert not rounds[2][1].delivered[0, 2] and rounds[2][0].missed[0, 2] == 0
    assert rounds[3][1].delivered[0, 2]
