"""The one-peer mixer: ``out_i = a_i x_i + b_i x_{p(i)}`` (one-peer graphs, matchings)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.blocking import Block, RoundData, mix_rows, to_device, weight_dtype
from dfl.gossip.structure import diagonal, off_diagonal_entries, off_diagonal_in_degree
from dfl.topology.schedule import MixingSchedule


def one_peer_data(W) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(self_weight [n], peer_weight [n], peer [n])`` of a ``W`` with <= 1 peer per row.

    Rows without a peer get ``peer = i`` and ``peer_weight = 0``.

    Raises:
      ValueError: if some row has two or more off-diagonal non-zeros.
    """
    n = W.shape[0]
    degree = off_diagonal_in_degree(W)
    if degree.max(initial=0) > 1:
        i = int(np.argmax(degree))
        raise ValueError(
            f"one-peer mixer: node {i} hears {int(degree[i])} peers in one round (expected <= 1)"
        )
    dst, src, w = off_diagonal_entries(W)
    peer = np.arange(n, dtype=np.int32)
    peer_weight = np.zeros(n)
    peer[dst] = src
    peer_weight[dst] = w
    return diagonal(W), peer_weight, peer


class PermutationMixer:
    """Mixes rounds where every node hears at most one peer with a single gather.

    ``out_i = a_i x_i + b_i x_{p(i)}``: for one-peer exponential rounds ``p`` is a
    cyclic shift, for a matching an involution. Cost ``N · P``. The data
    ``{"self": [N], "peer_weight": [N], "peer": int32 [N]}`` changes every round
    without recompiling.

    Args:
      schedule: a schedule whose rounds have in-degree <= 1 (random schedules must
        promise it with ``GraphSchedule.one_peer``).
      block: columns per block, ``"auto"`` (blocked and in place on a single CPU
        device, see :func:`~dfl.gossip.blocking.mix_rows`) or ``None``.
    """

    form = "permutation"

    def __init__(self, schedule: MixingSchedule, *, block: Block = "auto"):
        if schedule.period is None and not schedule.graphs.one_peer:
            raise ValueError(
                f"permutation mixer: random schedule {schedule.name!r} does not promise one "
                "peer per round (GraphSchedule.one_peer)"
            )
        self.schedule = schedule
        self.n = schedule.n
        self.block: Block = block
        self._data = RoundData(schedule.period, self._make)

    def _make(self, round: int) -> dict[str, jax.Array]:
        a, b, p = one_peer_data(self.schedule.stored(round))
        dtype = weight_dtype()
        return {
            "self": to_device(a, dtype),
            "peer_weight": to_device(b, dtype),
            "peer": jnp.asarray(p),
        }

    def data(self, round: int) -> dict[str, jax.Array]:
        """The round's self weights, peer weights and peer indices."""
        return self._data(round)

    def apply(self, tree: Any, data: dict[str, jax.Array]) -> Any:
        """``a_i x_i + b_i x_{p(i)}`` for every leaf (pure, jittable)."""

        def mix(x: jax.Array) -> jax.Array:
            a = data["self"].astype(x.dtype)[:, None]
            b = data["peer_weight"].astype(x.dtype)[:, None]
            return a * x + b * jnp.take(x, data["peer"], axis=0)

        return jax.tree.map(lambda x: mix_rows(x, mix, self.block), tree)
