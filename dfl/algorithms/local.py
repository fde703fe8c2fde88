"""Local training: ``local_steps`` optimizer steps on a node's batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Batch, LossFn, Params

GradFn = Callable[[Params, Any, jax.Array], tuple[jax.Array, Params]]
"""``grad_fn(params, batch, key) -> (loss, grads)`` for one batch."""


def value_and_grad(loss_fn: LossFn) -> GradFn:
    """The plain gradient of ``loss_fn`` as a :data:`GradFn` (the key is unused)."""
    vg = jax.value_and_grad(loss_fn)

    def grad_fn(params: Params, batch: Any, key: jax.Array) -> tuple[jax.Array, Params]:
        del key
        return vg(params, batch)

    return grad_fn


def local_updates(
    grad_fn: GradFn,
    optimizer: optax.GradientTransformation,
    params: Params,
    opt_state: optax.OptState,
    batches: Batch,
    key: jax.Array,
) -> tuple[Params, optax.OptState, jax.Array]:
    """Runs one optimizer step per leading entry of ``batches`` (``lax.scan``).

    Args:
      grad_fn: gradient of the local loss on one batch.
      optimizer: the local optax optimizer.
      params: the node's parameters.
      opt_state: the node's optimizer state.
      batches: pytree whose leaves have a leading ``local_steps`` axis.
      key: PRNG key of this node and round; step ``k`` uses ``fold_in(key, k)``.

    Returns:
      ``(params, opt_state, mean_loss)`` after all local steps, where
      ``mean_loss`` averages the losses measured before each step.
    """
    num_steps = jax.tree.leaves(batches)[0].shape[0]

    def one_step(carry, inputs):
        params, opt_state = carry
        batch, k = inputs
        loss, grads = grad_fn(params, batch, jax.random.fold_in(key, k))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        one_step, (params, opt_state), (batches, jnp.arange(num_steps))
    )
    return params, opt_state, jnp.mean(losses)
