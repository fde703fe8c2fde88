"""Top-k sparsification: keep the k largest-magnitude entries of every leaf.

Contraction: ``||Q(x) − x||² ≤ (1 − k/d) ||x||²`` per leaf of size d
(deterministic), so ω = min over leaves of k/d (Stich et al. 2018).

References:
  Stich, Cordonnier, Jaggi, "Sparsified SGD with Memory", NeurIPS 2018.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from dfl.compression.base import Compressor, index_dtype


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SparseLeaf:
    """One leaf as ``k`` values at flat ``indices`` (smallest unsigned dtype)."""

    values: jax.Array
    indices: jax.Array
    shape: tuple[int, ...] = dataclasses.field(metadata={"static": True})


def leaf_k(size: int, *, fraction: float | None, k: int | None) -> int:
    """Entries kept of a leaf of ``size``: ``k`` (capped) or ``ceil(fraction·size)``, ≥ 1."""
    if k is not None:
        return max(1, min(int(k), size))
    assert fraction is not None
    return max(1, min(size, math.ceil(fraction * size)))


def scatter(leaf: SparseLeaf, dtype=None) -> jax.Array:
    """The dense array of a :class:`SparseLeaf` (zeros off the kept indices)."""
    size = math.prod(leaf.shape)
    dense = jnp.zeros((size,), dtype or leaf.values.dtype)
    return dense.at[leaf.indices.astype(jnp.int32)].set(leaf.values).reshape(leaf.shape)


def top_k(*, fraction: float | None = 0.1, k: int | None = None) -> Compressor:
    """Keeps the ``k`` (or ``ceil(fraction·d)``) largest |entries| of every leaf.

    Args:
      fraction: kept fraction per leaf, in (0, 1]; ignored when ``k`` is set.
      k: kept entries per leaf (capped at the leaf size).
    """
    if k is None and (fraction is None or not 0 < fraction <= 1):
        raise ValueError(f"top_k needs 0 < fraction <= 1 or k >= 1, found {fraction=}, {k=}")
    if k is not None and k < 1:
        raise ValueError(f"top_k needs k >= 1, found {k=}")

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
        return jax.tree.map(scatter, encoded, is_leaf=lambda n: isinstance(n, SparseLeaf))

    return Compressor("top_k", init, compress, decompress)
