"""Evaluation metrics against direct numpy computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dfl.algorithms import dsgd, local_update, value_and_grad
from dfl.data import NodeData
from dfl.evaluate import consensus_distance, make_evaluate, make_local_evaluate
from dfl.models import build_model


def test_consensus_distance_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 4))
    flat = np.concatenate([a.reshape(5, -1), b], axis=1)
    want = np.mean(np.sum((flat - flat.mean(0)) ** 2, axis=1))
    got = consensus_distance({"a": jnp.asarray(a), "b": jnp.asarray(b)})
    np.testing.assert_allclose(got, want, rtol=1e-5)


def setup():
    model = build_model("logreg", input_shape=(3,), num_classes=2)
    algorithm = dsgd(local_update(optax.sgd(0.1), value_and_grad(model.loss)))
    # Node 0 predicts class 0 everywhere, node 1 predicts x[0] > 0, node 2 class 1.
    kernels = np.zeros((3, 3, 2), np.float32)
    biases = np.array([[1, 0], [0, 0], [0, 1]], np.float32)
    kernels[1, 0, 1] = 10.0
    params = {"linear": {"kernel": jnp.asarray(kernels), "bias": jnp.asarray(biases)}}
    state = jax.vmap(algorithm.init, in_axes=(0, None))(params, jax.random.key(0))
    return model, algorithm, state


def test_per_node_and_averaged_accuracy():
    model, algorithm, state = setup()
    x = jnp.asarray([[1.0, 0, 0], [-1.0, 0, 0], [2.0, 0, 0], [-3.0, 0, 0]])
    y = jnp.asarray([1, 0, 1, 1])
    m = make_evaluate(algorithm, model, chunk=3)(state, x, y)
    np.testing.assert_allclose(m["accuracy"], [0.25, 0.75, 0.75])
    assert float(m["test_accuracy_min"]) == 0.25 and float(m["test_accuracy_max"]) == 0.75
    np.testing.assert_allclose(m["test_accuracy_mean"], 1.75 / 3, rtol=1e-6)
    # The average model: kernel[0, 1] = 10/3, bias = (1/3, 1/3): predicts x[0] > 0.
    np.testing.assert_allclose(m["test_accuracy_avg_model"], 0.75)


def test_local_accuracy_ignores_padding_and_empty_nodes():
    model, algorithm, state = setup()
    x = jnp.zeros((3, 2, 3)).at[:, 0, 0].set(1.0)
    y = jnp.asarray([[0, 1], [1, 0], [1, 0]])  # node 1's row 1 is padding; node 2 has none
    local = NodeData(x=x, y=y, counts=jnp.asarray([2, 1, 0]))
    m = make_local_evaluate(algorithm, model)(state, local)
    # node 0 predicts 0 on both rows (labels 0, 1): 0.5; node 1 predicts 1 on its row: 1.0.
    assert float(m["local_test_accuracy_mean"]) == 0.75
    assert float(m["local_test_accuracy_min"]) == 0.5
    assert float(m["local_test_accuracy_max"]) == 1.0


def test_node_chunks_change_no_number():
    """Scoring nodes a few at a time (lax.map, with a remainder) gives the all-at-once numbers."""
    model = build_model("mlp", input_shape=(4,), num_classes=3, hidden=(5,))
    algorithm = dsgd(local_update(optax.sgd(0.1), value_and_grad(model.loss)))
    keys = jax.random.split(jax.random.key(0), 7)
    params = jax.vmap(model.init)(keys)
    state = jax.vmap(algorithm.init, in_axes=(0, None))(params, jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (11, 4))
    y = jax.random.randint(jax.random.key(3), (11,), 0, 3)
    whole = jax.jit(make_evaluate(algorithm, model, chunk=4, node_chunk=7))(state, x, y)
    for node_chunk in (1, 3):
        parts = jax.jit(make_evaluate(algorithm, model, chunk=4, node_chunk=node_chunk))(
            state, x, y
        )
        for key, value in whole.items():
            np.testing.assert_array_equal(np.asarray(parts[key]), np.asarray(value), key)
    # Per-node accuracies against a direct computation, one node at a time.
    direct = [
        np.mean(np.argmax(model.apply(jax.tree.map(lambda p, i=i: p[i], params), x), -1) == y)
        for i in range(7)
    ]
    np.testing.assert_allclose(whole["accuracy"], direct, rtol=1e-6)
    assert len(set(np.round(direct, 6))) > 1  # the nodes differ, so a mix-up would show


def test_evaluate_refuses_empty_chunks():
    model, algorithm, _ = setup()
    with pytest.raises(ValueError, match=r"node_chunk=0: expected both >= 1"):
        make_evaluate(algorithm, model, node_chunk=0)
