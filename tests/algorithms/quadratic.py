"""Quadratic test problems f_i(x) = ½||x − b_i||² with closed-form answers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dfl.algorithms.base import Algorithm
from dfl.sim.round import make_round


def loss(params, b):
    """``½||x − b||²`` for one node; the "batch" is the node's target ``b_i``."""
    return 0.5 * jnp.sum((params["x"] - b) ** 2)


def ring_mh(n: int) -> np.ndarray:
    """Metropolis–Hastings weights of the ring, written out by hand (1/3 each)."""
    W = np.zeros((n, n))
    for i in range(n):
        for j in (i - 1, i, i + 1):
            W[i, j % n] = 1 / 3
    return W


class DenseTestMixer:
    """``Σ_j W_ij x_j`` by einsum, the definition every kernel must match."""

    def apply(self, tree, W):
        return jax.tree.map(lambda x: jnp.einsum("ij,j...->i...", W, x), tree)


def run(algorithm: Algorithm, b: np.ndarray, W, rounds: int, *, local_steps: int = 1, x0=None):
    """Runs ``rounds`` rounds from ``x0`` (default zeros); returns x per round ``[T+1, N, d]``."""
    n, d = b.shape
    x0 = np.zeros((n, d)) if x0 is None else x0
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(0), jnp.arange(n))
    state = jax.vmap(algorithm.init)({"x": jnp.asarray(x0, jnp.float32)}, keys)
    batches = jnp.repeat(jnp.asarray(b, jnp.float32)[:, None], local_steps, axis=1)
    round_fn = jax.jit(make_round(algorithm, DenseTestMixer()))
    W = jnp.asarray(W, jnp.float32)
    xs = [np.asarray(jax.vmap(algorithm.params)(state)["x"])]
    for t in range(rounds):
        state, _ = round_fn(state, batches, W, jax.random.key(t))
        xs.append(np.asarray(jax.vmap(algorithm.params)(state)["x"], dtype=np.float64))
    return np.stack(xs)


def targets(n: int, d: int = 3, seed: int = 0) -> np.ndarray:
    """Distinct per-node targets ``b_i``."""
    return np.random.default_rng(seed).normal(size=(n, d))
