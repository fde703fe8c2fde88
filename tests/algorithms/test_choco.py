"""CHOCO-SGD: D-SGD in the identity limit, Algorithm 2 of the paper step by step."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dfl.algorithms.choco import choco
from dfl.algorithms.dsgd import dsgd
from dfl.compression import top_k
from dfl.compression.base import Compressor, KeyState
from dfl.sim.round import make_round, node_keys
from tests.algorithms.quadratic import (
    DenseTestMixer,
    local_of,
    ring_mh,
    run,
    simulate,
    targets,
)

ETA, GAMMA, K = 0.1, 0.4, 3


def test_identity_and_gamma_one_is_dsgd():
    n = 8
    W, b, x0 = ring_mh(n), targets(n), targets(n, seed=1)
    ours = run(choco(local_of(optax.sgd(ETA)), gamma=1.0), b, W, 50, x0=x0, local_steps=2)
    reference = run(dsgd(local_of(optax.sgd(ETA)), order="atc"), b, W, 50, x0=x0, local_steps=2)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def top_k_numpy(v: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(v)
    idx = np.argsort(-np.abs(v))[:k]
    out[idx] = v[idx]
    return out


def choco_reference(W, b, x0, rounds):
    """Algorithm 2 of Koloskova et al. (2019) as written: per-neighbour copies ``x̂_j``.

    Returns per round the parameters ``x_i``, the public copies ``x̂_i`` and
    ``Σ_j W_ij x̂_j`` computed from node i's own copies.
    """
    n, d = b.shape
    neighbours = [[j for j in range(n) if W[i, j] > 0 or i == j] for i in range(n)]
    x = x0.copy()
    hat = np.zeros((n, n, d))  # hat[i, j]: node i's copy of x̂_j
    out = []
    for _ in range(rounds):
        half = np.stack([x[i] - ETA * (x[i] - b[i]) for i in range(n)])  # x^{t+½}
        q = np.stack([top_k_numpy(half[i] - hat[i, i], K) for i in range(n)])
        for i in range(n):
            for j in neighbours[i]:
                hat[i, j] = hat[i, j] + q[j]  # x̂_j^{t+1} = x̂_j^t + q_j^t
        x = np.stack(
            [
                half[i] + GAMMA * sum(W[i, j] * (hat[i, j] - hat[i, i]) for j in neighbours[i])
                for i in range(n)
            ]
        )
        s = np.stack([sum(W[i, j] * hat[i, j] for j in neighbours[i]) for i in range(n)])
        out.append((x, np.stack([hat[i, i] for i in range(n)]), s))
    return out


def test_top_k_matches_the_paper_step_by_step():
    n, d = 6, 10
    W, b, x0 = ring_mh(n), targets(n, d), targets(n, d, seed=1)
    alg = choco(local_of(optax.sgd(ETA)), gamma=GAMMA, compressor=top_k(k=K))
    state = jax.vmap(alg.init)({"x": jnp.asarray(x0, jnp.float32)}, node_keys(jax.random.key(0), n))
    round_fn = jax.jit(make_round(alg, DenseTestMixer()))
    batches = jnp.asarray(b, jnp.float32)[:, None]
    for t, (x, hat, s) in enumerate(choco_reference(W, b, x0, 3)):
        state, _ = round_fn(state, batches, jnp.asarray(W, jnp.float32), jax.random.key(t))
        np.testing.assert_allclose(state.params["x"], x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state.public["x"], hat, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state.mixed_public["x"], s, rtol=1e-5, atol=1e-6)
    assert np.abs(hat - x).max() > 1e-2  # compression really lags the public copies


def test_mixed_public_copy_stays_exact():
    """``s_i = Σ_j W_ij x̂_j`` after many rounds of mixed compressed corrections."""
    n = 8
    W, b = ring_mh(n), targets(n, 10)
    alg = choco(local_of(optax.sgd(ETA)), gamma=GAMMA, compressor=top_k(k=K))
    _, state = simulate(alg, b, W, 60, x0=targets(n, 10, seed=2))
    np.testing.assert_allclose(
        state.mixed_public["x"], W @ np.asarray(state.public["x"]), rtol=1e-5, atol=1e-5
    )


def random_mask(p: float = 0.5) -> Compressor:
    """A keyed test compressor: keeps each entry with probability ``p`` (unbiased)."""

    def init(x: Any, key: jax.Array) -> KeyState:
        del x
        return KeyState(key)

    def compress(x: Any, state: KeyState):
        key, sub = jax.random.split(state.key)
        leaves, tree = jax.tree.flatten(x)
        masks = [
            jax.random.bernoulli(jax.random.fold_in(sub, i), p, v.shape)
            for i, v in enumerate(leaves)
        ]
        kept = [jnp.where(m, v / p, 0) for m, v in zip(masks, leaves, strict=True)]
        return jax.tree.unflatten(tree, kept), KeyState(key)

    return Compressor("random_mask", init, compress, lambda encoded: encoded)


def test_compressor_state_is_per_node_and_advances():
    n = 4
    alg = choco(local_of(optax.sgd(ETA)), gamma=0.2, compressor=random_mask())
    keys = node_keys(jax.random.key(5), n)
    state = jax.vmap(alg.init)({"x": jnp.zeros((n, 3))}, keys)
    np.testing.assert_array_equal(
        jax.random.key_data(state.compressor_state.key), jax.random.key_data(keys)
    )
    _, after = simulate(alg, targets(n), ring_mh(n), 3, seed=5)
    data = np.asarray(jax.random.key_data(after.compressor_state.key))
    assert len({tuple(row) for row in data}) == n  # every node has its own stream
    assert not np.array_equal(data, np.asarray(jax.random.key_data(keys)))


@pytest.mark.parametrize("gamma", [0.0, 1.5])
def test_bad_gamma_is_refused(gamma):
    with pytest.raises(ValueError, match="gamma"):
        choco(local_of(optax.sgd(ETA)), gamma=gamma)
