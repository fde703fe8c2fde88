"""Gradient tracking (DIGing / GT-DSGD).

Each node tracks the network-average gradient with an auxiliary variable ``y_i``
and steps along it instead of its own gradient, which removes D-SGD's bias on
heterogeneous data: with a constant step every node reaches the exact optimum of
``Σ_i f_i``. With plain SGD of step ``η``:

.. math::

    x_i^{t+1} = \\sum_j W_{ij} x_j^t - η y_i^t, \\qquad
    y_i^{t+1} = \\sum_j W_{ij} y_j^t + g_i(x_i^{t+1}) - g_i(x_i^t),
    \\qquad y_i^0 = g_i(x_i^0).

A column-stochastic ``W`` keeps ``Σ_i y_i = Σ_i g_i`` (the tracking invariant) and a
row-stochastic one drives consensus, so ``W`` must be doubly stochastic; it may
change between rounds (DIGing's time-varying graphs). One exchange per round
carries the pair ``(x_i, y_i)``.

Per node the tracker correction is taken at the start of the next round, when the
new gradient is known: the state keeps the mixed tracker ``Σ_j W_ij y_j`` and the
previous gradient, and ``step`` forms ``y_i^t = mixed + g_i^t − g_i^{t−1}`` (with
both zero initially, ``y_i^0 = g_i^0``). ``combine`` applies the local optimizer to
the tracked direction: ``x_i ← Σ_j W_ij x_j + opt(y_i)``. Only SGD-type optimizers
(``optax.sgd`` with a constant step, optionally a schedule) keep GT's exactness;
an adaptive or momentum optimizer changes the fixed point. The ``local_steps``
batches of a round form one larger minibatch: ``g_i`` is their mean gradient at
``x_i^t`` (one step per round, as in the papers).

On ``f_i(x) = ½||x − b_i||²`` every node converges to ``mean(b)`` (D-SGD stops at
an ``O(η)`` distance).

References:
  Nedić, Olshevsky, Shi, "Achieving Geometric Convergence for Distributed
  Optimization over Time-Varying Graphs", SIAM J. Optim. 2017 (DIGing).
  Pu, Nedić, "Distributed Stochastic Gradient Tracking Methods", Math.
  Program. 2021 (GT-DSGD / DSGT).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import GradFn, LocalUpdate


class GTState(NamedTuple):
    """Per-node gradient-tracking state.

    Attributes:
      params: the node's parameters ``x_i``.
      opt_state: the local optimizer's state (never mixed).
      tracker: between rounds the mixed tracker ``Σ_j W_ij y_j``; between
        ``step`` and ``combine`` the node's own ``y_i``.
      prev_grad: the gradient ``g_i`` of the previous round (zeros initially).
    """

    params: Params
    opt_state: optax.OptState
    tracker: Params
    prev_grad: Params


class GTMessage(NamedTuple):
    """What a node sends: its parameters and its tracker."""

    params: Params
    tracker: Params


def mean_gradient(
    grad_fn: GradFn, params: Params, batches: Any, key: jax.Array
) -> tuple[jax.Array, Params]:
    """The mean loss and gradient at ``params`` over the leading axis of ``batches``.

    Args:
      grad_fn: gradient of the local loss on one batch.
      params: where the gradients are taken.
      batches: pytree whose leaves have a leading ``local_steps`` axis.
      key: PRNG key; batch ``k`` uses ``fold_in(key, k)``.

    Returns:
      ``(mean_loss, mean_grad)``.
    """
    num = jax.tree.leaves(batches)[0].shape[0]

    def body(total, inputs):
        batch, k = inputs
        loss, grads = grad_fn(params, batch, jax.random.fold_in(key, k))
        return jax.tree.map(jnp.add, total, grads), loss

    zeros = jax.tree.map(jnp.zeros_like, params)
    total, losses = jax.lax.scan(body, zeros, (batches, jnp.arange(num)))
    return jnp.mean(losses), jax.tree.map(lambda t: t / num, total)


def gradient_tracking(local: LocalUpdate) -> Algorithm:
    """Gradient tracking (DIGing / GT-DSGD) with one exchange of ``(x, y)`` per round.

    Args:
      local: the local training: its gradient ``local.grad`` gives ``g_i`` and
        its optimizer is applied to the tracked direction ``y``; ``optax.sgd(η)``
        gives DIGing (only SGD-type optimizers keep the exact consensus).

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`: doubly stochastic W,
      time-varying allowed; a missing message is waited for (dropping or
      reusing one breaks ``Σ_i y_i = Σ_i g_i``).
    """
    optimizer = local.optimizer

    def init(params: Params, key: jax.Array) -> GTState:
        del key
        zeros = jax.tree.map(jnp.zeros_like, params)
        return GTState(params, optimizer.init(params), zeros, zeros)

    def step(state: GTState, batches: Any, key: jax.Array):
        loss, grads = mean_gradient(local.grad, state.params, batches, key)
        tracker = jax.tree.map(lambda y, g, h: y + (g - h), state.tracker, grads, state.prev_grad)
        state = state._replace(tracker=tracker, prev_grad=grads)
        return state, GTMessage(state.params, tracker), {"loss": loss}

    def combine(state: GTState, mixed: GTMessage) -> GTState:
        updates, opt_state = optimizer.update(state.tracker, state.opt_state, state.params)
        params = optax.apply_updates(mixed.params, updates)
        return GTState(params, opt_state, mixed.tracker, state.prev_grad)

    return Algorithm(
        name="gradient_tracking",
        init=init,
        step=step,
        combine=combine,
        requirements=MixingRequirements(stochastic="doubly"),
        missing_rule=MissingRule.WAIT,
    )
