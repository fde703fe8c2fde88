"""Jittable minibatch sampling with explicit keys, identical in simulation and deployment.

Indices are drawn **uniformly with replacement** from ``[0, count_i)``, so the
zero padding of :class:`~dfl.data.node_data.NodeData` is never sampled and every
local step sees an i.i.d. minibatch of the node's own data. Node ``i`` always
uses the key ``jax.random.fold_in(key, i)``, so the simulation
(:func:`sample_batches`, all nodes at once) and a deployed node
(:func:`sample_node_batches` on its own rows) draw exactly the same batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from dfl.data.node_data import NodeData


@functools.partial(jax.jit, static_argnames=("batch_size", "local_steps"))
def sample_node_batches(
    key: jax.Array,
    x_i: jax.Array,
    y_i: jax.Array,
    count_i: jax.Array | int,
    *,
    batch_size: int,
    local_steps: int,
) -> tuple[jax.Array, jax.Array]:
    """Samples ``local_steps`` minibatches of one node, uniformly with replacement.

    Args:
      key: this node's key for this round, ``fold_in(round_key, node_id)``.
      x_i: the node's padded features ``[max_n, *feature_shape]``.
      y_i: the node's padded labels ``[max_n]``.
      count_i: number of real rows; must be >= 1. Indices lie in ``[0, count_i)``.
      batch_size: examples per minibatch ``B``.
      local_steps: minibatches ``K`` (one per local step).

    Returns:
      ``(xb, yb)`` with ``xb`` ``[K, B, *feature_shape]`` and ``yb`` ``[K, B]``.
    """
    idx = jax.random.randint(
        key, (local_steps, batch_size), 0, jnp.asarray(count_i, dtype=jnp.int32)
    )
    return x_i[idx], y_i[idx]


@functools.partial(jax.jit, static_argnames=("batch_size", "local_steps"))
def sample_batches(
    key: jax.Array, node_data: NodeData, *, batch_size: int, local_steps: int
) -> tuple[jax.Array, jax.Array]:
    """Samples minibatches for all nodes at once (``jax.vmap`` over the node axis).

    Node ``i``'s slice equals
    ``sample_node_batches(fold_in(key, i), x[i], y[i], counts[i], ...)`` exactly.

    Args:
      key: the round's key (shared by all nodes; each folds in its id).
      node_data: stacked data with leading axis ``N``.
      batch_size: examples per minibatch ``B``.
      local_steps: minibatches per node ``K``.

    Returns:
      ``(xb, yb)`` with ``xb`` ``[N, K, B, *feature_shape]`` and ``yb`` ``[N, K, B]``.
    """
    return over_nodes(
        sample_node_batches, key, node_data, batch_size=batch_size, local_steps=local_steps
    )


def over_nodes(
    sample_node: Callable[..., Any],
    key: jax.Array,
    node_data: NodeData,
    per_node: dict[str, jax.Array] | None = None,
    **static: Any,
) -> Any:
    """Runs a one-node sampler for every node at once, node ``i`` with ``fold_in(key, i)``.

    Args:
      sample_node: ``sample_node(key_i, x_i, y_i, count_i, **per_node_i, **static)``.
      key: the round's key.
      node_data: stacked data with leading axis ``N``.
      per_node: keyword arguments with a leading node axis (e.g. per-node rates).
      **static: keyword arguments shared by every node.

    Returns:
      ``sample_node``'s output with a leading node axis (``jax.vmap``, no Python loop).
    """
    num_nodes = node_data.counts.shape[0]

    def one(i: jax.Array, x_i: jax.Array, y_i: jax.Array, c_i: jax.Array, extra: dict):
        return sample_node(jax.random.fold_in(key, i), x_i, y_i, c_i, **extra, **static)

    nodes = jnp.arange(num_nodes, dtype=jnp.int32)
    return jax.vmap(one)(nodes, *node_data, per_node or {})
