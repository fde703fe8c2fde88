"""Contraction ω and variance factors of every compressor, by Monte Carlo (fixed seeds).

For a random operator the estimate of E||Q(x) − x||²/||x||² over T draws has a
standard error SE = std/√T; a documented bound passes when the estimate is below
it plus 4 SE, an exact formula when it lies within 4 SE. Unbiasedness: every
coordinate of the mean of Q(x) − x lies within 5 SE of zero.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.compression import low_rank, qsgd, qsgd_variance, rand_k, sign, top_k

D, DRAWS = 64, 3000


def vector(d: int = D, seed: int = 0) -> jnp.ndarray:
    """A vector with a spread of magnitudes (heavy-tailed, as updates are)."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_t(3, size=d), jnp.float32)


def draws(comp, x, n: int = DRAWS):
    """``n`` independent ``Q(x)`` (one fresh node key each), shape ``[n, *x.shape]``."""

    @jax.jit
    def sample(keys):
        def one(key):
            encoded, _ = comp.compress(x, comp.init(x, key))
            return comp.decompress(encoded)

        return jax.vmap(one)(keys)

    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(11), jnp.arange(n))
    return np.asarray(sample(keys), np.float64)


def relative_error(q: np.ndarray, x) -> tuple[float, float]:
    """Estimate and SE of E||Q(x) − x||²/||x||²."""
    x = np.asarray(x, np.float64)
    err = np.sum((q - x) ** 2, axis=tuple(range(1, q.ndim))) / np.sum(x**2)
    return float(err.mean()), float(err.std() / math.sqrt(err.size))


def assert_unbiased(q: np.ndarray, x) -> None:
    diff = q - np.asarray(x, np.float64)
    se = diff.std(axis=0) / math.sqrt(diff.shape[0])
    assert np.all(np.abs(diff.mean(axis=0)) <= 5 * se + 1e-7)


@pytest.mark.parametrize("k", [1, 8, 32])
def test_top_k_contraction_and_exact_selection(k):
    x = vector()
    encoded, _ = top_k(k=k).compress(x, ())
    q = np.asarray(top_k(k=k).decompress(encoded))
    kept = np.argsort(-np.abs(np.asarray(x)))[:k]
    np.testing.assert_array_equal(np.flatnonzero(q), np.sort(kept))
    np.testing.assert_array_equal(q[kept], np.asarray(x)[kept])
    err, _ = relative_error(q[None], x)
    assert err <= 1 - k / D
    assert err < 0.9 * (1 - k / D)  # heavy tails: top-k beats its worst case


def test_rand_k_unbiased_variance_is_d_over_k_minus_one():
    k, x = 8, vector()
    q = draws(rand_k(k=k, unbiased=True), x)
    assert_unbiased(q, x)
    est, se = relative_error(q, x)
    assert abs(est - (D / k - 1)) <= 4 * se
    # A wrong factor (e.g. forgetting the d/k scale) would be far off.
    assert abs(est - (1 - k / D)) > 20 * se


def test_rand_k_contractive_omega_is_k_over_d():
    k, x = 8, vector()
    q = draws(rand_k(k=k), x)
    est, se = relative_error(q, x)
    assert abs(est - (1 - k / D)) <= 4 * se
    nonzero = (q != 0).sum(axis=1)
    assert np.all(nonzero <= k)
    # Every index is chosen with probability k/d.
    freq = (q != 0).mean(axis=0)
    assert np.all(np.abs(freq - k / D) <= 5 * math.sqrt(k / D * (1 - k / D) / DRAWS))


@pytest.mark.parametrize(("levels", "bucket"), [(1, None), (4, None), (2, 16)])
def test_qsgd_unbiased_and_variance_bound(levels, bucket):
    x = vector()
    q = draws(qsgd(levels=levels, bucket_size=bucket, unbiased=True), x)
    assert_unbiased(q, x)
    est, se = relative_error(q, x)
    b = D if bucket is None else bucket
    assert est <= qsgd_variance(b, levels) + 4 * se
    # Every decoded entry is a multiple of its bucket norm / s.
    norms = np.linalg.norm(np.asarray(x).reshape(-1, b), axis=1).repeat(b)
    steps = q[:5] / norms * levels
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)


