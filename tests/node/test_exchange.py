"""What the missing-message rules do, on numbers computed by hand.

A node's exchange over a real loopback network (send, receive, plan, mix) on a
ring of 4 with ``W[0] = [½, ¼, 0, ¼]``: node 0 mixes its own message with those
of nodes 1 and 3.
"""

from __future__ import annotations

import threading
import time
import types

import jax.numpy as jnp
import numpy as np
import pytest

from dfl.algorithms.base import MissingRule
from dfl.gossip.dense import renormalize
from dfl.node import NodeExchange, in_neighbours, mix, out_neighbours, plan_mix
from dfl.node.exchange import ExchangeCounts
from dfl.transport import Kind, WireSpec, encode_payload
from dfl.transport.loopback import LoopbackNetwork

W = np.array(
    [
        [0.5, 0.25, 0.0, 0.25],
        [0.25, 0.5, 0.25, 0.0],
        [0.0, 0.25, 0.5, 0.25],
        [0.25, 0.0, 0.25, 0.5],
    ]
)
X = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])  # node j sends X[j]
SPEC = WireSpec.from_tree({"x": jnp.zeros(2, jnp.float32)})
ALL = [0.5 * 1 + 0.25 * 2 + 0.25 * 4, 0.5 * 10 + 0.25 * 20 + 0.25 * 40]  # [2, 20]
WITHOUT_3 = [0.75 * 1 + 0.25 * 2, 0.75 * 10 + 0.25 * 20]  # 3's weight moved to node 0


class Static:
    """A one-matrix schedule."""

    period = 1

    def weights(self, round_: int) -> np.ndarray:
        del round_
        return W


def message(j: int) -> dict:
    return {"x": jnp.asarray(X[j], jnp.float32)}


def exchange_of(net, rule, *, deadline_s=0.2, wait_timeout_s=5.0):
    transport = net.endpoint(0)
    transport.expect(Kind.WIRE, SPEC)
    counts = ExchangeCounts()
    exchange = NodeExchange(
        node=0,
        schedule=Static(),  # type: ignore[arg-type]
        spec=SPEC,
        decode=lambda wire: wire,
        transport=transport,
        rule=rule,
        algorithm="test",
        deadline_s=deadline_s,
        first_deadline_s=deadline_s,
        wait_timeout_s=wait_timeout_s,
        chunk_bytes=1 << 20,
        counts=counts,
    )
    return exchange, counts


def send(net, j: int, round_: int = 0) -> None:
    net.endpoint(j).send(0, round_, Kind.WIRE, encode_payload(SPEC, message(j)))


@pytest.fixture
def net():
    return LoopbackNetwork(4, run_id="exchange-test")


def test_every_message_delivered_mixes_the_w_row(net):
    exchange, counts = exchange_of(net, MissingRule.RENORMALIZE)
    send(net, 1)
    send(net, 3)
    np.testing.assert_allclose(exchange.apply(message(0), 0)["x"], ALL)
    assert (counts.messages_sent, counts.messages_received, counts.messages_missing) == (2, 2, 0)


def test_renormalize_mixes_the_renormalised_row_when_a_message_is_dropped(net):
    exchange, counts = exchange_of(net, MissingRule.RENORMALIZE)
    send(net, 1)  # node 3's message is lost
    start = time.monotonic()
    np.testing.assert_allclose(exchange.apply(message(0), 0)["x"], WITHOUT_3)
    assert time.monotonic() - start >= 0.15  # it waited out its deadline for node 3
    assert (counts.messages_received, counts.messages_missing) == (1, 1)


def test_a_delivery_mask_drops_an_arrived_message_as_the_simulation_does(net):
    exchange, counts = exchange_of(net, MissingRule.RENORMALIZE)
    send(net, 1)
    send(net, 3)
    node = exchange.apply(message(0), 0, delivered={1})
    np.testing.assert_allclose(node["x"], WITHOUT_3)
    assert (counts.messages_received, counts.messages_missing) == (1, 1)
    # The simulation's rule on the [N, N] mask gives node 0 the same row.
    delivered = np.ones((4, 4), bool)
    delivered[0, 3] = False
    Wd = np.asarray(renormalize(jnp.asarray(W), jnp.asarray(delivered)))
    np.testing.assert_allclose(Wd[0], [0.75, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(Wd[1:], W[1:])  # the other rows heard everything
    np.testing.assert_allclose((Wd @ X)[0], np.asarray(node["x"]), rtol=1e-6)


def test_renormalize_keeps_row_sums_and_moves_each_lost_weight_to_its_receiver():
    delivered = np.array(
        [[1, 0, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 0, 0]], bool
    )  # diagonal entries are ignored (node 3's own is False here)
    Wd = np.asarray(renormalize(jnp.asarray(W), jnp.asarray(delivered)))
    expected = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],  # lost 1 (¼) and 3 (¼)
            [0.25, 0.5, 0.25, 0.0],  # heard everything
            [0.0, 0.0, 0.75, 0.25],  # lost 1 (¼)
            [0.0, 0.0, 0.0, 1.0],  # lost 0 and 2
        ]
    )
    np.testing.assert_allclose(Wd, expected)
    np.testing.assert_allclose(Wd.sum(1), W.sum(1))


