"""Attacker placement by seed or list, and the per-node count it produced."""

from __future__ import annotations

import numpy as np
import pytest

from dfl.robust import (
    attackers_per_node,
    byzantine_mask,
    edges_of,
    place_attackers,
    placement_report,
)
from dfl.topology.mixing import metropolis_hastings
from dfl.topology.static import ring


def test_placement_by_seed_is_reproducible_distinct_and_sorted():
    a = place_attackers(25, count=3, seed=4)
    assert a.tolist() == place_attackers(25, count=3, seed=4).tolist()
    assert len(set(a.tolist())) == 3 and a.tolist() == sorted(a.tolist())
    assert a.min() >= 0 and a.max() < 25
    draws = {tuple(place_attackers(25, count=3, seed=s).tolist()) for s in range(10)}
    assert len(draws) > 1
    assert place_attackers(5, count=0).tolist() == []


def test_explicit_list_and_errors():
    assert place_attackers(8, nodes=[5, 1]).tolist() == [1, 5]
    with pytest.raises(ValueError, match="exactly one of count or nodes"):
        place_attackers(8)
    with pytest.raises(ValueError, match=r"must lie in \[0, 8\), found \[9\]"):
        place_attackers(8, nodes=[1, 9])
    with pytest.raises(ValueError, match="distinct"):
        place_attackers(8, nodes=[1, 1])
    with pytest.raises(ValueError, match=r"count must be in \[0, 4\)"):
        place_attackers(4, count=4)


def test_per_node_count_reports_two_attackers_next_to_one_node():
    dst, src, _, _ = edges_of(metropolis_hastings(ring(6)))
    attackers = place_attackers(6, nodes=[0, 2])
    per = attackers_per_node(dst, src, attackers, 6)
    assert per.tolist() == [0, 2, 0, 1, 0, 1]
    assert byzantine_mask(6, attackers).tolist() == [True, False, True, False, False, False]
    report = placement_report(dst, src, attackers, 6)
    assert report == {
        "attackers": [0, 2],
        "attackers_per_node": [0, 2, 0, 1, 0, 1],
        "max_per_honest_node": 2,
    }
    assert np.all(attackers_per_node(dst, src, [], 6) == 0)
