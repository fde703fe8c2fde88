"""A small convolutional network for ``[H, W, C]`` images."""

from __future__ import annotations

import jax
from flax import nnx


class CNN(nnx.Module):
    """Two 3×3 conv + 2×2 average-pool blocks, then a dense head.

    Args:
      input_shape: ``(H, W, C)`` of one image.
      num_classes: number of output logits.
      channels: output channels of the two conv layers.
      hidden: width of the dense layer before the logits.
      rngs: the ``nnx.Rngs`` that initialises the weights.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 64,
        rngs: nnx.Rngs,
    ):
        if len(input_shape) != 3:
            raise ValueError(f"CNN expects images of shape (H, W, C), found {input_shape=}")
        h, w, c = input_shape
        self.conv1 = nnx.Conv(c, channels[0], kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(channels[0], channels[1], kernel_size=(3, 3), rngs=rngs)
        flat = (h // 4) * (w // 4) * channels[1]
        self.dense = nnx.Linear(flat, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.avg_pool(jax.nn.relu(self.conv1(x)), window_shape=(2, 2), strides=(2, 2))
        x = nnx.avg_pool(jax.nn.relu(self.conv2(x)), window_shape=(2, 2), strides=(2, 2))
        x = jax.nn.relu(self.dense(x.reshape(x.shape[0], -1)))
        return self.head(x)
