"""Time-varying schedules: one-peer exponential, Base-(k+1) and random matching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfl.topology.base_k import base_k, base_k_matrices, hyper_factors, smooth_part
from dfl.topology.time_varying import one_peer_exponential, random_matching


def product(mats) -> np.ndarray:
    P = np.eye(mats[0].shape[0])
    for W in mats:
        P = W @ P
    return P


def period_matrices(schedule):
    return [schedule.graph_at(t).weights for t in range(schedule.period)]


@pytest.mark.parametrize("n", [2, 4, 8, 16, 64])
def test_one_peer_exponential_averages_exactly_for_powers_of_two(n):
    s = one_peer_exponential(n)
    assert s.period == int(math.log2(n)) and s.one_peer
    mats = period_matrices(s)
    for t, W in enumerate(mats):
        np.testing.assert_allclose(W.sum(0), 1.0)
        np.testing.assert_allclose(W.sum(1), 1.0)
        assert W[0, 2**t % n] == 0.5 or n == 2
    np.testing.assert_allclose(product(mats), np.full((n, n), 1 / n), atol=1e-15)
    # any tau consecutive rounds, not only the first period
    np.testing.assert_allclose(product(mats[1:] + mats[:1]), np.full((n, n), 1 / n), atol=1e-15)


@pytest.mark.parametrize("n", [6, 12])
def test_one_peer_exponential_not_exact_otherwise(n):
    P = product(period_matrices(one_peer_exponential(n)))
    assert np.abs(P - 1 / n).max() > 1e-3


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("n", [5, 6, 7, 12])
def test_base_k_named_cases(n, k):
    s = base_k(n, k)
    mats = period_matrices(s)
    np.testing.assert_allclose(product(mats), np.full((n, n), 1 / n), atol=1e-13)
    for t, W in enumerate(mats):
        np.testing.assert_allclose(W, W.T)
        assert (W >= 0).all()
        assert s.graph_at(t).degree.max() <= k


def test_base_k_exact_for_every_n_and_short():
    for k in (1, 2, 3, 4):
        for n in range(1, 41):
            mats = base_k_matrices(n, k)
            assert np.abs(product(mats) - 1 / n).max() < 1e-12, (n, k)
            for W in mats:
                peers = ((W > 0) & ~np.eye(n, dtype=bool)).sum(axis=1)
                assert peers.max() <= k, (n, k)
                np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
                np.testing.assert_allclose(W, W.T)
            if n > 1:  # Theorem 1: at most 2 log_{k+1}(n) + 2 rounds.
                assert len(mats) <= 2 * math.log(n, k + 1) + 2 + 1e-9, (n, k)


def test_base_k_powers_are_hyper_hypercubes():
    # n a power of k+1: the hyper-hypercube, log_{k+1}(n) rounds of (k+1)-cliques.
    assert len(base_k_matrices(8, 1)) == 3
    assert len(base_k_matrices(9, 2)) == 2
    assert len(base_k_matrices(12, 2)) == 3  # 12 = 2*2*3
    W = base_k_matrices(9, 2)[0]
    np.testing.assert_allclose(W[0, :3], 1 / 3)
    assert hyper_factors(12, 3) == [3, 4] and smooth_part(20, 1) == 4


def test_base_k_simple_step_weights():
    # n=5, k=1: 5 = 4 + 1; node 4 pairs with node 3 with weight n_0/n = 4/5.
    mats = base_k_matrices(5, 1)
    assert len(mats) == 5
    W = mats[2]
    np.testing.assert_allclose([W[4, 3], W[3, 4], W[4, 4], W[3, 3]], [0.8, 0.8, 0.2, 0.2])


def test_random_matching_reproducible_and_valid():
    a, b = random_matching(9, seed=3), random_matching(9, seed=3)
    c = random_matching(9, seed=4)
    assert a.period is None and a.one_peer
    for t in range(5):
        W = a.graph_at(t).weights
        assert np.array_equal(W, b.graph_at(t).weights)
        np.testing.assert_allclose(W, W.T)
        np.testing.assert_allclose(W.sum(1), 1.0)
        assert a.graph_at(t).degree.max() <= 1 and a.graph_at(t).num_edges == 4
    assert any(not np.array_equal(a.graph_at(t).weights, c.graph_at(t).weights) for t in range(5))