def test_wait_blocks_until_the_missing_message_arrives(net):
    exchange, counts = exchange_of(net, MissingRule.WAIT, deadline_s=0.1)
    send(net, 1)
    late = threading.Timer(0.6, send, (net, 3))  # six deadlines later
    late.start()
    start = time.monotonic()
    try:
        mixed = exchange.apply(message(0), 0)
    finally:
        late.join()
    assert time.monotonic() - start >= 0.5
    np.testing.assert_allclose(mixed["x"], ALL)  # nothing renormalised away
    assert (counts.messages_received, counts.messages_missing) == (2, 0)


def test_wait_fails_loudly_when_the_message_never_arrives(net):
    exchange, _ = exchange_of(net, MissingRule.WAIT, deadline_s=0.1, wait_timeout_s=0.5)
    send(net, 1)
    with pytest.raises(RuntimeError, match=r"no valid message from \{3: .*must WAIT"):
        exchange.apply(message(0), 0)


def test_wait_refuses_a_delivery_mask_that_drops_a_message(net):
    exchange, _ = exchange_of(net, MissingRule.WAIT)
    with pytest.raises(ValueError, match=r"drops \[3\].*must WAIT"):
        exchange.apply(message(0), 0, delivered={1})


def test_plan_refuses_a_missing_message_under_wait():
    with pytest.raises(RuntimeError, match="WAIT"):
        plan_mix(0, W[0], message(0), {1: message(1)}, MissingRule.WAIT)


def test_mix_keeps_dtypes():
    a = {"x": jnp.array([1.0, 2.0], jnp.bfloat16), "n": jnp.array([3], jnp.int32)}
    out = mix(jnp.array([0.5, 0.5]), [a, a])
    assert out["x"].dtype == jnp.bfloat16 and out["n"].dtype == jnp.int32


def test_neighbours_follow_w_columns_and_rows():
    W = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])  # directed cycle
    assert in_neighbours(W, 0) == [1] and out_neighbours(W, 0) == [2]


def exchange_at(node: int, schedule, peer_rounds: dict[int, int]) -> NodeExchange:
    """A node's exchange that last heard ``peer_rounds`` (peer → highest round it sent)."""
    ex = NodeExchange(
        node=node,
        schedule=schedule,
        spec=None,  # type: ignore[arg-type]
        decode=lambda w: w,
        transport=None,  # type: ignore[arg-type]
        rule=MissingRule.RENORMALIZE,
        algorithm="dsgd",
        deadline_s=1.0,
        first_deadline_s=1.0,
        wait_timeout_s=1.0,
        chunk_bytes=1 << 20,
        counts=ExchangeCounts(),
    )
    ex.received = types.SimpleNamespace(peer_rounds=peer_rounds)  # type: ignore[assignment]
    return ex


def test_a_peer_ahead_means_this_node_is_behind_only_if_it_needed_this_node():
    """One-peer exponential over 8 nodes (one peer per node and round): a peer one round
    ahead that needed nothing from node 0 in between is ahead legitimately; one that mixed
    node 0's unsent message went on without it."""
    from dfl.topology import build_schedule
    from tests.node.common import compose_config

    cfg, _ = compose_config("topology=one_peer_exponential", "topology.n=8", "mixing=uniform")
    schedule = build_schedule(cfg.topology, cfg.mixing, seed=cfg.seed)
    W = [np.asarray(schedule.weights(s)) for s in range(3)]
    # node 0 is at round 2; which peers mix node 0's message in round 2 (W_2[j, 0] > 0)?
    needs = {j for j in range(1, 8) if W[2][j, 0] > 0}
    free = next(j for j in range(1, 8) if j not in needs)
    (needer,) = needs
    assert exchange_at(0, schedule, {free: 3}).dependents_ahead(2) is None
    assert exchange_at(0, schedule, {needer: 3}).dependents_ahead(2) == 3
    assert exchange_at(0, schedule, {free: 2, needer: 2}).dependents_ahead(2) is None
    # on a static ring a neighbour ahead always mixed this node's message
    ring, _ = compose_config("topology=ring", "topology.n=8")
    ring_schedule = build_schedule(ring.topology, ring.mixing, seed=ring.seed)
    assert exchange_at(0, ring_schedule, {1: 9, 7: 4}).dependents_ahead(2) == 9
    assert exchange_at(0, ring_schedule, {4: 9}).dependents_ahead(2) is None  # not a neighbour
