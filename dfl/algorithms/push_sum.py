"""Stochastic Gradient Push (SGP): push-sum gossip for directed graphs.

On a directed or time-varying graph a node knows its out-degree but not who
sends to it, so it can only split what it sends: ``W`` is column stochastic
(``W_ji`` is the share node ``i`` pushes to ``j``). Mixing with such a ``W``
keeps the sum of the nodes' values but not their average, so every node also
pushes a scalar weight ``w_i`` (initially 1) and evaluates the de-biased
parameters ``z_i = x_i / w_i``. One round (Assran et al. 2019, Algorithm 1):

.. math::

    x_i^{t+½} = x_i^t + \\mathrm{local}(z_i^t) - z_i^t, \\qquad
    x_i^{t+1} = \\sum_j W_{ij} x_j^{t+½}, \\qquad
    w_i^{t+1} = \\sum_j W_{ij} w_j^t, \\qquad
    z_i^{t+1} = x_i^{t+1} / w_i^{t+1},

where ``local(z) − z`` is the update of the local optimizer from ``z`` (for one
``optax.sgd(η)`` step, ``−η ∇f_i(z_i)``, the paper's rule). The message is the
pair ``(x_i, w_i)``; ``Algorithm.params`` returns ``z_i``.

Since ``Σ_i x_i`` moves only by the local updates, at a fixed point
``Σ_i ∇f_i(z_i) = 0``: on ``f_i(x) = ½||x − b_i||²`` the de-biased average is
exactly ``mean(b)`` and every ``z_i`` is within ``O(η)`` of it (exactly at it for a
decaying step). With ``w → π`` (the Perron vector of ``W`` scaled to sum ``n``)
the fixed point is ``z* = η ((I − W) Π + η W)^{-1} W b`` with ``Π = diag(π)``.

A missing message cannot be renormalised over or reused: push-sum conserves the
mass ``Σ_i (x_i, w_i)`` only if every pushed share arrives exactly once, so the
rule is ``WAIT``.

References:
  Assran, Loizou, Ballas, Rabbat, "Stochastic Gradient Push for Distributed Deep
  Learning", ICML 2019. Kempe, Dobra, Gehrke, "Gossip-Based Computation of
  Aggregate Information", FOCS 2003 (push-sum). Nedić, Olshevsky,
  "Distributed Optimization over Time-Varying Directed Graphs", IEEE TAC 2015.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import LocalUpdate


class PushSumState(NamedTuple):
    """Per-node push-sum state.

    Attributes:
      params: the numerator ``x_i`` (biased; not what is evaluated).
      weight: the push-sum weight ``w_i`` (a float32 scalar, initially 1).
      opt_state: the local optimizer's state (never mixed).
    """

    params: Params
    weight: jax.Array
    opt_state: optax.OptState


class PushSumMessage(NamedTuple):
    """What a node pushes: its numerator and its weight (both split by ``W``)."""

    params: Params
    weight: jax.Array


def debias(params: Params, weight: jax.Array) -> Params:
    """``z = x / w`` leaf by leaf, in the dtype of ``x``."""
    return jax.tree.map(lambda x: (x / weight).astype(x.dtype), params)


def push_sum(local: LocalUpdate) -> Algorithm:
    """Stochastic Gradient Push with any optax local optimizer.

    Args:
      local: the local training, run from the de-biased ``z_i`` (the optimizer
        state stays on the node).

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`: column-stochastic W (directed
      graphs), time-varying allowed; a missing message is waited for.
    """

    def init(params: Params, key: jax.Array) -> PushSumState:
        del key
        return PushSumState(params, jnp.ones((), jnp.float32), local.init(params))

    def step(state: PushSumState, batches: Any, key: jax.Array):
        z = debias(state.params, state.weight)
        new, opt_state, loss = local.update(z, state.opt_state, batches, key)
        half = jax.tree.map(lambda x, n, z: x + (n - z), state.params, new, z)
        state = PushSumState(half, state.weight, opt_state)
        return state, PushSumMessage(half, state.weight), {"loss": loss}

    def combine(state: PushSumState, mixed: PushSumMessage) -> PushSumState:
        return PushSumState(mixed.params, mixed.weight.astype(jnp.float32), state.opt_state)

    return Algorithm(
        name="push_sum",
        init=init,
        step=step,
        combine=combine,
        params=lambda state: debias(state.params, state.weight),
        requirements=MixingRequirements(stochastic="column"),
        missing_rule=MissingRule.WAIT,
    )
