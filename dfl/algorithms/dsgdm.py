"""D-SGD with local momentum (DSGDm).

Every node keeps its own heavy-ball buffer ``m_i``, which is never mixed. Each of
the ``local_steps`` steps on node ``i`` is

.. math::

    m_i \\leftarrow \\beta m_i + g_i(x_i), \\qquad
    d_i = m_i \\ (\\text{heavy ball}) \\ \\text{or}\\ g_i(x_i) + \\beta m_i \\ (\\text{Nesterov}),
    \\qquad x_i \\leftarrow x_i + \\mathrm{opt}(d_i),

and the round ends with the gossip of the parameters (adapt then combine):
:math:`x_i \\leftarrow \\sum_j W_{ij} x_j`. ``opt`` is the local optax optimizer
applied to the momentum direction; with ``optax.sgd(η)`` this is DSGDm of Lin et
al. (2021, the baseline of their Algorithm 1) and equals
``dsgd(optax.sgd(η, momentum=β, nesterov=...))``, whose buffer sits inside the
optax state. ``dsgdm`` is the explicit variant: the buffer is a named field of the
state, so it can be inspected, checkpointed and kept apart from the base optimizer.

On ``f_i(x) = ½||x − b_i||²`` with ``optax.sgd(η)`` the stationary buffer is
``m_i = g_i / (1 − β)``, so the fixed point is that of ATC D-SGD with step
``η / (1 − β)``: ``x* = η' (I − (1 − η') W)^{-1} W b`` with ``η' = η / (1 − β)``.

References:
  Yu, Jin, Yang, "On the Linear Speedup Analysis of Communication Efficient
  Momentum SGD for Distributed Non-Convex Optimization", ICML 2019.
  Lin, Karimireddy, Stich, Jaggi, "Quasi-Global Momentum: Accelerating
  Decentralized Deep Learning on Heterogeneous Data", ICML 2021.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Algorithm, LossFn, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import GradFn, value_and_grad


class DSGDmState(NamedTuple):
    """Per-node DSGDm state.

    Attributes:
      params: the node's parameters ``x_i``.
      opt_state: the base optimizer's state (never mixed).
      momentum: the local heavy-ball buffer ``m_i`` (never mixed).
    """

    params: Params
    opt_state: optax.OptState
    momentum: Params


def momentum_updates(
    grad_fn: GradFn,
    optimizer: optax.GradientTransformation,
    state: DSGDmState,
    batches: Any,
    key: jax.Array,
    *,
    momentum: float,
    nesterov: bool,
) -> tuple[DSGDmState, jax.Array]:
    """Runs one local heavy-ball (or Nesterov) step per leading entry of ``batches``.

    Args:
      grad_fn: gradient of the local loss on one batch.
      optimizer: the base optimizer, applied to the momentum direction.
      state: the node's state before the local steps.
      batches: pytree whose leaves have a leading ``local_steps`` axis.
      key: PRNG key of this node and round; step ``k`` uses ``fold_in(key, k)``.
      momentum: the decay ``β`` of the buffer.
      nesterov: use the Nesterov direction ``g + β m``.

    Returns:
      ``(state, mean_loss)`` after all local steps.
    """
    num_steps = jax.tree.leaves(batches)[0].shape[0]

    def one_step(state: DSGDmState, inputs):
        batch, k = inputs
        loss, grads = grad_fn(state.params, batch, jax.random.fold_in(key, k))
        buf = jax.tree.map(lambda m, g: momentum * m + g, state.momentum, grads)
        direction = jax.tree.map(lambda g, m: g + momentum * m, grads, buf) if nesterov else buf
        updates, opt_state = optimizer.update(direction, state.opt_state, state.params)
        return DSGDmState(optax.apply_updates(state.params, updates), opt_state, buf), loss

    state, losses = jax.lax.scan(one_step, state, (batches, jnp.arange(num_steps)))
    return state, jnp.mean(losses)


def dsgdm(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    grad_fn: GradFn | None = None,
) -> Algorithm:
    """D-SGD with a local momentum buffer that is never mixed (adapt then combine).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      optimizer: the base optimizer applied to the momentum direction; use one
        without momentum of its own (e.g. ``optax.sgd(η)``).
      momentum: the buffer decay ``β`` in ``[0, 1)``.
      nesterov: use Nesterov's direction ``g + β m`` instead of ``m``.
      grad_fn: replaces ``jax.value_and_grad(loss_fn)`` (e.g. DP-SGD clipping).

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`: row-stochastic W, time-varying
      allowed, missing messages renormalised (as D-SGD).
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"dsgdm needs 0 <= momentum < 1, found {momentum=}")
    grad_fn = grad_fn or value_and_grad(loss_fn)

    def init(params: Params, key: jax.Array) -> DSGDmState:
        del key
        return DSGDmState(params, optimizer.init(params), jax.tree.map(jnp.zeros_like, params))

    def step(state: DSGDmState, batches: Any, key: jax.Array):
        state, loss = momentum_updates(
            grad_fn, optimizer, state, batches, key, momentum=momentum, nesterov=nesterov
        )
        return state, state.params, {"loss": loss}

    def combine(state: DSGDmState, mixed: Params) -> DSGDmState:
        return state._replace(params=mixed)

    return Algorithm(
        name="dsgdm",
        init=init,
        step=step,
        decode=lambda wire: wire,
        combine=combine,
        params=lambda state: state.params,
        requirements=MixingRequirements(stochastic="row"),
        missing_rule=MissingRule.RENORMALIZE,
    )
