"""Each attack's message matches its definition on a tiny case."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from dfl.robust import (
    alie,
    alie_z,
    dissensus,
    dissensus_view,
    edges_of,
    flip_labels,
    gather,
    gaussian_noise,
    inject,
    ipm,
    received_stats,
    reverse_edges,
    sign_flip,
)
from dfl.topology.mixing import uniform
from dfl.topology.static import complete


def test_sign_flip_and_inject_touch_only_the_attackers_edges():
    honest = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])}
    src = jnp.array([0, 1, 2])
    out = inject(honest, sign_flip(honest), src, jnp.array([False, True, False]))
    np.testing.assert_array_equal(out["w"], [[1.0, 2.0], [-3.0, -4.0], [5.0, 6.0]])
    np.testing.assert_array_equal(sign_flip(honest, scale=2.0)["w"][0], [-2.0, -4.0])


def test_gaussian_noise_is_the_message_plus_sigma_times_a_standard_normal():
    honest = {"a": jnp.ones((3, 2)), "b": jnp.zeros((3,))}
    key = jax.random.key(7)
    out = gaussian_noise(honest, key, sigma=0.5)
    ka, kb = jax.random.split(key, 2)
    np.testing.assert_allclose(out["a"], 1 + 0.5 * jax.random.normal(ka, (3, 2)))
    np.testing.assert_allclose(out["b"], 0.5 * jax.random.normal(kb, (3,)))
    big = gaussian_noise(jnp.zeros((20000,)), key, sigma=0.5)
    assert float(jnp.std(big)) == pytest.approx(0.5, rel=0.03)


def test_received_stats_alie_and_ipm_by_hand():
    # node 0 received [1, 3] and [3, 5] last round (and a colluder's [100, 100], masked out)
    prev = jnp.array([[1.0, 3.0], [3.0, 5.0], [100.0, 100.0], [7.0, 7.0]])
    dst = jnp.array([0, 0, 0, 1])
    seen = received_stats(prev, dst, 2, mask=jnp.array([True, True, False, True]))
    np.testing.assert_allclose(seen.mean, [[2.0, 4.0], [7.0, 7.0]])
    np.testing.assert_allclose(seen.std, [[np.sqrt(2), np.sqrt(2)], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_array_equal(seen.count, [2, 1])
    want = [2 - 1.5 * np.sqrt(2), 4 - 1.5 * np.sqrt(2)]
    np.testing.assert_allclose(alie(seen, z=1.5)[0], want, rtol=1e-5)
    np.testing.assert_allclose(ipm(seen, epsilon=0.1)[0], [-0.2, -0.4], rtol=1e-6)


def test_alie_z_is_baruchs_formula():
    assert alie_z(10, 2) == pytest.approx(0.0, abs=1e-12)  # s = 4, (8 - 4)/8 = 1/2
    # n = 50, f = 24: s = 26 - 24 = 2, Φ⁻¹(24/26)
    assert alie_z(50, 24) == pytest.approx(norm.ppf(24 / 26))
    assert alie_z(25, 2) == pytest.approx(norm.ppf(12 / 23))
    with pytest.raises(ValueError, match="ALIE needs 0 < f < n"):
        alie_z(5, 0)
    with pytest.raises(ValueError, match="ALIE z undefined"):
        alie_z(3, 2)  # s = 0: (1 - 0)/1 = 1


def test_dissensus_cancels_the_honest_pull_on_a_complete_graph():
    # complete graph on 3, uniform weights 1/3, node 0 Byzantine; last round x1 = 1, x2 = 3
    W = uniform(complete(3))
    dst, src, weight, _ = edges_of(W)
    byz = jnp.array([True, False, False])
    x_prev = jnp.array([[100.0], [1.0], [3.0]])
    rev = reverse_edges(dst, src)
    target, pull = dissensus_view(gather(x_prev, src), dst, src, weight, byz, rev)
    e01 = int(np.flatnonzero((src == 0) & (dst == 1))[0])
    e02 = int(np.flatnonzero((src == 0) & (dst == 2))[0])
    # v_1 = W_12 (x2 - x1) / δ_1 = (1/3)(3 - 1)/(1/3) = 2 ; v_2 = (1/3)(1 - 3)/(1/3) = -2
    np.testing.assert_allclose([target[e01, 0], pull[e01, 0]], [1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose([target[e02, 0], pull[e02, 0]], [3.0, -2.0], rtol=1e-6)
    msg = dissensus(target, pull, epsilon=1.0)
    # ε = 1: node 1's gossip (x1 + x2 + m)/3 stays at x1 — the honest pull is cancelled
    assert float((1.0 + 3.0 + msg[e01, 0]) / 3) == pytest.approx(1.0)
    assert float((1.0 + 3.0 + msg[e02, 0]) / 3) == pytest.approx(3.0)
    # ε = 2 reverses it
    assert float(dissensus(target, pull, epsilon=2.0)[e01, 0]) == pytest.approx(1.0 - 4.0)


def test_reverse_edges_and_missing_reverse():
    rev = reverse_edges(np.array([1, 0, 2]), np.array([0, 1, 1]))  # 0→1, 1→0, 1→2
    np.testing.assert_array_equal(rev, [1, 0, -1])


def test_label_flipping():
    x = jnp.arange(6.0).reshape(3, 2)
    fx, fy = flip_labels(x, jnp.array([0, 3, 9], jnp.int32), num_classes=10)
    np.testing.assert_array_equal(fx, x)
    np.testing.assert_array_equal(fy, [9, 6, 0])
    assert fy.dtype == jnp.int32
    with pytest.raises(ValueError, match="num_classes >= 2"):
        flip_labels(x, jnp.zeros(3, jnp.int32), num_classes=1)
