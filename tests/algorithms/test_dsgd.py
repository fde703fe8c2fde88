"""D-SGD on quadratics against its closed-form fixed points and rates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dfl.algorithms import dsgd, fedavg
from dfl.config import MixingConfig, TopologyConfig
from dfl.gossip import DenseMixer
from dfl.sim.round import make_round
from dfl.topology import build_schedule
from tests.algorithms.quadratic import local_of, ring_mh, run, targets

ETA = 0.1


def second_eigenvalue(W: np.ndarray) -> float:
    return float(np.sort(np.abs(np.linalg.eigvalsh(W)))[-2])


def disagreement(x: np.ndarray) -> np.ndarray:
    """Norm of the part of each round's error orthogonal to consensus."""
    return np.linalg.norm(x - x.mean(axis=-2, keepdims=True), axis=(-2, -1))


@pytest.mark.parametrize("local_steps", [1, 3])
def test_atc_reaches_closed_form_fixed_point(local_steps):
    n = 8
    W, b = ring_mh(n), targets(n)
    xs = run(dsgd(local_of(optax.sgd(ETA)), order="atc"), b, W, 400, local_steps=local_steps)
    # One local step maps x ↦ b + c(x − b) with c = (1 − η)^K, so x* = (1 − c)(I − cW)⁻¹ W b.
    c = (1 - ETA) ** local_steps
    x_star = (1 - c) * np.linalg.solve(np.eye(n) - c * W, W @ b)
    if local_steps == 1:
        np.testing.assert_allclose(x_star, ETA * np.linalg.solve(np.eye(n) - (1 - ETA) * W, W @ b))
    np.testing.assert_allclose(xs[-1], x_star, atol=1e-5)
    # Without gossip every node would sit at its own b_i: the fixed point really needs W.
    assert np.abs(x_star - b).max() > 0.1


def test_cta_reaches_closed_form_fixed_point():
    n = 8
    W, b = ring_mh(n), targets(n)
    xs = run(dsgd(local_of(optax.sgd(ETA)), order="cta"), b, W, 400)
    # x = Wx − η(x − b)  ⇒  ((1 + η)I − W) x* = η b.
    x_star = ETA * np.linalg.solve((1 + ETA) * np.eye(n) - W, b)
    np.testing.assert_allclose(xs[-1], x_star, atol=1e-5)
    assert np.abs(x_star - b).max() > 0.1


def test_orders_differ_and_average_is_mean_target():
    n = 8
    W, b = ring_mh(n), targets(n)
    atc = run(dsgd(local_of(optax.sgd(ETA)), order="atc"), b, W, 400)[-1]
    cta = run(dsgd(local_of(optax.sgd(ETA)), order="cta"), b, W, 400)[-1]
    assert np.abs(atc - cta).max() > 1e-3
    # Doubly stochastic W: the node average of both fixed points is mean(b).
    np.testing.assert_allclose(atc.mean(0), b.mean(0), atol=1e-5)
    np.testing.assert_allclose(cta.mean(0), b.mean(0), atol=1e-5)


@pytest.mark.parametrize("order", ["atc", "cta"])
def test_disagreement_decays_at_lambda2_rate(order):
    n = 8
    W, b = ring_mh(n), targets(n)
    x0 = targets(n, seed=1) * 5
    xs = run(dsgd(local_of(optax.sgd(ETA)), order=order), b, W, 60, x0=x0)
    if order == "atc":
        x_star = ETA * np.linalg.solve(np.eye(n) - (1 - ETA) * W, W @ b)
        rate = (1 - ETA) * second_eigenvalue(W)  # e ↦ (1 − η) W e
    else:
        x_star = ETA * np.linalg.solve((1 + ETA) * np.eye(n) - W, b)
        lam = np.sort(np.linalg.eigvalsh(W))[:-1]  # all but λ₁ = 1
        rate = float(np.max(np.abs(lam - ETA)))  # e ↦ (W − ηI) e
    d = disagreement(xs - x_star)
    measured = (d[25] / d[10]) ** (1 / 15)  # early: float32 error stays far below d
    assert measured == pytest.approx(rate, rel=1e-3)
    assert abs(measured - (1 - ETA)) > 0.05  # what W = I would give


def test_fedavg_equals_centralized_average():
    n, K = 6, 3
    b = targets(n)
    J = np.full((n, n), 1 / n)
    x0 = targets(n, seed=2)
    xs = run(fedavg(local_of(optax.sgd(ETA))), b, J, 5, local_steps=K, x0=x0)
    x = x0.copy()
    for t in range(5):
        for _ in range(K):
            x = x - ETA * (x - b)
        x = np.repeat(x.mean(0, keepdims=True), n, axis=0)
        np.testing.assert_allclose(xs[t + 1], x, rtol=1e-5, atol=1e-6)


def test_bad_order_is_refused():
    with pytest.raises(ValueError, match="order"):
        dsgd(local_of(optax.sgd(ETA)), order="ac")


def test_a_delivery_mask_renormalises_inside_the_jitted_round():
    """Dropping j → i in the jitted round is D-SGD with row i renormalised (hand W)."""
    n = 4
    W = ring_mh(n)
    schedule = build_schedule(TopologyConfig(name="ring", n=n), MixingConfig(), seed=0)
    mixer = DenseMixer(schedule)
    np.testing.assert_allclose(np.asarray(mixer.data(0)["W"]), W, atol=1e-7)
    delivered = np.ones((n, n), bool)
    delivered[0, 3] = delivered[2, 1] = False  # 3's message to 0 and 1's to 2 are lost
    W_lost = W.copy()
    W_lost[0] = [2 / 3, 1 / 3, 0, 0]
    W_lost[2] = [0, 0, 2 / 3, 1 / 3]
    alg = dsgd(local_of(optax.sgd(ETA)))
    b, x0 = targets(n), targets(n, seed=5)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(0), jnp.arange(n))
    state = jax.vmap(alg.init)({"x": jnp.asarray(x0, jnp.float32)}, keys)
    round_fn = jax.jit(make_round(alg, mixer))
    batches = jnp.asarray(b, jnp.float32)[:, None]
    masked, _ = round_fn(state, batches, mixer.data(0), jax.random.key(1), jnp.asarray(delivered))
    # One ATC round on f_i = ½||x − b_i||²: x⁺ = W_lost ((1 − η) x0 + η b).
    expected = W_lost @ ((1 - ETA) * x0 + ETA * b)
    np.testing.assert_allclose(np.asarray(masked.params["x"]), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="must WAIT"):
        make_round(fedavg(local_of(optax.sgd(ETA))), mixer)(
            state, batches, mixer.data(0), jax.random.key(1), jnp.asarray(delivered)
        )
