"""Low-rank compression by one step of warm-started power iteration (PowerGossip-style).

Every leaf with at least two axes is viewed as a matrix M (``[m, n]``: all axes but
the last, by the last; transposed so that n ≤ m) and sent as two thin factors:

.. math::  P = \\mathrm{orth}(M Q), \\qquad R = M^\\top P, \\qquad Q(M) = P R^\\top = P P^\\top M,

the projection of M onto an r-dimensional column space. Q (``[n, r]``) is the node's
state: with ``warm_start`` the next call starts from the last R (one power-iteration
step per message, which tracks the top-r subspace of a slowly changing M, as in
PowerSGD / PowerGossip); without it a fresh Gaussian Q is drawn from the node's key.
Leaves with fewer than two axes (biases), and matrices where r(m + n) ≥ mn, are
sent dense.

Contraction: P Pᵀ is an orthogonal projection, so deterministically

.. math::  \\|Q(M) - M\\|^2 = \\|M\\|^2 - \\|P^\\top M\\|^2 \\le \\|M\\|^2.

With a fresh Gaussian Q (``warm_start=False``) the range of P contains M·span(Q)
and span(Q) is a uniform r-dimensional subspace of ℝⁿ, so
E‖PᵀM‖² ≥ E‖M U_Q‖² = (r/n)‖M‖², i.e.

.. math::  E\\|Q(M) - M\\|^2 \\le (1 - r/n)\\,\\|M\\|^2, \\qquad \\omega = r/\\min(m, n).

With warm starts no worst-case bound beyond ω ≥ 0 holds (an adversarial M can
be orthogonal to the last subspace); in practice the error approaches the best
rank-r error of Eckart–Young within a few calls on a slowly varying M, far below
1 − r/n. Dense leaves have ω = 1.

Wire: P ``[m, r]`` and R ``[n, r]`` in float32 per matrix leaf; the other leaves as they are.

References:
  Vogels, Karimireddy, Jaggi, "PowerSGD: Practical Low-Rank Gradient Compression
  for Distributed Optimization", NeurIPS 2019.
  Vogels, Karimireddy, Jaggi, "Practical Low-Rank Communication Compression in
  Decentralized Deep Learning" (PowerGossip), NeurIPS 2020.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dfl.compression.base import Compressor


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LowRankLeaf:
    """One matrix leaf as factors ``P [m, r]`` and ``R [n, r]`` with ``M ≈ P Rᵀ``.

    Attributes:
      p: orthonormal left factor (float32).
      r: right factor ``Mᵀ P`` (float32).
      shape: the dense leaf's shape (static).
      dtype: the dense leaf's dtype name (static).
      transposed: whether M is the leaf's matrix view transposed (static).
    """

    p: jax.Array
    r: jax.Array
    shape: tuple[int, ...] = dataclasses.field(metadata={"static": True})
    dtype: str = dataclasses.field(metadata={"static": True})
    transposed: bool = dataclasses.field(metadata={"static": True})


class LowRankState(NamedTuple):
    """Per-node state: its PRNG key and the warm start Q ``[n, r]`` of every leaf.

    Attributes:
      key: the node's key (fresh Gaussian starts when not warm-starting).
      q: one entry per leaf (flattened order): the warm start of a matrix leaf,
        ``None`` for a leaf sent dense.
    """

    key: jax.Array
    q: tuple[jax.Array | None, ...]


def matrix_view(shape: tuple[int, ...]) -> tuple[int, int, bool]:
    """``(m, n, transposed)`` of a leaf's matrix view with n ≤ m."""
    rows, cols = math.prod(shape[:-1]), shape[-1]
    return (rows, cols, False) if cols <= rows else (cols, rows, True)


def is_compressed(shape: tuple[int, ...], rank: int) -> bool:
    """Whether a leaf of ``shape`` is sent as rank-``rank`` factors (else dense)."""
    if len(shape) < 2:
        return False
    m, n, _ = matrix_view(shape)
    return rank * (m + n) < m * n


def initial_state(x: Any, key: jax.Array, rank: int) -> LowRankState:
    """Gaussian starts Q ``[n, rank]`` of the matrix leaves (leaf ``i``: ``fold_in(key, i)``)."""
    leaves = jax.tree.leaves(x)
    qs = []
    for i, leaf in enumerate(leaves):
        shape = tuple(leaf.shape)
        if not is_compressed(shape, rank):
            qs.append(None)
            continue
        _, n, _ = matrix_view(shape)
        qs.append(jax.random.normal(jax.random.fold_in(key, i), (n, rank), jnp.float32))
    return LowRankState(jax.random.fold_in(key, len(leaves)), tuple(qs))


def power_step(x: jax.Array, q: jax.Array) -> tuple[LowRankLeaf, jax.Array]:
    """``P = orth(M Q)``, ``R = Mᵀ P`` of leaf ``x`` and the next start (R, or Q when M = 0)."""
    shape = tuple(x.shape)
    _, _, transposed = matrix_view(shape)
    mat = x.reshape(-1, shape[-1]).astype(jnp.float32)
    mat = mat.T if transposed else mat
    p, _ = jnp.linalg.qr(mat @ q)
    r = mat.T @ p
    # Keep the old start when M is zero (R = 0 would stall the iteration).
    new_q = jnp.where(jnp.any(r != 0), r, q)
    return LowRankLeaf(p, r, shape, str(x.dtype), transposed), new_q


def expand(leaf: Any) -> Any:
    """The dense leaf ``P Rᵀ`` of a :class:`LowRankLeaf` (other leaves unchanged)."""
    if not isinstance(leaf, LowRankLeaf):
        return leaf
    mat = leaf.p @ leaf.r.T
    mat = mat.T if leaf.transposed else mat
    return mat.reshape(leaf.shape).astype(leaf.dtype)


def low_rank(*, rank: int = 1, warm_start: bool = True) -> Compressor:
    """Rank-``rank`` power-iteration compression of every weight matrix.

    Args:
      rank: r ≥ 1, columns of the factors.
      warm_start: start each power step from the last R (PowerGossip); ``False``
        draws a fresh Gaussian start (the ω = r/min(m, n) guarantee).

    Returns:
      A :class:`~dfl.compression.base.Compressor` with :class:`LowRankState`.
    """
    if rank < 1:
        raise ValueError(f"low_rank needs rank >= 1, found {rank=}")

    def init(x: Any, key: jax.Array) -> LowRankState:
        return initial_state(x, key, rank)

    def compress(x: Any, state: LowRankState) -> tuple[Any, LowRankState]:
        leaves, treedef = jax.tree.flatten(x)
        key, fresh = jax.random.split(state.key)
        encoded, qs = [], []
        for i, (leaf, q) in enumerate(zip(leaves, state.q, strict=True)):
            if q is None:
                encoded.append(leaf)
                qs.append(None)
                continue
            if not warm_start:
                q = jax.random.normal(jax.random.fold_in(fresh, i), q.shape, q.dtype)
            enc, q = power_step(leaf, q)
            encoded.append(enc)
            qs.append(q)
        return jax.tree.unflatten(treedef, encoded), LowRankState(key, tuple(qs))

    def decompress(encoded: Any) -> Any:
        return jax.tree.map(expand, encoded, is_leaf=lambda n: isinstance(n, LowRankLeaf))

    return Compressor("low_rank", init, compress, decompress)