@pytest.mark.parametrize("levels", [1, 4])
def test_qsgd_rescaled_is_a_contraction(levels):
    x = vector()
    q = draws(qsgd(levels=levels), x)
    est, se = relative_error(q, x)
    omega = 1 / (1 + qsgd_variance(D, levels))
    assert est <= 1 - omega + 4 * se


def test_qsgd_level_dtypes():
    x = vector()
    for levels, dtype in [(127, np.int8), (128, np.int16)]:
        encoded, _ = qsgd(levels=levels).compress(x, qsgd().init(x, jax.random.key(0)))
        assert encoded.levels.dtype == dtype
    with pytest.raises(ValueError, match="32767"):
        qsgd(levels=40000)


def test_sign_error_is_exact_and_one_bit_per_entry():
    for x in (vector(), jnp.ones(D), jnp.zeros(D).at[3].set(2.0), vector(13)):
        x = jnp.asarray(x, jnp.float32)
        encoded, _ = sign().compress(x, ())
        q = np.asarray(sign().decompress(encoded), np.float64)
        xn = np.asarray(x, np.float64)
        expected = np.sum(xn**2) - np.sum(np.abs(xn)) ** 2 / xn.size
        np.testing.assert_allclose(np.sum((q - xn) ** 2), expected, rtol=1e-5, atol=1e-6)
        assert expected <= (1 - 1 / xn.size) * np.sum(xn**2) + 1e-9  # ω ≥ 1/d
        assert encoded.bits.dtype == jnp.uint8 and encoded.bits.size == math.ceil(xn.size / 8)


def matrix(m: int = 24, n: int = 16, seed: int = 0) -> jnp.ndarray:
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(m, n)), jnp.float32)


@pytest.mark.parametrize("rank", [1, 3])
def test_low_rank_fresh_start_omega_is_r_over_n(rank):
    m = matrix()
    q = draws(low_rank(rank=rank, warm_start=False), m, n=1000)
    est, se = relative_error(q, m)
    assert est <= 1 - rank / m.shape[1] + 4 * se
    # Deterministic: a projection never increases the energy.
    errs = np.sum((q - np.asarray(m)) ** 2, axis=(1, 2)) / np.sum(np.asarray(m) ** 2)
    assert errs.max() <= 1 + 1e-5


def test_low_rank_warm_start_reaches_eckart_young():
    """Repeated power steps on a fixed M converge to the best rank-r error."""
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(24, 16)))
    v, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    spectrum = np.array([10.0, 6.0] + [1.0] * 14)
    m = jnp.asarray(u @ np.diag(spectrum) @ v.T, jnp.float32)
    comp = low_rank(rank=2)

    @jax.jit
    def repeat(state):
        def body(state, _):
            encoded, state = comp.compress(m, state)
            return state, comp.decompress(encoded)

        return jax.lax.scan(body, state, None, length=30)[1]

    q = np.asarray(repeat(comp.init(m, jax.random.key(0))), np.float64)
    errors = np.sum((q - np.asarray(m)) ** 2, axis=(1, 2))
    best = float(np.sum(spectrum[2:] ** 2))
    assert errors[-1] == pytest.approx(best, rel=1e-3)
    assert errors[0] > errors[-1]


def test_low_rank_sends_vectors_and_small_matrices_dense():
    x = {"b": vector(8), "tiny": matrix(2, 2), "w": matrix()}
    comp = low_rank(rank=2)
    encoded, _ = comp.compress(x, comp.init(x, jax.random.key(0)))
    y = comp.decompress(encoded)
    np.testing.assert_array_equal(y["b"], x["b"])
    np.testing.assert_array_equal(y["tiny"], x["tiny"])
    assert encoded["w"].p.shape == (24, 2) and encoded["w"].r.shape == (16, 2)
