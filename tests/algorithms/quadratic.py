"""Quadratic test problems f_i(x) = ½||x − b_i||² with closed-form answers."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.algorithms.base import Algorithm
from dfl.algorithms.local import LocalUpdate, local_update, value_and_grad
from dfl.sim.round import make_round


def loss(params, b):
    """``½||x − b||²`` for one node; the "batch" is the node's target ``b_i``."""
    return 0.5 * jnp.sum((params["x"] - b) ** 2)


def local_of(optimizer) -> LocalUpdate:
    """Local training on :func:`loss` with ``optimizer`` (the plain gradient)."""
    return local_update(optimizer, value_and_grad(loss))


def ring_mh(n: int) -> np.ndarray:
    """Metropolis–Hastings weights of the ring, written out by hand (1/3 each)."""
    W = np.zeros((n, n))
    for i in range(n):
        for j in (i - 1, i, i + 1):
            W[i, j % n] = 1 / 3
    return W


class DenseTestMixer:
    """``Σ_j W_ij x_j`` by einsum, the definition every kernel must match (dtype kept)."""

    def apply(self, tree, W):
        return jax.tree.map(lambda x: jnp.einsum("ij,j...->i...", W, x).astype(x.dtype), tree)


def simulate(
    algorithm: Algorithm,
    b: np.ndarray,
    W,
    rounds: int,
    *,
    local_steps: int = 1,
    x0=None,
    seed: int = 0,
) -> tuple[np.ndarray, Any]:
    """Runs ``rounds`` rounds from ``x0`` (default zeros) in one jitted ``lax.scan``.

    Args:
      algorithm: the per-node algorithm.
      b: targets ``[N, d]``.
      W: one mixing matrix ``[N, N]``, or a period of them ``[P, N, N]`` (round
        ``t`` uses ``W[t % P]``: a time-varying schedule).
      rounds: number of rounds ``T``.
      local_steps: batches per round (every batch is ``b_i``).
      x0: initial parameters ``[N, d]``.
      seed: node ``i`` is initialised with ``fold_in(key(seed), i)``, round ``t``
        runs with ``fold_in(key(seed + 1), t)``.

    Returns:
      ``(xs, state)``: evaluated parameters per round ``[T+1, N, d]`` (float64)
      and the final stacked state.
    """
    n, d = b.shape
    x0 = np.zeros((n, d)) if x0 is None else x0
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), jnp.arange(n))
    state = jax.vmap(algorithm.init)({"x": jnp.asarray(x0, jnp.float32)}, keys)
    batches = jnp.repeat(jnp.asarray(b, jnp.float32)[:, None], local_steps, axis=1)
    Ws = jnp.asarray(W, jnp.float32)
    Ws = Ws[None] if Ws.ndim == 2 else Ws
    round_fn = make_round(algorithm, DenseTestMixer())
    round_key = jax.random.key(seed + 1)

    def body(state, t):
        state, _ = round_fn(state, batches, Ws[t % Ws.shape[0]], jax.random.fold_in(round_key, t))
        return state, jax.vmap(algorithm.params)(state)["x"]

    final, xs = jax.jit(lambda s: jax.lax.scan(body, s, jnp.arange(rounds)))(state)
    first = np.asarray(jax.vmap(algorithm.params)(state)["x"])[None]
    return np.concatenate([first, np.asarray(xs)]).astype(np.float64), final


def run(algorithm: Algorithm, b: np.ndarray, W, rounds: int, *, local_steps: int = 1, x0=None):
    """Like :func:`simulate`; returns only x per round ``[T+1, N, d]``."""
    return simulate(algorithm, b, W, rounds, local_steps=local_steps, x0=x0)[0]


def targets(n: int, d: int = 3, seed: int = 0) -> np.ndarray:
    """Distinct per-node targets ``b_i``."""
    return np.random.default_rng(seed).normal(size=(n, d))


def atc_fixed_point(W: np.ndarray, b: np.ndarray, eta: float) -> np.ndarray:
    """ATC D-SGD's fixed point with one SGD step: ``η (I − (1 − η) W)^{-1} W b``."""
    n = W.shape[0]
    return eta * np.linalg.solve(np.eye(n) - (1 - eta) * W, W @ b)


def cta_fixed_point(W: np.ndarray, b: np.ndarray, eta: float) -> np.ndarray:
    """CTA D-SGD's fixed point with one SGD step: ``η ((1 + η) I − W)^{-1} b``."""
    n = W.shape[0]
    return eta * np.linalg.solve((1 + eta) * np.eye(n) - W, b)


def perron_weights(W: np.ndarray) -> np.ndarray:
    """The push-sum weights' limit: ``π`` with ``W π = π``, scaled to sum to ``n``."""
    vals, vecs = np.linalg.eig(W)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    return pi * W.shape[0] / pi.sum()


def push_sum_fixed_point(W: np.ndarray, b: np.ndarray, eta: float) -> np.ndarray:
    """SGP's de-biased fixed point: ``η ((I − W) Π + η W)^{-1} W b``, ``Π = diag(π)``."""
    n = W.shape[0]
    Pi = np.diag(perron_weights(W))
    return eta * np.linalg.solve((np.eye(n) - W) @ Pi + eta * W, W @ b)


def directed_exponential(n: int) -> np.ndarray:
    """Column-stochastic W of the directed exponential graph, by hand.

    Node ``i`` keeps one share and pushes one to each ``i + 2^j mod n``
    (``2^j < n``), all shares equal.
    """
    hops = [0] + [2**j for j in range(int(np.ceil(np.log2(n)))) if 2**j < n]
    W = np.zeros((n, n))
    for i in range(n):
        for h in hops:
            W[(i + h) % n, i] += 1 / len(hops)
    return W


def random_directed(n: int, seed: int = 0) -> np.ndarray:
    """Column-stochastic W of a strongly connected directed graph with uneven out-degrees.

    Node ``i`` pushes to itself, to ``i + 1`` (a directed ring keeps it strongly
    connected) and to a random set of others, splitting its mass equally; the rows
    do not sum to one, so push-sum weights really move.
    """
    rng = np.random.default_rng(seed)
    W = np.zeros((n, n))
    for i in range(n):
        out = {i, (i + 1) % n} | {int(j) for j in rng.choice(n, size=rng.integers(0, 4))}
        for j in out:
            W[j, i] = 1 / len(out)
    return W


def lazy_ring(n: int, hop: int = 1) -> np.ndarray:
    """Symmetric doubly stochastic W: ½ on the diagonal, ¼ to ``i ± hop``.

    Every weight is exact in float32, so its column sums are exactly one (D² integrates
    the error of inexact ones), and ``λ_min(W) ≥ 0``.
    """
    W = 0.5 * np.eye(n)
    for i in range(n):
        W[i, (i + hop) % n] += 0.25
        W[i, (i - hop) % n] += 0.25
    return W


def random_row_stochastic(n: int, seed: int = 0) -> np.ndarray:
    """A dense row-stochastic W whose columns do not sum to one."""
    W = np.random.default_rng(seed).uniform(0.1, 1.0, size=(n, n))
    return W / W.sum(axis=1, keepdims=True)
