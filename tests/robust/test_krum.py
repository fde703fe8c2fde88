"""Krum per neighbourhood: a hand case, and Blanchard et al. transcribed, on random graphs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.robust import krum, krum_pairs
from tests.robust import reference as ref
from tests.robust.reference import random_case


def test_krum_by_hand():
    # node 0: own 0, neighbours 1, 2, 10; b = 0 scores the n - 2 = 2 closest:
    # 0 -> 1 + 4 = 5, 1 -> 1 + 1 = 2, 2 -> 1 + 4 = 5, 10 -> 64 + 81 = 145
    own = jnp.zeros((2, 1))
    msgs = jnp.array([[1.0], [2.0], [10.0]])
    dst = jnp.array([0, 0, 0])
    pairs = krum_pairs(dst, 2)
    assert pairs.first.shape == (3 * 4,)  # 4 candidates of node 0, 1 of node 1: 4·3 + 0
    got = krum(own, msgs, dst, pairs, b=0)
    np.testing.assert_allclose(got[:, 0], [1.0, 0.0])
    # Multi-Krum m = 2: 1 and the tie 0 / 2 broken towards the own message
    np.testing.assert_allclose(krum(own, msgs, dst, pairs, b=0, m=2)[0, 0], 0.5)
    # dropping the message 1 leaves {0, 2, 10}: 0 -> 4, 2 -> 4 (tie -> own), 10 -> 64
    got = krum(own, msgs, dst, pairs, b=0, delivered=jnp.array([False, True, True]))
    np.testing.assert_allclose(got[0, 0], 0.0)


@pytest.mark.parametrize(("seed", "b", "m"), [(0, 1, 1), (1, 1, 2), (2, 0, 1), (3, 2, 3)])
def test_krum_matches_blanchard_per_neighbourhood(seed, b, m):
    _, dst, _, _, X, M, delivered = random_case(seed, n=10, p=0.6, drop=0.1)
    pairs = krum_pairs(dst, 10, size=None)
    run = jax.jit(krum, static_argnames=("b", "m", "chunk"))
    got = run(X, M, dst, pairs, b=b, m=m, delivered=delivered, chunk=64)
    np.testing.assert_allclose(np.asarray(got), ref.krum(X, dst, M, delivered, b, m), atol=1e-5)


def test_krum_pairs_padding_and_errors():
    pairs = krum_pairs(np.array([0, 1]), 2, size=5)  # one pair each way per node: 4 + 1 pad
    assert pairs.valid.tolist() == [True] * 4 + [False]
    assert sorted(zip(pairs.first[:4].tolist(), pairs.second[:4].tolist(), strict=True)) == [
        (0, 2),
        (1, 3),
        (2, 0),
        (3, 1),
    ]
    with pytest.raises(ValueError, match="4 pairs > size 3"):
        krum_pairs(np.array([0, 1]), 2, size=3)
    with pytest.raises(ValueError, match=r"dst must lie in \[0, 2\)"):
        krum_pairs(np.array([0, 2]), 2)
