"""Top-k sparsification: keep the k largest-magnitude entries of every leaf.

Contraction (deterministic, per leaf of size d keeping k entries): the dropped
entries are the d − k smallest, so their energy is at most (1 − k/d) of the total:

.. math::  \\|Q(x) - x\\|^2 \\le (1 - k/d)\\,\\|x\\|^2, \\qquad
           \\omega = \\min_{\\text{leaves}} k/d.

Wire: per leaf ``k`` values (leaf dtype) and ``k`` indices (smallest unsigned
dtype that indexes ``d``).

References:
  Stich, Cordonnier, Jaggi, "Sparsified SGD with Memory", NeurIPS 2018.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dfl.compression.base import Compressor, index_dtype
from dfl.compression.sparse import SparseLeaf, check_k, is_sparse, leaf_k, scatter

__all__ = ["SparseLeaf", "leaf_k", "scatter", "top_k"]


def top_k(*, fraction: float | None = 0.1, k: int | None = None) -> Compressor:
    """Keeps the ``k`` (or ``ceil(fraction·d)``) largest |entries| of every leaf.

    Args:
      fraction: kept fraction per leaf, in (0, 1]; ignored when ``k`` is set.
      k: kept entries per leaf (capped at the leaf size).

    Returns:
      A stateless :class:`~dfl.compression.base.Compressor` with ω = k/d per leaf.
    """
    check_k("top_k", fraction, k)

    def init(x: Any, key: jax.Array) -> tuple[()]:
        del x, key
        return ()

    def compress_leaf(x: jax.Array) -> SparseLeaf:
        flat = x.reshape(-1)
        kk = leaf_k(flat.size, fraction=fraction, k=k)
        _, idx = jax.lax.top_k(jnp.abs(flat), kk)
        return SparseLeaf(flat[idx], idx.astype(index_dtype(flat.size)), tuple(x.shape))

    def compress(x: Any, state: tuple[()]) -> tuple[Any, tuple[()]]:
        return jax.tree.map(compress_leaf, x), state

    def decompress(encoded: Any) -> Any:
        return jax.tree.map(scatter, encoded, is_leaf=is_sparse)

    return Compressor("top_k", init, compress, decompress)
