"""Gradient tracking: exact consensus, the tracking invariant, DIGing step by step."""

from __future__ import annotations

import numpy as np
import optax

from dfl.algorithms.dsgd import dsgd
from dfl.algorithms.gradient_tracking import gradient_tracking
from tests.algorithms.quadratic import lazy_ring, local_of, ring_mh, run, simulate, targets

ETA = 0.1


def test_exact_consensus_where_dsgd_has_a_bias():
    n = 8
    W, b = ring_mh(n), targets(n)
    gt = run(gradient_tracking(local_of(optax.sgd(ETA))), b, W, 300)[-1]
    plain = run(dsgd(local_of(optax.sgd(ETA))), b, W, 300)[-1]
    np.testing.assert_allclose(gt, np.repeat(b.mean(0, keepdims=True), n, 0), atol=1e-5)
    assert np.abs(plain - b.mean(0)).max() > 0.05  # D-SGD's O(η) heterogeneity bias


def test_matches_diging_step_by_step():
    """x⁺ = Wx − ηy, y⁺ = Wy + ∇f(x⁺) − ∇f(x), y⁰ = ∇f(x⁰) (Nedić et al. 2017)."""
    n = 6
    W, b, x0 = ring_mh(n), targets(n), targets(n, seed=1)
    ours = run(gradient_tracking(local_of(optax.sgd(ETA))), b, W, 10, x0=x0)
    x, y = x0.copy(), x0 - b
    for t in range(10):
        x_new = W @ x - ETA * y
        y = W @ y + (x_new - b) - (x - b)
        x = x_new
        np.testing.assert_allclose(ours[t + 1], x, rtol=1e-5, atol=1e-6)


def test_tracker_sum_equals_gradient_sum():
    """Σ_i y_i = Σ_i g_i(x_i) every round (doubly stochastic W), before convergence."""
    n = 8
    b, x0 = targets(n), targets(n, seed=2) * 3
    _, state = simulate(gradient_tracking(local_of(optax.sgd(ETA))), b, ring_mh(n), 4, x0=x0)
    np.testing.assert_allclose(
        state.tracker["x"].sum(0), state.prev_grad["x"].sum(0), rtol=1e-5, atol=1e-5
    )
    assert np.abs(state.tracker["x"] - state.prev_grad["x"]).max() > 1e-2  # not trivially


def test_exact_consensus_on_a_time_varying_graph():
    n = 8
    Ws, b = np.stack([lazy_ring(n, 1), lazy_ring(n, 3)]), targets(n)
    xs = run(gradient_tracking(local_of(optax.sgd(ETA))), b, Ws, 300)
    np.testing.assert_allclose(xs[-1], np.repeat(b.mean(0, keepdims=True), n, 0), atol=1e-5)
