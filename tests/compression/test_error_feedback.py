"""Error-feedback wrappers and D-SGD with error feedback on quadratics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dfl.algorithms.base import MissingRule
from dfl.algorithms.dsgd import dsgd
from dfl.algorithms.dsgd_ef import dsgd_ef
from dfl.compression import (
    ef21,
    encoded_nbytes,
    error_feedback,
    identity,
    qsgd,
    sign,
    top_k,
)
from dfl.sim.round import wire_bytes
from tests.algorithms.quadratic import local_of, ring_mh, run, targets

ETA = 0.1


def test_error_feedback_sends_everything_but_the_residual():
    rng = np.random.default_rng(0)
    deltas = jnp.asarray(rng.normal(size=(20, 10)), jnp.float32)
    comp = error_feedback(top_k(k=2))

    @jax.jit
    def stream(deltas):
        def body(state, delta):
            encoded, state = comp.compress(delta, state)
            return state, comp.decompress(encoded)

        return jax.lax.scan(body, comp.init(deltas[0], jax.random.key(0)), deltas)

    state, sent = stream(deltas)
    np.testing.assert_allclose(sent.sum(0) + state.residual, deltas.sum(0), atol=1e-5)
    assert np.all(np.count_nonzero(np.asarray(sent), axis=1) <= 2)


def test_ef21_public_copy_catches_up_geometrically():
    """For a fixed x, ||x − x̂_t||² ≤ (1 − ω)^t ||x||² with top-k's ω = k/d."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=12), jnp.float32)
    comp = ef21(top_k(k=3))
    state = comp.init(x, jax.random.key(0))
    bound = float(jnp.sum(x**2))
    for _ in range(6):
        _, state = comp.compress(x, state)
        bound *= 1 - 3 / 12
        assert float(jnp.sum((x - state.public) ** 2)) <= bound + 1e-6
    # After d/k rounds every coordinate was sent once: x̂ = x exactly.
    np.testing.assert_allclose(state.public, x, atol=1e-6)


def lazy(W: np.ndarray, gamma: float) -> np.ndarray:
    return (1 - gamma) * np.eye(len(W)) + gamma * W


