"""Quasi-global momentum (QG-DSGDm).

Local momentum drifts apart on heterogeneous data, since each buffer only sees
its own node's gradients. QG-DSGDm (Lin et al. 2021, Algorithm 1) instead builds
the buffer from the node's *model difference after gossip*, which carries the
neighbours' progress: it approximates the momentum of the global model. With
plain SGD of step ``η`` one round at node ``i`` is

.. math::

    x_i^{t+½} = x_i^t - η (β \\hat m_i^{t-1} + g_i(x_i^t)), \\qquad
    x_i^{t+1} = \\sum_j W_{ij} x_j^{t+½},

    \\hat m_i^t = μ \\hat m_i^{t-1} + (1 - μ) \\frac{x_i^t - x_i^{t+1}}{η},

with ``μ = β`` by default (Nesterov: ``g + β(β m̂ + g)`` instead of ``β m̂ + g``).

dfl keeps the buffer in *update units*, ``v̂ = −η m̂``, so that any optax
optimizer ``opt`` can provide the local update ``u = opt(g)``:

.. math::

    x_i \\leftarrow x_i + u_i + β \\hat v_i \\ \\text{(per local step)}, \\qquad
    \\hat v_i \\leftarrow μ \\hat v_i + (1 - μ) \\frac{x_i^{t+1} - x_i^t}{K}.

With ``optax.sgd(η)`` and a constant ``η`` this is exactly the algorithm above
(a learning-rate schedule rescales the buffer by ``η_t / η_{t−1}``, as momentum
applied after the learning rate does). With ``K = local_steps > 1`` the buffer is
held fixed during the local steps and refreshed with the per-step average
difference, as in the authors' code. The refresh from round ``t`` is applied at
the start of round ``t + 1`` (the only time ``x^{t+1}`` and ``K`` are both known
to the node), which leaves the iterates unchanged.

At a fixed point the models stop moving, so ``v̂ = 0``: on quadratics QG-DSGDm
reaches the fixed point of ATC D-SGD with step ``η``.

References:
  Lin, Karimireddy, Stich, Jaggi, "Quasi-Global Momentum: Accelerating
  Decentralized Deep Learning on Heterogeneous Data", ICML 2021.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import LocalUpdate, with_optimizer


class QGMState(NamedTuple):
    """Per-node QG-DSGDm state.

    Attributes:
      params: the node's parameters ``x_i^t``.
      opt_state: the local optimizer's state (never mixed).
      momentum: the quasi-global buffer ``v̂_i`` in update units (never mixed),
        as of the start of the previous round.
      prev_params: ``x_i^{t−1}``, the parameters at the start of the previous
        round (``x_i^0`` initially), from which the buffer is refreshed.
    """

    params: Params
    opt_state: optax.OptState
    momentum: Params
    prev_params: Params


def add_momentum(buf: Params, momentum: float, nesterov: bool) -> optax.GradientTransformation:
    """The stateless transform ``u ↦ u + β v̂`` (Nesterov: ``(1 + β) u + β² v̂``)."""

    def shift(updates: Params, params: Params | None = None) -> Params:
        del params
        if nesterov:  # g + β(β m̂ + g) in update units
            return jax.tree.map(lambda u, v: (1 + momentum) * u + momentum**2 * v, updates, buf)
        return jax.tree.map(lambda u, v: u + momentum * v, updates, buf)

    return optax.stateless(shift)


def qgm(
    local: LocalUpdate,
    *,
    momentum: float = 0.9,
    mu: float | None = None,
    nesterov: bool = False,
) -> Algorithm:
    """QG-DSGDm: D-SGD with a quasi-global momentum buffer (adapt then combine).

    Args:
      local: the local training giving the update ``u = opt(g)``; use an
        optimizer without momentum of its own (e.g. ``optax.sgd(η)``).
      momentum: ``β`` in ``[0, 1)``, the weight of the buffer in each step.
      mu: ``μ`` in ``[0, 1)``, the decay of the buffer's running average of the
        model differences; ``None`` uses ``β`` (the paper's choice).
      nesterov: use the Nesterov direction.

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`: row-stochastic W, time-varying
      allowed, missing messages renormalised (as D-SGD: the buffer is local and
      built from whatever the node's model became).
    """
    mu = momentum if mu is None else mu
    if not 0 <= momentum < 1 or not 0 <= mu < 1:
        raise ValueError(f"qgm needs 0 <= momentum, mu < 1, found {momentum=}, {mu=}")

    def init(params: Params, key: jax.Array) -> QGMState:
        del key
        zeros = jax.tree.map(jnp.zeros_like, params)
        return QGMState(params, local.init(params), zeros, params)

    def step(state: QGMState, batches: Any, key: jax.Array):
        num_steps = jax.tree.leaves(batches)[0].shape[0]
        buf = jax.tree.map(
            lambda v, x, p: mu * v + (1 - mu) * (x - p) / num_steps,
            state.momentum,
            state.params,
            state.prev_params,
        )
        shifted = with_optimizer(
            local, optax.chain(local.optimizer, add_momentum(buf, momentum, nesterov))
        )
        chained = (state.opt_state, optax.EmptyState())
        new, chained, loss = shifted.update(state.params, chained, batches, key)
        opt_state, _ = cast(tuple[Any, optax.EmptyState], chained)
        return QGMState(new, opt_state, buf, state.params), new, {"loss": loss}

    def combine(state: QGMState, mixed: Params) -> QGMState:
        return state._replace(params=mixed)

    return Algorithm(
        name="qgm",
        init=init,
        step=step,
        combine=combine,
        requirements=MixingRequirements(stochastic="row"),
        missing_rule=MissingRule.RENORMALIZE,
    )
