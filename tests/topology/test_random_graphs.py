"""Random static graphs: connected, reproducible, bounded retries with clear errors."""

from __future__ import annotations

import pytest

from dfl.topology.random_graphs import erdos_renyi, random_regular, small_world


def test_erdos_renyi_connected_and_reproducible():
    g = erdos_renyi(20, 0.2, seed=1)
    assert g.is_connected()
    assert g.adjacency.tolist() == erdos_renyi(20, 0.2, seed=1).adjacency.tolist()
    assert g.adjacency.tolist() != erdos_renyi(20, 0.2, seed=2).adjacency.tolist()


def test_erdos_renyi_gives_up_with_hint():
    with pytest.raises(ValueError, match=r"p=0.01.*max_tries=5.*log\(n\)/n"):
        erdos_renyi(30, 0.01, seed=0, max_tries=5)
    with pytest.raises(ValueError, match="p=0"):
        erdos_renyi(5, 0.0, seed=0)


def test_random_regular():
    g = random_regular(16, 3, seed=0)
    assert (g.degree == 3).all() and g.is_connected()
    with pytest.raises(ValueError, match=r"n\*degree even.*degree=3, n=15"):
        random_regular(15, 3, seed=0)


def test_small_world():
    g = small_world(20, 4, 0.2, seed=0)
    assert g.is_connected() and g.num_edges == 40
    with pytest.raises(ValueError, match=r"even degree.*degree=3"):
        small_world(20, 3, 0.2, seed=0)
