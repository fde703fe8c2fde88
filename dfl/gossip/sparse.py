"""The sparse mixer: padded neighbour lists, one gather per neighbour slot."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.blocking import Block, RoundData, mix_rows, to_device, weight_dtype
from dfl.gossip.structure import (
    diagonal,
    off_diagonal_entries,
    off_diagonal_in_degree,
    period_matrices,
)
from dfl.topology.schedule import MixingSchedule


def neighbour_lists(W, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(self [n], index int32 [n, width], weight [n, width])`` of ``W``'s rows.

    Row ``i`` lists its off-diagonal non-zeros (ascending), padded with
    ``index = i, weight = 0``. ``W`` dense or ``scipy.sparse``.
    """
    n = W.shape[0]
    index = np.tile(np.arange(n, dtype=np.int32)[:, None], (1, width))
    weight = np.zeros((n, width))
    dst, src, w = off_diagonal_entries(W)
    counts = np.bincount(dst, minlength=n)
    if counts.max(initial=0) > width:
        i = int(np.argmax(counts))
        raise ValueError(f"sparse mixer: node {i} has {int(counts[i])} peers > width {width}")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(dst)) - starts[dst]
    index[dst, slot] = src
    weight[dst, slot] = w
    return diagonal(W), index, weight


class SparseMixer:
    """Mixes general sparse graphs: ``out_i = W_ii x_i + Σ_k w_ik x_{idx_ik}``.

    Every node's in-neighbours are a fixed-width padded list (width ``K`` = the
    largest in-degree over the period); ``apply`` does ``K`` gathers of ``[N, ...]``
    and multiply-adds, cost ``K · N · P`` and memory ``O(N · P)``, independent of
    ``N²``. The data ``{"self": [N], "index": int32 [N, K], "weight": [N, K]}`` keeps
    its shapes across rounds.

    Args:
      schedule: a periodic schedule (random schedules need ``width``).
      width: neighbour slots ``K``; default the largest in-degree over the period.
      block: columns per block, ``"auto"`` (blocked and in place on a single CPU
        device, see :func:`~dfl.gossip.blocking.mix_rows`) or ``None``.
    """

    form = "sparse"

    def __init__(
        self, schedule: MixingSchedule, *, width: int | None = None, block: Block = "auto"
    ):
        self.schedule = schedule
        self.n = schedule.n
        self.block: Block = block
        mats = period_matrices(schedule)
        if width is None:
            if mats is None:
                raise ValueError(
                    f"sparse mixer: random schedule {schedule.name!r} needs an explicit width"
                )
            width = max(int(off_diagonal_in_degree(W).max(initial=0)) for W in mats)
        self.width = max(int(width), 1)
        self._data = RoundData(schedule.period, self._make)

    def _make(self, round: int) -> dict[str, jax.Array]:
        a, index, weight = neighbour_lists(self.schedule.stored(round), self.width)
        dtype = weight_dtype()
        return {
            "self": to_device(a, dtype),
            "index": jnp.asarray(index),
            "weight": to_device(weight, dtype),
        }

    def data(self, round: int) -> dict[str, jax.Array]:
        """The round's self weights and padded neighbour lists."""
        return self._data(round)

    def apply(
        self, tree: Any, data: dict[str, jax.Array], keep: tuple[jax.Array, Any] | None = None
    ) -> Any:
        """``W_ii x_i + Σ_k w_ik x_{idx_ik}`` for every leaf (pure, jittable).

        ``keep = (online, old)`` (bool ``[N]``, a tree like ``tree``): rows of offline
        nodes are ``old``'s, selected as each block is written (see
        :func:`~dfl.gossip.blocking.mix_rows`).
        """

        def mix(x: jax.Array) -> jax.Array:
            out = data["self"].astype(x.dtype)[:, None] * x
            for k in range(self.width):
                w = data["weight"][:, k].astype(x.dtype)[:, None]
                out = out + w * jnp.take(x, data["index"][:, k], axis=0)
            return out

        if keep is None:
            return jax.tree.map(lambda x: mix_rows(x, mix, self.block), tree)
        online, old = keep
        return jax.tree.map(lambda x, o: mix_rows(x, mix, self.block, (online, o)), tree, old)
