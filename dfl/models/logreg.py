"""Multinomial logistic regression."""

from __future__ import annotations

import math

import jax
from flax import nnx


class LogisticRegression(nnx.Module):
    """A single linear layer on the flattened input; logits out.

    Args:
      input_shape: shape of one example (flattened inside).
      num_classes: number of output logits.
      rngs: the ``nnx.Rngs`` that initialises the weights.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(math.prod(input_shape), num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear(x.reshape(x.shape[0], -1))
