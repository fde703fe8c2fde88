"""CHOCO-SGD: decentralized SGD with compressed gossip.

Every node keeps a public copy ``x̂_i`` of its parameters that all its neighbours
can reconstruct, and gossips only compressed corrections to it. One round at
node ``i`` (Koloskova, Stich, Jaggi 2019, Algorithm 2 "CHOCO-SGD", built on the
CHOCO-Gossip of their Algorithm 1):

.. math::

    x_i^{t+½} = \\mathrm{local}(x_i^t), \\qquad
    q_i^t = Q(x_i^{t+½} - \\hat x_i^t), \\qquad
    \\hat x_j^{t+1} = \\hat x_j^t + q_j^t \\ \\text{(for } j = i \\text{ and every neighbour)},

    x_i^{t+1} = x_i^{t+½} + γ \\sum_j W_{ij} (\\hat x_j^{t+1} - \\hat x_i^{t+1}).

The paper's nodes store a copy ``x̂_j`` per neighbour. dfl keeps aggregates only
(the exchange contract): the node's own ``x̂_i`` and ``s_i = Σ_j W_ij x̂_j``, which
it updates with the mixed corrections, ``s_i ← s_i + Σ_j W_ij q_j``; for a
row-stochastic ``W`` the consensus term is ``s_i − x̂_i``. Both start at zero
(``x̂^0 = 0``, as in the paper), so ``s_i = Σ_j W_ij x̂_j`` holds for any ``W``.
The wire message is the *encoded* ``q_i``; ``decode`` is the compressor's
``decompress``.

``W`` must be static: ``s_i`` sums the corrections with the weights of the rounds
they were sent in, so it equals ``Σ_j W_ij x̂_j`` only if ``W`` never changes. It
must be doubly stochastic so that the consensus step keeps the node average
(the paper further assumes it symmetric, for its rate). A missing ``q_j`` cannot
be renormalised over or reused: ``s_i`` must add every ``q_j`` exactly once or it
drifts from ``Σ_j W_ij x̂_j`` for ever, so the rule is ``WAIT``.

With the identity compressor and ``γ = 1``, ``x̂_i = x_i^{t+½}`` after every round
and CHOCO-SGD is exactly ATC D-SGD. On quadratics its fixed point is that of ATC
D-SGD with the lazy matrix ``(1 − γ) I + γ W`` (at a fixed point ``q = 0``, so
``x̂_i = x_i^{t+½}``).

References:
  Koloskova, Stich, Jaggi, "Decentralized Stochastic Optimization and Gossip
  Algorithms with Compressed Communication", ICML 2019.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements, Params
from dfl.algorithms.local import LocalUpdate
from dfl.compression.base import Compressor
from dfl.compression.identity import identity


class ChocoState(NamedTuple):
    """Per-node CHOCO-SGD state.

    Attributes:
      params: the node's parameters ``x_i`` (``x_i^{t+½}`` between ``step``
        and ``combine``).
      opt_state: the local optimizer's state (never mixed).
      public: the node's public copy ``x̂_i``.
      mixed_public: ``s_i = Σ_j W_ij x̂_j``.
      compressor_state: the compressor's per-node state (its PRNG key, ...).
    """

    params: Params
    opt_state: optax.OptState
    public: Params
    mixed_public: Params
    compressor_state: Any


def choco(
    local: LocalUpdate, *, gamma: float = 1.0, compressor: Compressor | None = None
) -> Algorithm:
    """CHOCO-SGD with any compressor and any optax local optimizer.

    Args:
      local: the local training (:func:`~dfl.algorithms.local.local_update`).
      gamma: the consensus step size ``γ`` in ``(0, 1]``; strong compression
        needs a small one (the paper tunes it, e.g. ``0.01``–``0.5``).
      compressor: the operator ``Q``; ``None`` means ``identity()``.

    Returns:
      The :class:`~dfl.algorithms.base.Algorithm`: static doubly stochastic W;
      a missing message is waited for.
    """
    if not 0 < gamma <= 1:
        raise ValueError(f"choco needs a consensus step 0 < gamma <= 1, found {gamma=}")
    comp = identity() if compressor is None else compressor

    def init(params: Params, key: jax.Array) -> ChocoState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return ChocoState(params, local.init(params), zeros, zeros, comp.init(params, key))

    def step(state: ChocoState, batches: Any, key: jax.Array):
        half, opt_state, loss = local.update(state.params, state.opt_state, batches, key)
        diff = jax.tree.map(lambda x, h: x - h, half, state.public)
        encoded, comp_state = comp.compress(diff, state.compressor_state)
        q = comp.decompress(encoded)
        public = jax.tree.map(lambda h, d: h + d.astype(h.dtype), state.public, q)
        state = ChocoState(half, opt_state, public, state.mixed_public, comp_state)
        return state, encoded, {"loss": loss}

    def combine(state: ChocoState, mixed: Params) -> ChocoState:
        s = jax.tree.map(lambda s, m: s + m.astype(s.dtype), state.mixed_public, mixed)
        params = jax.tree.map(lambda x, s, h: x + gamma * (s - h), state.params, s, state.public)
        return state._replace(params=params, mixed_public=s)

    return Algorithm(
        name="choco",
        init=init,
        step=step,
        combine=combine,
        decode=comp.decompress,
        requirements=MixingRequirements(stochastic="doubly", time_varying=False),
        missing_rule=MissingRule.WAIT,
    )
