"""Evaluation of every node's model and of the node-averaged model."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax.tree_utils as otu

from dfl.algorithms.base import Algorithm
from dfl.models import FunctionalModel

NODE_CHUNK = 256
"""Nodes :func:`make_evaluate` scores at once (the rest in sequence, see there)."""


def consensus_distance(params: Any) -> jax.Array:
    """Mean over nodes of ``||x_i − x̄||²`` over all leaves (leading node axis)."""

    def per_leaf(x):
        x = x.reshape(x.shape[0], -1)
        return jnp.sum((x - x.mean(axis=0)) ** 2)

    n = jax.tree.leaves(params)[0].shape[0]
    return otu.tree_sum(jax.tree.map(per_leaf, params)) / n


def make_evaluate(
    algorithm: Algorithm,
    model: FunctionalModel,
    *,
    chunk: int = 2048,
    node_chunk: int = NODE_CHUNK,
):
    """Builds ``evaluate(state, x, y) -> dict`` of scalar metrics.

    Every node's evaluated parameters (``algorithm.params``, e.g. push-sum's
    de-biased ones) are scored on the same held-out set ``(x, y)``, and so is
    their average over nodes.

    The test set is scored ``chunk`` examples at a time and the nodes
    ``node_chunk`` at a time (:func:`jax.lax.map` over node batches beyond that),
    so the activations held at once are ``node_chunk × chunk × width``, not
    ``N × chunk × width``: memory stays linear in ``N``. Both change no number
    (every node's count of correct predictions is computed alone).

    Args:
      algorithm: gives each node's evaluated parameters (``algorithm.params``).
      model: the model (``model.apply(params, x) -> logits``).
      chunk: test examples per forward pass.
      node_chunk: nodes per forward pass, ``>= 1``.

    Returns keys ``accuracy`` (per node, ``[N]``), ``test_accuracy_mean``,
    ``test_accuracy_min``, ``test_accuracy_max``, ``test_accuracy_avg_model``,
    ``consensus_distance``.
    """

    if chunk < 1 or node_chunk < 1:
        raise ValueError(f"chunk={chunk}, node_chunk={node_chunk}: expected both >= 1")

    def correct(params, x, y):
        total = jnp.zeros((), jnp.int32)
        for start in range(0, x.shape[0], chunk):
            logits = model.apply(params, x[start : start + chunk])
            total += jnp.sum(jnp.argmax(logits, -1) == y[start : start + chunk])
        return total / x.shape[0]

    def evaluate(state, x, y):
        params = jax.vmap(algorithm.params)(state)
        per_node = jax.vmap(correct, in_axes=(0, None, None))
        n = jax.tree.leaves(params)[0].shape[0]
        if n <= node_chunk:
            acc = per_node(params, x, y)
        else:
            acc = jax.lax.map(lambda p: correct(p, x, y), params, batch_size=node_chunk)
        avg = jax.tree.map(lambda p: p.mean(axis=0), params)
        return {
            "accuracy": acc,
            "test_accuracy_mean": acc.mean(),
            "test_accuracy_min": acc.min(),
            "test_accuracy_max": acc.max(),
            "test_accuracy_avg_model": correct(avg, x, y),
            "consensus_distance": consensus_distance(params),
        }

    return evaluate


def make_local_evaluate(algorithm: Algorithm, model: FunctionalModel):
    """Builds ``evaluate_local(state, local_test: NodeData) -> dict``.

    Node ``i``'s model is scored on its own held-out rows ``local_test.x[i]``
    (only the first ``counts[i]`` rows are real); nodes without local test
    examples are left out of the mean/min/max.

    Returns keys ``local_test_accuracy_mean``, ``_min`` and ``_max``.
    """

    def node_accuracy(params, x, y, count):
        hits = jnp.argmax(model.apply(params, x), -1) == y
        real = jnp.arange(y.shape[0]) < count
        return jnp.sum(hits & real) / jnp.maximum(count, 1)

    def evaluate_local(state, local_test):
        params = jax.vmap(algorithm.params)(state)
        acc = jax.vmap(node_accuracy)(params, local_test.x, local_test.y, local_test.counts)
        has = local_test.counts > 0
        return {
            "local_test_accuracy_mean": jnp.sum(jnp.where(has, acc, 0)) / jnp.sum(has),
            "local_test_accuracy_min": jnp.min(jnp.where(has, acc, jnp.inf)),
            "local_test_accuracy_max": jnp.max(jnp.where(has, acc, -jnp.inf)),
        }

    return evaluate_local
