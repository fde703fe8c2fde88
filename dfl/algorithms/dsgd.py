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

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import LocalUpdate

Order = Literal["atc", "cta"]


class DSGDState(NamedTuple):
    """Per-node state of adapt-then-combine D-SGD.

    Attributes:
      params: the node's parameters ``x_i``.
      opt_state: the local optimizer's state (never mixed).
    """

    params: Params
    opt_state: optax.OptState


class CTAState(NamedTuple):
    """Per-node state of combine-then-adapt D-SGD.

    Attributes:
      params: the node's parameters ``x_i``.
      opt_state: the local optimizer's state (never mixed).
      update: the pending local update ``local(x_i) − x_i``, added in ``combine``.
    """

    params: Params
    opt_state: optax.OptState
    update: Params


def dsgd(local: LocalUpdate, *, order: Order = "atc") -> Algorithm:
    """D-SGD with the run's local training (any optax optimizer, DP inside).

    Args:
      local: the local training (:func:`~dfl.algorithms.local.local_update`).
      order: ``"atc"`` (adapt then combine) or ``"cta"`` (combine then adapt).

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`. It needs a row-stochastic W,
      allows time-varying W, and renormalises over the heard messages when one
      is missing. Its state is :class:`DSGDState` (ATC) or :class:`CTAState`.
    """
    if order not in ("atc", "cta"):
        raise ValueError(f"D-SGD order must be 'atc' or 'cta', found {order=!r}")
    if order == "cta":
        return _cta(local)

    def init(params: Params, key: jax.Array) -> DSGDState:
        del key
        return DSGDState(params, local.init(params))

    def step(state: DSGDState, batches: Any, key: jax.Array):
        new, opt_state, loss = local.update(state.params, state.opt_state, batches, key)
        return DSGDState(new, opt_state), new, {"loss": loss}

    def combine(state: DSGDState, mixed: Params) -> DSGDState:
        return state._replace(params=mixed)

    return Algorithm(
        name="dsgd",
        init=init,
        step=step,
        combine=combine,
        requirements=MixingRequirements(stochastic="row"),
        missing_rule=MissingRule.RENORMALIZE,
    )


def _cta(local: LocalUpdate) -> Algorithm:
    """Combine-then-adapt D-SGD (see :func:`dsgd`)."""

    def init(params: Params, key: jax.Array) -> CTAState:
        del key
        zeros = jax.tree.map(lambda p: p * 0, params)
        return CTAState(params, local.init(params), zeros)

    def step(state: CTAState, batches: Any, key: jax.Array):
        new, opt_state, loss = local.update(state.params, state.opt_state, batches, key)
        update = jax.tree.map(lambda a, b: a - b, new, state.params)
        return CTAState(state.params, opt_state, update), state.params, {"loss": loss}

    def combine(state: CTAState, mixed: Params) -> CTAState:
        return state._replace(params=jax.tree.map(lambda m, u: m + u, mixed, state.update))

    return Algorithm(
        name="dsgd",
        init=init,
        step=step,
        combine=combine,
        requirements=MixingRequirements(stochastic="row"),
        missing_rule=MissingRule.RENORMALIZE,
    )
