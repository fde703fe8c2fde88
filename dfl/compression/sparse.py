"""Sparse wire leaves shared by the sparsifiers (:mod:`top_k`, :mod:`rand_k`)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SparseLeaf:
    """One leaf as ``k`` values at flat ``indices`` (smallest unsigned dtype).

    Attributes:
      values: the kept values ``[k]`` in the leaf's dtype.
      indices: their flat positions ``[k]`` as the smallest unsigned integer
        dtype that indexes the leaf (:func:`~dfl.compression.base.index_dtype`).
      shape: the dense leaf's shape (static pytree aux data).
    """

    values: jax.Array
    indices: jax.Array
    shape: tuple[int, ...] = dataclasses.field(metadata={"static": True})


def leaf_k(size: int, *, fraction: float | None, k: int | None) -> int:
    """Entries kept of a leaf of ``size``: ``k`` (capped) or ``ceil(fraction·size)``, ≥ 1."""
    if k is not None:
        return max(1, min(int(k), size))
    assert fraction is not None
    return max(1, min(size, math.ceil(fraction * size)))


def check_k(name: str, fraction: float | None, k: int | None) -> None:
    """Raises ``ValueError`` unless ``k ≥ 1`` or ``0 < fraction ≤ 1``."""
    if k is None and (fraction is None or not 0 < fraction <= 1):
        raise ValueError(f"{name} needs 0 < fraction <= 1 or k >= 1, found {fraction=}, {k=}")
    if k is not None and k < 1:
        raise ValueError(f"{name} needs k >= 1, found {k=}")


def scatter(leaf: SparseLeaf, dtype=None) -> jax.Array:
    """The dense array of a :class:`SparseLeaf` (zeros off the kept indices)."""
    size = math.prod(leaf.shape)
    dense = jnp.zeros((size,), dtype or leaf.values.dtype)
    return dense.at[leaf.indices.astype(jnp.int32)].set(leaf.values).reshape(leaf.shape)


def is_sparse(node) -> bool:
    """``is_leaf`` predicate that stops tree traversal at :class:`SparseLeaf`."""
    return isinstance(node, SparseLeaf)