def atc_fixed_point(W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x* = η (I − (1 − η) W)⁻¹ W b of ATC D-SGD with one SGD step (see dsgd.py)."""
    return ETA * np.linalg.solve(np.eye(len(W)) - (1 - ETA) * W, W @ b)


@pytest.mark.parametrize("local_steps", [1, 3])
def test_identity_compression_equals_dsgd(local_steps):
    n = 8
    W, b, x0 = ring_mh(n), targets(n), targets(n, seed=3)
    ref = run(dsgd(local_of(optax.sgd(ETA))), b, W, 60, local_steps=local_steps, x0=x0)
    ef = run(
        dsgd_ef(local_of(optax.sgd(ETA)), compressor=identity()),
        b,
        W,
        60,
        local_steps=local_steps,
        x0=x0,
    )
    np.testing.assert_allclose(ef, ref, atol=2e-6)


def test_gamma_is_dsgd_with_the_lazy_matrix():
    n, gamma = 8, 0.5
    W, b, x0 = ring_mh(n), targets(n), targets(n, seed=3)
    ref = run(dsgd(local_of(optax.sgd(ETA))), b, lazy(W, gamma), 60, x0=x0)
    ef = run(dsgd_ef(local_of(optax.sgd(ETA)), compressor=identity(), gamma=gamma), b, W, 60, x0=x0)
    np.testing.assert_allclose(ef, ref, atol=2e-6)


def deepsqueeze_reference(W, b, x0, compress, gamma, rounds):
    """Algorithm 1 of Tang et al. 2019 in numpy, one SGD step of size η per round."""
    x, e = x0.copy(), np.zeros_like(x0)
    for _ in range(rounds):
        half = x - ETA * (x - b)
        v = half + e
        c = np.stack([compress(row) for row in v])
        e = v - c
        x = half + gamma * (W @ c - c)
    return x


def top1(row: np.ndarray) -> np.ndarray:
    out = np.zeros_like(row)
    i = int(np.argmax(np.abs(row)))
    out[i] = row[i]
    return out


def test_matches_numpy_transcription_of_deepsqueeze_step_by_step():
    n = 6
    W, b, x0 = ring_mh(n), targets(n), targets(n, seed=3)
    xs = run(dsgd_ef(local_of(optax.sgd(ETA)), compressor=top_k(k=1), gamma=0.4), b, W, 5, x0=x0)
    for t in range(1, 6):
        want = deepsqueeze_reference(W, b, x0, top1, 0.4, t)
        np.testing.assert_allclose(xs[t], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "compressor", [sign(), qsgd(levels=4), top_k(k=1)], ids=["sign", "qsgd", "top_k"]
)
def test_error_floor_shrinks_with_gamma_and_the_average_is_exact(compressor):
    """DeepSqueeze reaches D-SGD's fixed point (of the lazy W) up to a floor ∝ γ."""
    n = 8
    W, b = ring_mh(n), targets(n)
    floors = {}
    for gamma in (0.05, 0.2):
        xs = run(dsgd_ef(local_of(optax.sgd(ETA)), compressor=compressor, gamma=gamma), b, W, 300)
        x_star = atc_fixed_point(lazy(W, gamma), b)
        floors[gamma] = np.abs(xs[-20:] - x_star).max()
        # Σ_i (Σ_j W_ij D(m_j) − D(m_i)) = 0 for doubly stochastic W: the average is D-SGD's.
        np.testing.assert_allclose(xs[-1].mean(0), x_star.mean(0), atol=1e-4)
    start = np.abs(atc_fixed_point(lazy(W, 0.05), b)).max()  # the runs start at x = 0
    assert floors[0.05] < 0.1 * start
    assert floors[0.05] < 0.6 * floors[0.2]


def test_residual_is_what_was_not_sent_and_wire_bytes():
    n, d = 6, 40
    W = ring_mh(n)
    rng = np.random.default_rng(0)
    b = jnp.asarray(rng.normal(size=(n, 1, d)), jnp.float32)
    algo = dsgd_ef(local_of(optax.sgd(ETA)), compressor=top_k(k=4), gamma=0.5)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(0), jnp.arange(n))
    state = jax.vmap(algo.init)({"x": jnp.zeros((n, d))}, keys)
    residual = np.zeros((n, d))
    for _ in range(3):
        before = np.asarray(state.params["x"])
        state, wire, info = jax.vmap(algo.step)(state, b, keys)
        half = before - ETA * (before - np.asarray(b[:, 0]))
        sent = np.asarray(state.sent["x"])
        assert np.all(np.count_nonzero(sent, axis=1) <= 4)
        residual = half + residual - sent
        np.testing.assert_allclose(state.compressor.residual["x"], residual, atol=1e-5)
        mixed = jax.tree.map(lambda m: jnp.asarray(W, jnp.float32) @ m, state.sent)
        state = jax.vmap(algo.combine)(state, mixed)
    assert info["residual"].shape == (n,) and np.all(np.asarray(info["residual"]) > 0)

    one = jax.tree.map(lambda v: v[0], state)
    nbytes = wire_bytes(algo, one, b[0])
    _, wire, _ = algo.step(one, b[0], jax.random.key(0))
    assert nbytes == encoded_nbytes(wire) == 4 * (4 + 1)  # 4 float32 values + 4 uint8 indices


def test_requirements_and_bad_step():
    algo = dsgd_ef(local_of(optax.sgd(ETA)), compressor=top_k())
    assert algo.requirements.time_varying and algo.requirements.stochastic == "row"
    assert algo.missing_rule == MissingRule.RENORMALIZE
    algo.requirements.check(ring_mh(4), time_varying=True, algorithm=algo.name)
    with pytest.raises(ValueError, match="gamma"):
        dsgd_ef(local_of(optax.sgd(ETA)), compressor=top_k(), gamma=0.0)
