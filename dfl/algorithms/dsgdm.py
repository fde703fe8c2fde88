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
al. (2021, the baseline of their Algorithm 1) and equals D-SGD with
``optax.sgd(η, momentum=β, nesterov=...)``, whose buffer sits inside the optax
state. ``dsgdm`` is the explicit variant: the local steps run
``optax.chain(optax.trace(β), opt)`` and the buffer is a named field of the
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

from typing import Any, NamedTuple, cast

import jax
import optax

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import LocalUpdate, with_optimizer


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


def dsgdm(local: LocalUpdate, *, momentum: float = 0.9, nesterov: bool = False) -> Algorithm:
    """D-SGD with a local momentum buffer that is never mixed (adapt then combine).

    Args:
      local: the local training; its optimizer is the base one applied to the
        momentum direction: use one without momentum of its own (e.g. ``optax.sgd(η)``).
      momentum: the buffer decay ``β`` in ``[0, 1)``.
      nesterov: use Nesterov's direction ``g + β m`` instead of ``m``.

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`: row-stochastic W, time-varying
      allowed, missing messages renormalised (as D-SGD).
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"dsgdm needs 0 <= momentum < 1, found {momentum=}")
    heavy_ball = with_optimizer(
        local, optax.chain(optax.trace(decay=momentum, nesterov=nesterov), local.optimizer)
    )

    def init(params: Params, key: jax.Array) -> DSGDmState:
        del key
        trace, opt_state = cast(tuple[optax.TraceState, Any], heavy_ball.init(params))
        return DSGDmState(params, opt_state, trace.trace)

    def step(state: DSGDmState, batches: Any, key: jax.Array):
        chained = (optax.TraceState(trace=state.momentum), state.opt_state)
        new, chained, loss = heavy_ball.update(state.params, chained, batches, key)
        trace, opt_state = cast(tuple[optax.TraceState, Any], chained)
        return DSGDmState(new, opt_state, trace.trace), new, {"loss": loss}

    def combine(state: DSGDmState, mixed: Params) -> DSGDmState:
        return state._replace(params=mixed)

    return Algorithm(
        name="dsgdm",
        init=init,
        step=step,
        combine=combine,
        requirements=MixingRequirements(stochastic="row"),
        missing_rule=MissingRule.RENORMALIZE,
    )
