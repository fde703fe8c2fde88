"""Pure pieces of the Pilot backend (no daemon): neighbours, addresses, the bound send."""

from __future__ import annotations

import pytest

from dfl.pilot.endpoint import neighbours_of
from dfl.pilot.membership import node_of_address, node_tag
from dfl.topology import build_schedule
from tests.node.common import compose_config


def test_ring_neighbours_exclude_the_opposite_node():
    cfg, _ = compose_config()  # a ring of 4
    schedule = build_schedule(cfg.topology, cfg.mixing, seed=cfg.seed)
    assert [sorted(neighbours_of(schedule, i)) for i in range(4)] == [
        [1, 3],
        [0, 2],
        [1, 3],
        [0, 2],
    ]


def test_time_varying_neighbours_are_the_union_over_one_period():
    cfg, _ = compose_config("topology=one_peer_exponential", "topology.n=8", "mixing=uniform")
    schedule = build_schedule(cfg.topology, cfg.mixing, seed=cfg.seed)
    assert schedule.period == 3  # peers 2^0, 2^1, 2^2 ahead, one per round
    # node 0 sends to 1, 2, 4 and hears from 7, 6, 4 over the period
    assert sorted(neighbours_of(schedule, 0)) == [1, 2, 4, 6, 7]


def test_pilot_addresses_name_their_node():
    assert node_of_address("0:0000.0000.0002") == 2
    assert node_of_address("1:0001.0001.00FF") == 0x100FF
    with pytest.raises(ValueError, match="not a Pilot address"):
        node_of_address("127.0.0.1:9000")
    assert node_tag(3) == "dfl-node-3"
