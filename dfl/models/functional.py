"""Turn an nnx module into pure functions over a params pytree."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class FunctionalModel:
    """One graphdef shared by every node, and pure functions over its params.

    Params are the module's ``nnx.Param`` leaves as a pure dict of arrays, so
    they stack on a leading node axis, serialise as plain arrays, and are what
    gossip mixes.

    Attributes:
      graphdef: the static structure of the module.
      init: ``init(key) -> params``.
      apply: ``apply(params, x) -> logits`` for a batch ``x``.
    """

    graphdef: Any
    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]

    def loss(self, params: Params, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
        """Mean softmax cross-entropy of ``params`` on ``batch = (x, y)``."""
        x, y = batch
        logits = self.apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def accuracy(self, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        """Fraction of ``x`` classified as ``y``."""
        return jnp.mean(jnp.argmax(self.apply(params, x), axis=-1) == y)


def functionalize(make: Callable[[nnx.Rngs], nnx.Module]) -> FunctionalModel:
    """Builds a :class:`FunctionalModel` from ``make(rngs) -> module``.

    The module must hold only ``nnx.Param`` state (no batch statistics or RNG
    streams), which is true of every model in :mod:`dfl.models`.
    """
    graphdef, _, rest = nnx.split(make(nnx.Rngs(0)), nnx.Param, ...)
    if jax.tree.leaves(rest):
        raise ValueError(
            f"dfl models may only hold nnx.Param state (no batch stats, no RNGs), found {rest}"
        )

    def init(key: jax.Array) -> Params:
        return nnx.to_pure_dict(nnx.state(make(nnx.Rngs(params=key)), nnx.Param))

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, params, rest)(x)

    return FunctionalModel(graphdef=graphdef, init=init, apply=apply)
