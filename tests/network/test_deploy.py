"""A loopback deployment replaying the network schedule ends where the simulation does."""

from __future__ import annotations

import pytest

from dfl.experiment import build_experiment
from dfl.network.sim import network_model
from dfl.node import build_program, run_loopback
from dfl.sim.runner import simulate
from tests.node.common import assert_close, compose_config, node_params, sim_params

FAULTS = (
    "network=lossy",
    "network.seed=3",
    "network.drop=0.2",
    "network.churn.kind=markov",
    "network.churn.mean_up=6",
    "network.churn.mean_down=2",
    "network.stragglers.prob=0.2",
    "network.stragglers.factor=200",
    "node.deadline_s=2.0",
    "eval_every=5",
)
"""Drops, churn and stragglers (4 nodes, 20 rounds of 2 local steps: tests/node/common.py).
A straggler's 200 × 0.02 s misses the 2 s (virtual) deadline."""


def run_both(algorithm: str):
    cfg, opt = compose_config(f"algorithm={algorithm}", *FAULTS)
    sim = simulate(cfg, opt)
    exp = build_experiment(cfg, opt)
    dep = run_loopback(cfg, program=build_program(exp))
    for i in range(exp.n):
        assert_close(node_params(dep, i), sim_params(sim, i))
    online = network_model(exp, 0).online
    assert not online.all() and online.any(axis=1).all()  # churn, never everyone away
    return sim.records, dep.records


def test_dsgd_deployment_replays_drops_churn_and_stragglers():
    sim, dep = run_both("dsgd")
    assert [r["round"] for r in sim] == [r["round"] for r in dep]
    for s, d in zip(sim, dep, strict=True):
        assert d["messages_missing"] == s["messages_missing"]
        assert d["nodes_online"] == s["nodes_online"]
        assert d["sim_time"] == pytest.approx(s["sim_time"], rel=1e-6)
        assert d["bytes_sent_per_node"] == pytest.approx(s["bytes_sent_per_node"], rel=1e-12)
        assert d["test_accuracy_mean"] == pytest.approx(s["test_accuracy_mean"], abs=1e-3)
    assert sim[-1]["messages_missing"] > 10  # the faults really bit


@pytest.mark.slow
def test_wait_algorithm_deployment_has_the_simulations_time_and_retransmissions():
    sim, dep = run_both("gradient_tracking")
    for s, d in zip(sim, dep, strict=True):
        assert d["messages_missing"] == s["messages_missing"] == 0
        assert d["retransmissions"] == s["retransmissions"]
        assert d["sim_time"] == pytest.approx(s["sim_time"], rel=1e-6)
    assert sim[-1]["retransmissions"] > 0
