"""BRIDGE trimmed mean and median: b = 0 is uniform averaging; both match the transcription."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.robust import check_in_degree, gather, in_degree, median, required_in_degree, trimmed_mean
from dfl.topology.mixing import uniform
from tests.robust import reference as ref
from tests.robust.reference import random_case, random_graph


@pytest.mark.parametrize("seed", range(3))
def test_trim_zero_is_uniform_averaging_over_the_closed_neighbourhood(seed):
    _, dst, src, _, X, _, _ = random_case(seed, n=10)
    topo = random_graph(seed, 10, 0.4)
    W = uniform(topo)  # 1 / (deg + 1) on the closed neighbourhood
    A = topo.adjacency
    np.testing.assert_allclose(W[A], np.repeat(1 / (A.sum(1) + 1), A.sum(1)))
    tree = {"a": jnp.asarray(X), "b": jnp.asarray(X[:, :3, None])}
    got = trimmed_mean(tree, gather(tree, src), dst, b=0)
    for g, x in zip(jax.tree.leaves(got), jax.tree.leaves(tree), strict=True):
        want = np.tensordot(W, np.asarray(x, np.float64), axes=1)
        np.testing.assert_allclose(np.asarray(g), want, atol=1e-5)


@pytest.mark.parametrize(("seed", "b"), [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3)])
def test_trimmed_mean_matches_bridge_t(seed, b):
    _, dst, _, _, X, M, delivered = random_case(seed, n=12, p=0.6, drop=0.15)
    got = jax.jit(trimmed_mean, static_argnames="b")(X, M, dst, b=b, delivered=delivered)
    np.testing.assert_allclose(np.asarray(got), ref.bridge_t(X, dst, M, delivered, b), atol=1e-5)


@pytest.mark.parametrize(("seed", "b"), [(0, 0), (1, 1), (2, 2), (3, 4)])
def test_closed_neighbourhood_trimming_matches_he_et_al_baseline(seed, b):
    _, dst, _, _, X, M, delivered = random_case(seed, n=12, p=0.5, drop=0.15)
    got = trimmed_mean(X, M, dst, b=b, delivered=delivered, keep_own=False)
    np.testing.assert_allclose(np.asarray(got), ref.he_tm(X, dst, M, delivered, b), atol=1e-5)
    if b == 0:  # both variants are the uniform average at b = 0
        same = trimmed_mean(X, M, dst, b=0, delivered=delivered)
        np.testing.assert_allclose(np.asarray(got), np.asarray(same), atol=1e-6)


def test_trimmed_mean_and_median_by_hand():
    # node 0: own 0, neighbours 1, 2, 3, 100 (one outlier); b = 1 drops 1 and 100
    own = jnp.zeros((2, 1))
    msgs = jnp.array([[1.0], [2.0], [3.0], [100.0]])
    dst = jnp.array([0, 0, 0, 0])
    assert float(trimmed_mean(own, msgs, dst, b=1)[0, 0]) == pytest.approx((0 + 2 + 3) / 3)
    assert float(median(own, msgs, dst)[0, 0]) == 2.0  # med{0, 1, 2, 3, 100}
    # over the closed neighbourhood {0, 1, 2, 3, 100}, b = 1 drops 0 and 100
    got = trimmed_mean(own, msgs, dst, b=1, keep_own=False)
    assert float(got[0, 0]) == pytest.approx(2.0)
    # even closed neighbourhood: med{0, 1, 2, 100} = 1.5; node 1 hears nobody
    got = median(own, msgs, dst, delivered=jnp.array([True, True, False, True]))
    np.testing.assert_allclose(got[:, 0], [1.5, 0.0])


@pytest.mark.parametrize("seed", range(4))
def test_median_matches_bridge_m(seed):
    _, dst, _, _, X, M, delivered = random_case(seed, n=12, p=0.5, drop=0.2)
    got = jax.jit(median)(X, M, dst, delivered=delivered)
    np.testing.assert_allclose(np.asarray(got), ref.bridge_m(X, dst, M, delivered), atol=1e-6)


def test_degree_check_names_the_node_and_its_degree():
    dst = jnp.array([0, 0, 0, 1, 1, 2, 2, 2])  # in-degrees 3, 2, 3
    deg = in_degree(dst, 3)
    np.testing.assert_array_equal(deg, [3, 2, 3])
    assert required_in_degree("trimmed_mean", 1) == 3
    assert required_in_degree("krum", 1) == 4
    assert check_in_degree(deg, rule="median", b=1, nodes=[0, 2]) == []
    with pytest.raises(ValueError, match=r"needs in-degree >= 3 .* node 1 has in-degree 2"):
        check_in_degree(deg, rule="trimmed_mean", b=1)
    with pytest.warns(UserWarning, match="unsafe: krum with b=1"):
        assert check_in_degree(deg, rule="krum", b=1, unsafe=True) == [0, 1, 2]
    with pytest.raises(ValueError, match="unknown robust rule 'mean'"):
        required_in_degree("mean", 1)
    with pytest.raises(ValueError, match="trim b must be >= 0"):
        trimmed_mean(jnp.zeros((3, 1)), jnp.zeros((8, 1)), dst, b=-1)
