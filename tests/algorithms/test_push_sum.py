"""Stochastic Gradient Push on directed graphs with column-stochastic W."""

from __future__ import annotations

import numpy as np
import optax
import pytest

from dfl.algorithms.dsgd import dsgd
from dfl.algorithms.push_sum import push_sum
from tests.algorithms.quadratic import (
    atc_fixed_point,
    local_of,
    push_sum_fixed_point,
    random_directed,
    random_row_stochastic,
    run,
    simulate,
    targets,
)

N = 8


def directed_exponential_by_hand() -> np.ndarray:
    """Node i keeps a quarter and pushes a quarter to each of i + 1, i + 2, i + 4 (mod 8)."""
    W = np.zeros((N, N))
    for i in range(N):
        for hop in (0, 1, 2, 4):
            W[(i + hop) % N, i] = 1 / 4
    return W


def deviation(x: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(x - b.mean(0)).max())


def test_debiased_average_is_exact_and_nodes_are_within_o_eta():
    W, b = directed_exponential_by_hand(), targets(N)
    np.testing.assert_allclose(W.sum(0), 1)
    assert not np.allclose(W, W.T)  # directed
    devs = {}
    for eta in (0.2, 0.05):
        z = run(push_sum(local_of(optax.sgd(eta))), b, W, 600)[-1]
        np.testing.assert_allclose(z.mean(0), b.mean(0), atol=1e-6)
        np.testing.assert_allclose(z, push_sum_fixed_point(W, b, eta), atol=1e-6)
        devs[eta] = deviation(z, b)
    # O(η): dividing η by 4 divides the nodes' distance from mean(b) by ~4.
    assert devs[0.2] / devs[0.05] == pytest.approx(4, rel=0.1)
    assert devs[0.05] < 0.05 * np.abs(b - b.mean(0)).max() * 4


def test_decaying_step_reaches_the_optimum_at_every_node():
    W, b = directed_exponential_by_hand(), targets(N)
    constant = run(push_sum(local_of(optax.sgd(0.05))), b, W, 3000)[-1]
    decaying = run(push_sum(local_of(optax.sgd(lambda t: 0.5 / (1 + t / 10)))), b, W, 3000)[-1]
    assert deviation(decaying, b) < 2e-3
    assert deviation(decaying, b) < deviation(constant, b) / 20


def test_weights_debias_an_unbalanced_directed_graph():
    """Rows of W do not sum to 1: the weights move and only x / w is unbiased."""
    W, b = random_directed(N), targets(N)
    assert not np.allclose(W.sum(1), 1)
    eta = 0.1
    xs, state = simulate(push_sum(local_of(optax.sgd(eta))), b, W, 800)
    w = np.asarray(state.weight)
    np.testing.assert_allclose(w.sum(), N, rtol=1e-5)  # mass is conserved
    assert np.abs(w - 1).max() > 0.1
    np.testing.assert_allclose(xs[-1], push_sum_fixed_point(W, b, eta), atol=1e-5)
    np.testing.assert_allclose(xs[-1].mean(0), b.mean(0), atol=1e-5)
    numerators = np.asarray(state.params["x"])
    assert np.abs(numerators.mean(0) - b.mean(0)).max() > 1e-2  # x alone is biased
    # D-SGD with this W keeps the sum but not consensus: as η → 0 its nodes stay apart
    # (x_i → π_i · mean(b)) while push-sum's z_i all approach mean(b).
    biased = run(dsgd(local_of(optax.sgd(eta))), b, W, 800)[-1]
    np.testing.assert_allclose(biased, atc_fixed_point(W, b, eta), atol=1e-5)
    assert deviation(atc_fixed_point(W, b, 1e-3), b) > 0.1
    assert deviation(push_sum_fixed_point(W, b, 1e-3), b) < 1e-2


def test_time_varying_directed_graphs():
    Ws, b = np.stack([directed_exponential_by_hand(), random_directed(N, seed=3)]), targets(N)
    z = run(push_sum(local_of(optax.sgd(lambda t: 0.5 / (1 + t / 10)))), b, Ws, 2000)[-1]
    assert deviation(z, b) < 5e-3


def test_row_stochastic_w_is_refused():
    alg = push_sum(local_of(optax.sgd(0.1)))
    with pytest.raises(ValueError, match="column sums"):
        alg.requirements.check(random_row_stochastic(N), time_varying=True, algorithm=alg.name)
