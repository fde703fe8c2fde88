"""A deployment with attackers and a robust rule ends with the simulation's parameters;
a flagged peer is cut off at the transport."""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np
import pytest

from dfl.experiment import build_experiment
from dfl.node import build_program, run_loopback
from dfl.sim.runner import simulate
from dfl.transport import Kind, LoopbackNetwork, WireSpec, encode_payload
from tests.node.common import assert_close, compose_config, node_params, sim_params

SHORT = ("rounds=10", "eval_every=5")

CASES = [
    pytest.param(
        (
            "byzantine=clipped_gossip",
            "byzantine.nodes=[1]",
            "byzantine.attack=dissensus",
            "byzantine.epsilon=1.5",
        ),
        id="clipped_gossip-dissensus",
    ),
    pytest.param(
        (
            "topology=complete",
            "mixing=uniform",
            "byzantine=trimmed_mean",
            "byzantine.nodes=[2]",
            "byzantine.attack=gaussian",
            "byzantine.sigma=0.5",
        ),
        id="trimmed_mean-gaussian",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        (
            "topology=complete",
            "mixing=uniform",
            "topology.n=5",
            "byzantine=krum",
            "byzantine.nodes=[0]",
            "byzantine.attack=alie",
        ),
        id="krum-alie",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        (
            "topology=complete",
            "mixing=uniform",
            "byzantine=median",
            "byzantine.nodes=[3]",
            "byzantine.attack=ipm",
            "byzantine.epsilon=2",
        ),
        id="median-ipm",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("overrides", CASES)
def test_loopback_deployment_with_attackers_equals_simulation(overrides):
    cfg, opt = compose_config(*SHORT, *overrides)
    exp = build_experiment(cfg, opt)
    sim = simulate(cfg, opt)
    dep = run_loopback(cfg, program=build_program(exp))
    for i in range(exp.n):
        assert_close(node_params(dep, i), sim_params(sim, i))
    last_sim, last_dep = sim.records[-1], dep.records[-1]
    assert last_dep["messages_missing"] == 0 and last_dep["messages_rejected"] == 0
    assert last_dep["test_accuracy_honest_mean"] == pytest.approx(
        last_sim["test_accuracy_honest_mean"], abs=1e-3
    )


@pytest.mark.slow
def test_flagged_attacker_is_cut_off_and_honest_nodes_match_the_simulation():
    # The cut-off attacker's neighbours stop waiting for it and run ahead; only the
    # honest nodes' trajectories are fixed by the run (node.rejoin off keeps node 0 going).
    cfg, opt = compose_config(
        *SHORT,
        "topology.n=6",
        "byzantine.nodes=[0]",
        "byzantine.attack=sign_flip",
        "byzantine.scale=3",
        "byzantine.detect=true",
        "byzantine.min_rounds=1",
        "node.rejoin=false",
    )
    exp = build_experiment(cfg, opt)
    sim = simulate(cfg, opt)
    dep = run_loopback(cfg, program=build_program(exp))
    for i in range(1, exp.n):
        assert_close(node_params(dep, i), sim_params(sim, i))
    for s, d in zip(sim.records, dep.records, strict=True):
        for key in ("byzantine_flagged", "byzantine_flagged_true", "byzantine_flagged_false"):
            assert d[key] == s[key], key
    assert dep.records[-1]["byzantine_flagged_true"] == 2
    # its neighbours 1 and 5 no longer take its messages after round 0
    assert dep.records[-1]["messages_missing"] >= 2 * (cfg.rounds - 1)


def test_a_blocked_peer_frames_are_refused():
    tree = {"w": jnp.arange(6, dtype=jnp.float32)}
    spec = WireSpec.from_tree(tree)
    net = LoopbackNetwork(3, run_id="b")
    a, b, c = (net.endpoint(i) for i in range(3))
    for e in (a, b, c):
        e.expect(Kind.WIRE, spec, lambda r: [0, 1, 2])
    b.block(0)
    payload = encode_payload(spec, tree)
    a.send(1, 0, Kind.WIRE, payload)
    c.send(1, 0, Kind.WIRE, payload)
    got = b.receive(0, [0, 2], time.monotonic() + 1.0)
    assert sorted(got.messages) == [2] and got.missing == [0]
    assert [r.sender for r in got.rejections] == [0]
    np.testing.assert_array_equal(spec.unflatten(got.messages[2])["w"], tree["w"])
    assert b.blocked == {0}


def test_blocking_on_pilot_revokes_trust_only_when_asked():
    from dfl.transport.base import FramedTransport
    from dfl.transport.pilot import PilotTransport

    class Membership:
        def __init__(self):
            self.revoked: set[int] = set()

        def revoke(self, node: int) -> None:
            self.revoked.add(node)

    t = PilotTransport.__new__(PilotTransport)
    FramedTransport.__init__(t, 0, 3, run_id="p")  # the shared part, no daemon
    t.membership = Membership()  # type: ignore[assignment]
    t.block(1)
    t.block(2, revoke=True)
    assert t.blocked == {1, 2} and t.membership.revoked == {2}
