"""D² (exact diffusion): decentralized SGD without the data-heterogeneity bias.

D-SGD's fixed point depends on how different the local objectives are. D²
corrects each gossiped model with the previous round's model and update, so the
correction cancels the heterogeneity. With plain SGD of step ``η``
(Tang, Lian, Yan, Zhang, Liu 2018, Algorithm 1):

.. math::

    x^1 = W (x^0 - η g(x^0)), \\qquad
    x^{t+1} = W \\left(2 x^t - x^{t-1} - η g(x^t) + η g(x^{t-1})\\right).

dfl runs the local optimizer for the update ``u_i^t = local(x_i^t) − x_i^t``
(``−η g_i(x_i^t)`` for one ``optax.sgd(η)`` step) and node ``i`` sends

.. math::  m_i^t = x_i^t + (x_i^t - x_i^{t-1}) + (u_i^t - u_i^{t-1}),

with ``x^{−1} = x^0`` and ``u^{−1} = 0`` so that round 0 is the paper's first step.
Summed over nodes, ``Σ_i (x_i^{t+1} − x_i^t) = Σ_i u_i^t``: at a fixed point
``Σ_i u_i(x*) = 0`` and the nodes agree, so on ``f_i(x) = ½||x − b_i||²`` every node
reaches ``mean(b)`` with a constant step. Only SGD-type optimizers keep this.

Requirements: the telescoping needs the same symmetric doubly stochastic ``W``
every round (no directed or time-varying graphs), and the recursion is stable only
if the smallest eigenvalue of ``W`` is greater than ``−1/3`` (the paper's
assumption; ``(I + W)/2`` always satisfies it). dfl accepts ``λ_min(W) ≥ −1/3``:
at equality (e.g. Metropolis–Hastings on an even ring) the oscillating mode still
decays for any step ``η > 0``. A missing message is waited for: the correction
``x^t − x^{t−1}`` assumes every neighbour's message was mixed in every round.

Numerics: D² *integrates* the error of W's column sums (the node sum moves by
``Σ_i u_i`` only if ``1ᵀW = 1ᵀ`` exactly), so the node average drifts by about
``t · ε · |x| / η`` after ``t`` rounds when the float32 column sums are off by ``ε``
(weights such as 1/3 are not exact in float32: on quadratics the error then grows
from ~1e-7 to ~5e-5 over 1000 rounds). D-SGD and gradient tracking do not
accumulate it. Weights exact in binary (½, ¼, ...) or float64 mixing avoid it.

References:
  Tang, Lian, Yan, Zhang, Liu, "D²: Decentralized Training over Decentralized
  Data", ICML 2018. Yuan, Ying, Zhao, Sayed, "Exact Diffusion for Distributed
  Optimization and Learning", IEEE TSP 2019.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import LocalUpdate

MIN_EIGENVALUE = -1.0 / 3.0
"""D²'s stability condition on the smallest eigenvalue of ``W``."""


class D2State(NamedTuple):
    """Per-node D² state.

    Attributes:
      params: the node's parameters ``x_i^t``.
      opt_state: the local optimizer's state (never mixed).
      prev_params: ``x_i^{t−1}`` (``x_i^0`` initially).
      prev_update: ``u_i^{t−1}`` (zeros initially).
    """

    params: Params
    opt_state: optax.OptState
    prev_params: Params
    prev_update: Params


def d2(local: LocalUpdate) -> Algorithm:
    """D² / exact diffusion with the local optimizer's update in place of ``−η g``.

    Args:
      local: the local training; with ``optax.sgd(η)`` as its optimizer this is
        D² (only SGD-type optimizers keep its exactness).

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`: static, symmetric, doubly
      stochastic W with ``λ_min(W) ≥ −1/3``; a missing message is waited for.
    """

    def init(params: Params, key: jax.Array) -> D2State:
        del key
        zeros = jax.tree.map(jnp.zeros_like, params)
        return D2State(params, local.init(params), params, zeros)

    def step(state: D2State, batches: Any, key: jax.Array):
        new, opt_state, loss = local.update(state.params, state.opt_state, batches, key)
        update = jax.tree.map(lambda n, x: n - x, new, state.params)
        message = jax.tree.map(
            lambda x, xp, u, up: x + (x - xp) + (u - up),
            state.params,
            state.prev_params,
            update,
            state.prev_update,
        )
        state = D2State(state.params, opt_state, state.params, update)
        return state, message, {"loss": loss}

    def combine(state: D2State, mixed: Params) -> D2State:
        return state._replace(params=mixed)

    return Algorithm(
        name="d2",
        init=init,
        step=step,
        combine=combine,
        requirements=MixingRequirements(
            stochastic="doubly",
            symmetric=True,
            time_varying=False,
            min_eigenvalue=MIN_EIGENVALUE,
        ),
        missing_rule=MissingRule.WAIT,
    )
