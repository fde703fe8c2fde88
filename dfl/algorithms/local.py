"""Local training: the one local-update function every algorithm builder takes.

A run builds its local training once (:func:`local_update`: the local optax
optimizer and the gradient, DP-SGD's clipping and noise inside it) and hands the
resulting :class:`LocalUpdate` to the algorithm builder. Like optax's
``GradientTransformation`` it is a pair of pure functions::

    opt_state = local.init(params)
    params, opt_state, loss = local.update(params, opt_state, batches, key)

``update`` takes one optimizer step per leading entry of ``batches`` (the
``local_steps`` of a round). The two pieces it is made of stay readable for the
algorithms that step differently: ``local.grad`` (gradient tracking takes the mean
gradient of a round without stepping) and ``local.optimizer`` (DSGDm and QG-DSGDm
chain their momentum around it with :func:`with_optimizer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Batch, LossFn, Params

GradFn = Callable[[Params, Any, jax.Array], tuple[jax.Array, Params]]
"""``grad(params, batch, key) -> (loss, grads)`` for one batch."""


class LocalUpdate(NamedTuple):
    """A node's local training, built once per run.

    Attributes:
      init: ``init(params) -> opt_state``: the local optimizer's state.
      update: ``update(params, opt_state, batches, key) -> (params, opt_state,
        mean_loss)``: one optimizer step per leading entry of ``batches``; step
        ``k`` uses the key ``fold_in(key, k)``; ``mean_loss`` averages the losses
        measured before each step.
      grad: the gradient of one batch (DP-SGD's clipped, noised one under privacy).
      optimizer: the local optax optimizer.
    """

    init: Callable[[Params], optax.OptState]
    update: Callable[
        [Params, optax.OptState, Batch, jax.Array], tuple[Params, optax.OptState, jax.Array]
    ]
    grad: GradFn
    optimizer: optax.GradientTransformation


def value_and_grad(loss_fn: LossFn) -> GradFn:
    """The plain gradient of ``loss_fn(params, batch) -> scalar`` (the key is unused)."""
    vg = jax.value_and_grad(loss_fn)

    def grad(params: Params, batch: Any, key: jax.Array) -> tuple[jax.Array, Params]:
        del key
        return vg(params, batch)

    return grad


def local_update(optimizer: optax.GradientTransformation, grad: GradFn) -> LocalUpdate:
    """The :class:`LocalUpdate` taking ``optimizer`` steps along ``grad``.

    Args:
      optimizer: the local optax optimizer (its state stays on the node).
      grad: the gradient of one batch, e.g. :func:`value_and_grad` of the model's
        loss or DP-SGD's :func:`dfl.privacy.private_grad_fn`.

    Examples:
      >>> local = local_update(optax.sgd(0.1), value_and_grad(model.loss))
      >>> algorithm = dsgd(local)
    """

    def update(
        params: Params, opt_state: optax.OptState, batches: Batch, key: jax.Array
    ) -> tuple[Params, optax.OptState, jax.Array]:
        num_steps = jax.tree.leaves(batches)[0].shape[0]

        def one_step(carry, inputs):
            params, opt_state = carry
            batch, k = inputs
            loss, grads = grad(params, batch, jax.random.fold_in(key, k))
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            one_step, (params, opt_state), (batches, jnp.arange(num_steps))
        )
        return params, opt_state, jnp.mean(losses)

    return LocalUpdate(optimizer.init, update, grad, optimizer)


def with_optimizer(local: LocalUpdate, optimizer: optax.GradientTransformation) -> LocalUpdate:
    """``local`` with another optimizer and the same gradient (DP kept).

    Examples:
      >>> # heavy ball before the base optimizer; the buffer is opt_state[0].trace
      >>> momentum = with_optimizer(local, optax.chain(optax.trace(0.9), local.optimizer))
    """
    return local_update(optimizer, local.grad)
