"""The dense mixer: ``out = W @ x`` over the node axis with one tensordot per leaf."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dfl.gossip.blocking import Block, RoundData, mix_rows, to_device, weight_dtype
from dfl.topology.schedule import MixingSchedule


def renormalize(W: jax.Array, delivered: jax.Array) -> jax.Array:
    """``W`` under the ``RENORMALIZE`` rule for the delivery mask ``delivered``.

    .. math::  W'_{ij} = W_{ij} d_{ij} \\ (j ≠ i), \\qquad
               W'_{ii} = W_{ii} + \\sum_{j ≠ i} W_{ij} (1 − d_{ij})

    Each undelivered message's weight moves to the receiver's own message, so row
    sums are kept. Pure and jittable.

    Args:
      W: ``[N, N]`` weights.
      delivered: bool ``[N, N]``, ``delivered[i, j]``: ``j``'s message reached ``i``
        (the diagonal is ignored: a node always has its own message).
    """
    keep = jnp.asarray(delivered, bool) | jnp.eye(W.shape[-1], dtype=bool)
    kept = jnp.where(keep, W, jnp.zeros_like(W))
    return kept + jnp.diag(jnp.sum(W - kept, axis=-1))


class DenseMixer:
    """Mixes with the full ``[N, N]`` matrix: always correct, cost ``N² · P``.

    ``apply(tree, data)[i] = Σ_j W_ij tree[j]`` for every leaf, computed in at least
    float32 (``Precision.HIGHEST``) and cast back to the leaf's dtype.

    Args:
      schedule: the mixing schedule.
      block: columns per block (see :func:`~dfl.gossip.blocking.mix_rows`); ``"auto"``
        and ``None`` mix each leaf with one matmul (the product is compute bound, and
        blocking small ``N`` only adds per-block matmul calls).

    Examples:
      >>> mixer = DenseMixer(schedule)
      >>> mixed = jax.jit(mixer.apply)(tree, mixer.data(round))
    """

    form = "dense"

    def __init__(self, schedule: MixingSchedule, *, block: Block = "auto"):
        self.schedule = schedule
        self.n = schedule.n
        self.block: Block = block
        self._data = RoundData(
            schedule.period,
            lambda t: {"W": to_device(self.schedule.weights(t), weight_dtype())},
        )

    def data(self, round: int) -> dict[str, jax.Array]:
        """The round's weights as data: ``{"W": [N, N]}``."""
        return self._data(round)

    def apply(
        self, tree: Any, data: dict[str, jax.Array], *, delivered: jax.Array | None = None
    ) -> Any:
        """``Σ_j W_ij tree_j`` for every node ``i`` and every leaf (pure, jittable).

        ``delivered`` (bool ``[N, N]``) drops the messages that did not arrive and
        renormalises (:func:`renormalize`); ``None``: every message arrived.
        """
        W = data["W"] if delivered is None else renormalize(data["W"], delivered)

        def mix(x: jax.Array) -> jax.Array:
            return jnp.tensordot(
                W.astype(x.dtype), x, axes=(1, 0), precision=jax.lax.Precision.HIGHEST
            )

        block = None if self.block == "auto" else self.block
        return jax.tree.map(lambda x: mix_rows(x, mix, block), tree)
