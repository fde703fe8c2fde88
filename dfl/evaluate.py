"""Evaluation of every node's model and of the node-averaged model."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax.tree_utils as otu

from dfl.algorithms.base import Algorithm
from dfl.models import FunctionalModel


def consensus_distance(params: Any) -> jax.Array:
    """Mean over nodes of ``||x_i − x̄||²`` over all leaves (leading node axis)."""

    def per_leaf(x):
        x = x.reshape(x.shape[0], -1)
        return jnp.sum((x - x.mean(axis=0)) ** 2)

    n = jax.tree.leaves(params)[0].shape[0]
    return otu.tree_sum(jax.tree.map(per_leaf, params)) / n


def make_evaluate(algorithm: Algorithm, model: FunctionalModel, *, chunk: int = 2048):
    """Builds ``evaluate(state, x, y) -> dict`` of scalar metrics.

    Every node's evaluated parameters (``algorithm.params``, e.g. push-sum's
    de-biased ones) are scored on the same held-out set ``(x, y)``, and so is
    their average over nodes.

    Returns keys ``accuracy`` (per node, ``[N]``), ``test_accuracy_mean``,
    ``test_accuracy_min``, ``test_accuracy_max``, ``test_accuracy_avg_model``,
    ``consensus_distance``.
    """

    def correct(params, x, y):
        total = jnp.zeros((), jnp.int32)
        for start in range(0, x.shape[0], chunk):
            logits = model.apply(params, x[start : start + chunk])
            total += jnp.sum(jnp.argmax(logits, -1) == y[start : start + chunk])
        return total / x.shape[0]

    def evaluate(state, x, y):
        params = jax.vmap(algorithm.params)(state)
        acc = jax.vmap(correct, in_axes=(0, None, None))(params, x, y)
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
