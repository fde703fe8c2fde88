"""Per-node data stacked along a leading node axis (simulation) and one node's view (deployment)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class NodeData(NamedTuple):
    """Every node's examples, zero-padded to the largest node (a pytree of arrays).

    Row ``r`` of node ``i`` is real data iff ``r < counts[i]``; the padding rows
    are zeros (label 0) and are never sampled by :mod:`dfl.data.batching`.
    :func:`node_slice` gives one node's view (no node axis) with the same fields.

    Attributes:
      x: features ``[N, max_n, *feature_shape]`` (or ``[max_n, ...]`` for one node).
      y: int32 labels ``[N, max_n]`` (or ``[max_n]``).
      counts: int32 real examples per node ``[N]`` (or a scalar).
    """

    x: jax.Array
    y: jax.Array
    counts: jax.Array


def stack_partitions(
    x: np.ndarray, y: np.ndarray, parts: list[np.ndarray], *, pad_value: float = 0.0
) -> NodeData:
    """Gathers each node's rows and stacks them, padded to the largest node.

    Args:
      x: features ``[n, *feature_shape]``.
      y: labels ``[n]``.
      parts: per-node index arrays into ``x`` and ``y`` (may be empty).
      pad_value: value of the padding rows of ``x`` (labels are padded with 0).

    Returns:
      :class:`NodeData` with ``x`` ``[N, max_n, *feature_shape]`` (float32),
      ``y`` ``[N, max_n]`` and ``counts`` ``[N]`` (int32), ``max_n = max(counts)``.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int32)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y disagree on the number of examples: {x.shape=}, {y.shape=}")
    if not parts:
        raise ValueError("expected at least one node partition, found none")
    counts = np.array([len(p) for p in parts], dtype=np.int32)
    max_n = int(counts.max())
    xs = np.full((len(parts), max_n, *x.shape[1:]), pad_value, dtype=np.float32)
    ys = np.zeros((len(parts), max_n), dtype=np.int32)
    for i, p in enumerate(parts):
        p = np.asarray(p, dtype=np.int64)
        xs[i, : p.size] = x[p]
        ys[i, : p.size] = y[p]
    return NodeData(x=jnp.asarray(xs), y=jnp.asarray(ys), counts=jnp.asarray(counts))


def node_slice(node_data: NodeData, i: int) -> NodeData:
    """Node ``i``'s data without the node axis (what one deployed node holds).

    Args:
      node_data: stacked data, leading axis ``N``.
      i: node id in ``[0, N)``.

    Returns:
      :class:`NodeData` with ``x`` ``[max_n, *feature_shape]``, ``y`` ``[max_n]`` and
      a scalar ``counts``.
    """
    num_nodes = node_data.counts.shape[0]
    if not 0 <= i < num_nodes:
        raise ValueError(f"node id must lie in [0, {num_nodes}), found {i}")
    return NodeData(*(a[i] for a in node_data))
