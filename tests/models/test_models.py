"""Models: shapes, parameter counts, pure functional form."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dfl.models import build_model, functionalize


def count(params) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
    ("name", "options", "input_shape", "expected"),
    [
        ("logreg", {}, (28, 28, 1), 784 * 10 + 10),
        ("mlp", {"hidden": (256,)}, (28, 28, 1), 784 * 256 + 256 + 256 * 10 + 10),
        ("mlp", {"hidden": (32, 16)}, (40,), 40 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10),
        (
            "cnn",
            {"channels": (4, 8), "hidden": 16},
            (8, 8, 1),
            (9 * 1 * 4 + 4) + (9 * 4 * 8 + 8) + (2 * 2 * 8 * 16 + 16) + (16 * 10 + 10),
        ),
    ],
)
def test_parameter_counts_and_logit_shapes(name, options, input_shape, expected):
    model = build_model(name, input_shape=input_shape, num_classes=10, **options)
    params = model.init(jax.random.key(0))
    assert count(params) == expected
    logits = jax.jit(model.apply)(params, jnp.ones((5, *input_shape)))
    assert logits.shape == (5, 10)


def test_init_is_keyed_and_vmappable():
    model = build_model("mlp", input_shape=(4,), num_classes=3, hidden=(8,))
    a, b = model.init(jax.random.key(0)), model.init(jax.random.key(1))
    assert not np.allclose(a["dense0"]["kernel"], b["dense0"]["kernel"])
    stacked = jax.vmap(model.init)(jax.random.split(jax.random.key(0), 3))
    assert stacked["dense0"]["kernel"].shape == (3, 4, 8)


def test_loss_is_cross_entropy_and_accuracy_counts():
    model = build_model("logreg", input_shape=(2,), num_classes=2)
    params = {"linear": {"kernel": jnp.zeros((2, 2)), "bias": jnp.asarray([0.0, 1.0])}}
    x, y = jnp.zeros((4, 2)), jnp.asarray([0, 1, 1, 1])
    p1 = 1 / (1 + np.exp(-1.0))
    want = -(np.log(1 - p1) + 3 * np.log(p1)) / 4
    np.testing.assert_allclose(model.loss(params, (x, y)), want, rtol=1e-6)
    assert float(model.accuracy(params, x, y)) == 0.75


def test_unknown_model_and_stateful_module_are_refused():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", input_shape=(2,), num_classes=2)

    class WithBatchNorm(nnx.Module):
        def __init__(self, rngs):
            self.bn = nnx.BatchNorm(2, rngs=rngs)

        def __call__(self, x):
            return self.bn(x)

    with pytest.raises(ValueError, match=r"only hold nnx\.Param"):
        functionalize(WithBatchNorm)
