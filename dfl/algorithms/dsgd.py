"""Decentralized SGD (D-SGD / D-PSGD) in both orders.

Adapt-then-combine (ATC, Sayed 2014; the "D-PSGD" of Lian et al. 2017 as most
code runs it) takes the local steps first and gossips the result:

.. math::  x_i^{t+1} = \\sum_j W_{ij} \\, \\mathrm{local}(x_j^t)

Combine-then-adapt (CTA, Nedić & Ozdaglar 2009; Lian et al. 2017 Algorithm 1)
gossips the current parameters and adds the local update computed from them:

.. math::  x_i^{t+1} = \\sum_j W_{ij} x_j^t + (\\mathrm{local}(x_i^t) - x_i^t)

With one plain SGD step of size η on ``f_i(x) = ½||x − b_i||²`` the fixed points
are ``x* = η (I − (1 − η) W)^{-1} W b`` (ATC) and ``x* = η ((1 + η) I − W)^{-1} b``
(CTA), per coordinate.

References:
  Lian et al., "Can Decentralized Algorithms Outperform Centralized Algorithms?", NeurIPS 2017.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import optax

from dfl.algorithms.base import Algorithm, LossFn, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import GradFn, local_updates, value_and_grad

Order = Literal["atc", "cta"]


class DSGDState(NamedTuple):
    """Per-node D-SGD state.

    Attributes:
      params: the node's parameters ``x_i``.
      opt_state: the local optimizer's state (never mixed).
      update: CTA only: the pending local update ``local(x_i) − x_i`` added in
        ``combine`` (zeros for ATC, kept so both orders share one state type).
    """

    params: Params
    opt_state: optax.OptState
    update: Params


def dsgd(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    order: Order = "atc",
    grad_fn: GradFn | None = None,
) -> Algorithm:
    """D-SGD with any optax optimizer as the local optimizer.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      optimizer: the local optimizer (its state stays on the node).
      order: ``"atc"`` (adapt then combine) or ``"cta"`` (combine then adapt).
      grad_fn: replaces ``jax.value_and_grad(loss_fn)`` (e.g. DP-SGD clipping).

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`. It needs a row-stochastic W,
      allows time-varying W, and renormalises over the heard messages when one
      is missing.
    """
    if order not in ("atc", "cta"):
        raise ValueError(f"D-SGD order must be 'atc' or 'cta', found {order=!r}")
    grad_fn = grad_fn or value_and_grad(loss_fn)

    def init(params: Params, key: jax.Array) -> DSGDState:
        del key
        zeros = jax.tree.map(lambda p: p * 0, params)
        return DSGDState(params, optimizer.init(params), zeros)

    def step(state: DSGDState, batches: Any, key: jax.Array):
        new, opt_state, loss = local_updates(
            grad_fn, optimizer, state.params, state.opt_state, batches, key
        )
        if order == "atc":
            return DSGDState(new, opt_state, state.update), new, {"loss": loss}
        update = jax.tree.map(lambda a, b: a - b, new, state.params)
        return DSGDState(state.params, opt_state, update), state.params, {"loss": loss}

    def combine(state: DSGDState, mixed: Params) -> DSGDState:
        if order == "atc":
            return state._replace(params=mixed)
        return state._replace(params=jax.tree.map(lambda m, u: m + u, mixed, state.update))

    return Algorithm(
        name="dsgd",
        init=init,
        step=step,
        decode=lambda wire: wire,
        combine=combine,
        params=lambda state: state.params,
        requirements=MixingRequirements(stochastic="row"),
        missing_rule=MissingRule.RENORMALIZE,
    )
