"""Multi-layer perceptron with ReLU activations."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax
from flax import nnx


class MLP(nnx.Module):
    """``input → hidden[0] → … → num_classes`` with ReLU between layers.

    Args:
      input_shape: shape of one example (flattened inside).
      num_classes: number of output logits.
      hidden: widths of the hidden layers, e.g. ``(256,)`` for 784-256-10.
      rngs: the ``nnx.Rngs`` that initialises the weights.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        hidden: Sequence[int] = (256,),
        rngs: nnx.Rngs,
    ):
        widths = [math.prod(input_shape), *hidden, num_classes]
        self.num_layers = len(widths) - 1
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            setattr(self, f"dense{i}", nnx.Linear(a, b, rngs=rngs))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for i in range(self.num_layers - 1):
            x = jax.nn.relu(getattr(self, f"dense{i}")(x))
        return getattr(self, f"dense{self.num_layers - 1}")(x)
