"""Drops on a ring under the renormalise rule, and Markov churn, against closed forms.

Each Monte-Carlo mean is compared with its formula within ``Z`` standard errors
of the mean (estimated from the same draws).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.dense import renormalize
from dfl.network import clock
from dfl.network.churn import markov_table
from tests.network.models import hand_model

Z = 5.0
N, P, ROUNDS = 8, 0.3, 20000


def ring_w(n: int) -> np.ndarray:
    """Metropolis–Hastings weights of the ring: 1/3 to each neighbour and itself."""
    W = np.zeros((n, n))
    for i in range(n):
        for j in (i - 1, i, i + 1):
            W[i, j % n] = 1 / 3
    return W


def renormalized_ws(W: np.ndarray, p: float, rounds: int) -> np.ndarray:
    """The renormalised W of every round ``[rounds, N, N]``, from the network's own masks."""
    n = W.shape[0]
    model = hand_model(np.zeros((n, n)), np.zeros((rounds, n)), drop=p)
    adjacency = jnp.asarray(W != 0)

    @jax.jit
    def one(t):
        net = clock.init(jnp, n)._replace(round=t)
        _, out = clock.step(jnp, model, net, adjacency)
        return renormalize(jnp.asarray(W, jnp.float32), out.delivered)

    return np.asarray(jax.vmap(one)(jnp.arange(rounds, dtype=jnp.int32)), np.float64)


def assert_mean(samples: np.ndarray, expected: np.ndarray) -> None:
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    np.testing.assert_array_less(np.abs(mean - expected), Z * se + 1e-9)


def test_expected_mixing_matrix_under_drops():
    # E[W'_ij] = (1 - p) W_ij off the diagonal, E[W'_ii] = W_ii + p Σ_{j≠i} W_ij.
    W = ring_w(N)
    off = W * (1 - np.eye(N))
    expected = (1 - P) * off + np.diag(np.diag(W) + P * off.sum(axis=1))
    samples = renormalized_ws(W, P, ROUNDS)
    assert_mean(samples, expected)
    # The drops are really random (not a fixed mask): each edge dropped ≈ p of the time.
    dropped = (samples[:, 0, 1] == 0).mean()
    assert abs(dropped - P) < Z * np.sqrt(P * (1 - P) / ROUNDS)


def test_mean_square_consensus_contraction_of_plain_gossip():
    # x⁺ = W' x with independent edge drops: W' = E[W'] + Σ_(i,j) (d_ij - p) W_ij e_i (e_i - e_j)ᵀ,
    # so with Π = I - 11ᵀ/N: E‖Π W' x‖² = xᵀ (E[W']ᵀ Π E[W'] + p(1-p)(1 - 1/N)
    #   Σ_(i,j) W_ij² (e_i - e_j)(e_i - e_j)ᵀ) x.
    W = ring_w(N)
    off = W * (1 - np.eye(N))
    mean_w = (1 - P) * off + np.diag(np.diag(W) + P * off.sum(axis=1))
    proj = np.eye(N) - np.ones((N, N)) / N
    M = mean_w.T @ proj @ mean_w
    for i, j in zip(*np.nonzero(off), strict=True):
        e = np.zeros(N)
        e[i], e[j] = 1.0, -1.0
        M += P * (1 - P) * (1 - 1 / N) * W[i, j] ** 2 * np.outer(e, e)
    x = np.random.default_rng(0).normal(size=N)
    expected = x @ M @ x / np.sum((proj @ x) ** 2)
    samples = renormalized_ws(W, P, ROUNDS)
    ratios = np.sum((proj @ (samples @ x)[..., None])[..., 0] ** 2, axis=-1) / np.sum(
        (proj @ x) ** 2
    )
    mean, se = ratios.mean(), ratios.std(ddof=1) / np.sqrt(ROUNDS)
    assert abs(mean - expected) < Z * se
    ideal = np.sum((proj @ W @ x) ** 2) / np.sum((proj @ x) ** 2)
    assert expected > ideal + 10 * se  # drops slow consensus, measurably


def test_markov_churn_stationary_fraction_and_run_lengths():
    up, down, rounds, n = 8.0, 2.0, 4000, 64
    online = markov_table(7, n, rounds, up, down)
    frac = online.mean(axis=0)  # per node, over time
    se = frac.std(ddof=1) / np.sqrt(n)
    assert abs(frac.mean() - up / (up + down)) < Z * se
    # mean length of the offline runs is mean_down
    runs = []
    for node in range(n):
        off = np.concatenate([[0], (~online[:, node]).astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(off))
        runs += list(edges[1::2] - edges[::2])
    runs = np.asarray(runs, np.float64)
    assert abs(runs.mean() - down) < Z * runs.std(ddof=1) / np.sqrt(len(runs))
