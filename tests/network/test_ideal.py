"""``network=ideal`` is today's round; a lossless model through the masked path equals it."""

from __future__ import annotations

import pytest

from dfl.sim.runner import simulate
from tests.node.common import assert_close, assert_equal, compose_config

LOSSLESS = (
    "network=lossy",
    "network.drop=0.0",
    "network.compute.step_s=0.01",
    "network.links.latency_s=0.001",
)
"""A network model that loses nothing (drop 0, no churn or stragglers, deadline far)."""

NETWORK_KEYS = {"sim_time", "messages_missing", "retransmissions", "nodes_online"}
TIMING = {"wall_time", "compile_time"}


def strip(records, extra=()):
    return [{k: v for k, v in r.items() if k not in TIMING | set(extra)} for r in records]


@pytest.mark.parametrize("algorithm", ["dsgd", "gradient_tracking"])
def test_lossless_model_equals_the_ideal_runner(algorithm):
    cfg, opt = compose_config(f"algorithm={algorithm}", "sim.gossip=dense")
    ideal = simulate(cfg, opt)
    lossy_cfg, _ = compose_config(f"algorithm={algorithm}", "sim.gossip=dense", *LOSSLESS)
    lossy = simulate(lossy_cfg, opt)
    assert not NETWORK_KEYS & set(ideal.records[-1])  # ideal compiles today's round
    assert_equal(lossy.state, ideal.state)
    assert strip(lossy.records, NETWORK_KEYS) == strip(ideal.records)
    last = lossy.records[-1]
    assert last["messages_missing"] == 0 and last["retransmissions"] == 0
    assert last["nodes_online"] == 4
    # 20 rounds of 2 local steps of 0.01 s, each message 0.001 s + bytes / 1e7 B/s.
    nbytes = last["bytes_sent_per_node"] / (20 * 2)
    assert last["sim_time"] == pytest.approx(20 * (0.02 + 0.001 + nbytes / 1e7), rel=1e-5)


def test_ideal_with_the_auto_kernel_matches_the_sparse_masked_path():
    cfg, opt = compose_config()  # sim.gossip=auto: circulant here; the network run: sparse
    ideal = simulate(cfg, opt)
    lossy_cfg, _ = compose_config(*LOSSLESS)
    lossy = simulate(lossy_cfg, opt)
    assert_close(lossy.state, ideal.state)  # the equivalence tests' tolerance
