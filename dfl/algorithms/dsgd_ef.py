"""D-SGD with compressed gossip and error feedback (DeepSqueeze).

Every node compresses the model it gossips, adding back what compression
dropped in earlier rounds (classic error feedback,
:func:`dfl.compression.error_feedback`), and moves by γ towards the mix of
its neighbours' compressed models. One round (adapt then combine):

.. math::

    x_i^{+} &= \\mathrm{local}(x_i)                                 && \\text{local steps} \\\\
    m_i &= C(x_i^{+} + e_i), \\quad e_i \\leftarrow x_i^{+} + e_i - D(m_i) && \\text{the wire} \\\\
    x_i &\\leftarrow x_i^{+} + \\gamma \\Big(\\sum_j W_{ij} D(m_j) - D(m_i)\\Big).

What is compressed is the whole model each node broadcasts, error-compensated:
the residual e_i (what C has not sent yet) is added to the next message. Unlike
CHOCO-SGD (:mod:`dfl.algorithms.choco`), nodes keep no public copies or
aggregates of their neighbours — the state is the model, the optimizer state and
the residual — so a message that misses its deadline can simply be left out
(renormalise: its weight moves to the node's own D(m_i), whose term cancels), and
W may change every round. The price is an error floor set by the compressor:
CHOCO converges to D-SGD's fixed point exactly, DeepSqueeze only near it.

With the identity compressor, e_i = 0 and x_i = Σ_j ((1 − γ) I + γ W)_ij x_j⁺:
D-SGD (ATC) with the lazy matrix, and exactly D-SGD at γ = 1. Strong compression
needs a small γ (the paper's η).

References:
  Tang, Lian, Qiu, Yuan, Zhang, Zhang, Liu, "DeepSqueeze: Decentralization Meets
  Error-Compensated Compression", arXiv:1907.07346, 2019 (Algorithm 1).
  Lian et al., "Can Decentralized Algorithms Outperform Centralized Algorithms?", NeurIPS 2017.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import LocalUpdate
from dfl.compression.base import Compressor
from dfl.compression.error_feedback import ErrorFeedbackState, error_feedback
from dfl.compression.identity import identity


class DSGDEFState(NamedTuple):
    """Per-node state of :func:`dsgd_ef`.

    Attributes:
      params: x_i (after ``combine``) or x_i⁺ (between ``step`` and ``combine``).
      opt_state: the local optimizer's state (never mixed).
      compressor: the error-feedback state: the residual e_i and the inner
        compressor's state (its own PRNG key, warm starts).
      sent: D(m_i), the node's own decoded message of this round (subtracted
        in ``combine``).
    """

    params: Params
    opt_state: optax.OptState
    compressor: ErrorFeedbackState
    sent: Params


def dsgd_ef(
    local: LocalUpdate, *, compressor: Compressor | None = None, gamma: float = 1.0
) -> Algorithm:
    """D-SGD whose gossiped models are compressed with error feedback (DeepSqueeze).

    Args:
      local: the local training (:func:`~dfl.algorithms.local.local_update`).
      compressor: the compressor C of the broadcast models; ``None`` is the
        identity (then this is D-SGD with the lazy matrix (1 − γ)I + γW).
      gamma: γ in (0, 1], the consensus step.

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm` ``"dsgd_ef"``: its wire is the
      encoded C(x_i⁺ + e_i) and ``decode`` the compressor's decoder. It needs a
      row-stochastic W (time-varying allowed) and renormalises over the heard
      messages. ``info`` adds ``"residual"``, ‖e_i‖ after sending.
    """
    if not 0 < gamma <= 1:
        raise ValueError(f"dsgd_ef needs 0 < gamma <= 1, found {gamma=}")
    ef = error_feedback(identity() if compressor is None else compressor)

    def init(params: Params, key: jax.Array) -> DSGDEFState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return DSGDEFState(params, local.init(params), ef.init(params, key), zeros)

    def step(state: DSGDEFState, batches: Any, key: jax.Array):
        new, opt_state, loss = local.update(state.params, state.opt_state, batches, key)
        wire, comp_state = ef.compress(new, state.compressor)
        state = DSGDEFState(new, opt_state, comp_state, ef.decompress(wire))
        return state, wire, {"loss": loss, "residual": optax.tree.norm(comp_state.residual)}

    def combine(state: DSGDEFState, mixed: Params) -> DSGDEFState:
        params = jax.tree.map(
            lambda x, m, s: x + gamma * (m - s).astype(x.dtype), state.params, mixed, state.sent
        )
        return state._replace(params=params)

    return Algorithm(
        name="dsgd_ef",
        init=init,
        step=step,
        combine=combine,
        decode=ef.decompress,
        requirements=MixingRequirements(stochastic="row"),
        missing_rule=MissingRule.RENORMALIZE,
    )
