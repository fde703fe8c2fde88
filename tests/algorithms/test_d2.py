"""D² / exact diffusion: exact consensus, the paper step by step, its W requirements."""

from __future__ import annotations

import numpy as np
import optax
import pytest

from dfl.algorithms.base import MixingRequirements
from dfl.algorithms.d2 import d2
from dfl.algorithms.dsgd import dsgd
from tests.algorithms.quadratic import (
    directed_exponential,
    lazy_ring,
    local_of,
    ring_mh,
    run,
    targets,
)

ETA = 0.1
N = 8


def oscillating_ring(n: int, self_weight: float = 0.1) -> np.ndarray:
    """Symmetric doubly stochastic, λ_min = 2·self_weight − 1 < −1/3."""
    return self_weight * np.eye(n) + (1 - self_weight) / 2 * (
        np.roll(np.eye(n), 1, 0) + np.roll(np.eye(n), -1, 0)
    )


def test_exact_consensus_where_dsgd_has_a_bias():
    W, b = lazy_ring(N), targets(N)
    ours = run(d2(local_of(optax.sgd(ETA))), b, W, 400)[-1]
    np.testing.assert_allclose(ours, np.repeat(b.mean(0, keepdims=True), N, 0), atol=1e-5)
    plain = run(dsgd(local_of(optax.sgd(ETA))), b, W, 400)[-1]
    assert np.abs(plain - b.mean(0)).max() > 0.05


def test_matches_the_paper_step_by_step():
    """x¹ = W(x⁰ − η∇f(x⁰)); x^{t+1} = W(2xᵗ − x^{t−1} − η∇f(xᵗ) + η∇f(x^{t−1}))."""
    W, b, x0 = ring_mh(N), targets(N), targets(N, seed=1)
    ours = run(d2(local_of(optax.sgd(ETA))), b, W, 8, x0=x0)
    prev, x = x0, W @ (x0 - ETA * (x0 - b))
    np.testing.assert_allclose(ours[1], x, rtol=1e-5, atol=1e-6)
    for t in range(1, 8):
        prev, x = x, W @ (2 * x - prev - ETA * (x - b) + ETA * (prev - b))
        np.testing.assert_allclose(ours[t + 1], x, rtol=1e-5, atol=1e-5)


def test_smallest_eigenvalue_requirement():
    req = d2(local_of(optax.sgd(ETA))).requirements
    assert req.min_eigenvalue == pytest.approx(-1 / 3)
    req.check(ring_mh(N), time_varying=False, algorithm="d2")  # λ_min = −1/3 exactly
    req.check(lazy_ring(N), time_varying=False, algorithm="d2")
    with pytest.raises(ValueError, match=r"eigenvalues of W ≥ -0.333333 \(smallest is -0.8"):
        req.check(oscillating_ring(N), time_varying=False, algorithm="d2")
    # The general check: no bound set, no eigenvalue problem.
    MixingRequirements(stochastic="doubly").check(
        oscillating_ring(N), time_varying=False, algorithm="x"
    )


def test_refused_w_really_diverges():
    W, b = oscillating_ring(N), targets(N)
    xs = run(d2(local_of(optax.sgd(ETA))), b, W, 60)
    assert np.abs(xs[-1]).max() > 1e3 * np.abs(b).max()


@pytest.mark.parametrize(
    ("W", "time_varying", "match"),
    [
        (directed_exponential(N), False, "symmetric"),
        (lazy_ring(N), True, "static"),
    ],
)
def test_directed_or_time_varying_w_is_refused(W, time_varying, match):
    alg = d2(local_of(optax.sgd(ETA)))
    with pytest.raises(ValueError, match=match):
        alg.requirements.check(W, time_varying=time_varying, algorithm=alg.name)
