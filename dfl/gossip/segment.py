"""The edge-list mixer: one gather over all edges and a segment sum per leaf."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.blocking import Block, RoundData, mix_rows, to_device, weight_dtype
from dfl.gossip.structure import diagonal, off_diagonal_entries, period_matrices
from dfl.topology.schedule import MixingSchedule


def edge_arrays(W, size: int) -> tuple[np.ndarray, ...]:
    """``(self [n], src int32 [size], dst int32 [size], weight [size])`` of ``W``.

    The off-diagonal non-zeros ``W[dst, src]`` sorted by ``dst``, padded at the end
    with ``src = dst = n - 1, weight = 0`` (so ``dst`` stays sorted). ``W`` dense or
    ``scipy.sparse``.
    """
    n = W.shape[0]
    dst, src, w = off_diagonal_entries(W)
    if len(dst) > size:
        raise ValueError(f"segment mixer: {len(dst)} edges > size {size}")
    pad = size - len(dst)
    weight = np.concatenate([w, np.zeros(pad)])
    src = np.concatenate([src, np.full(pad, n - 1)]).astype(np.int32)
    dst = np.concatenate([dst, np.full(pad, n - 1)]).astype(np.int32)
    return diagonal(W), src, dst, weight


class SegmentMixer:
    """Mixes over an explicit edge list: ``out = diag(W) x + segment_sum(w_e x_src(e), dst(e))``.

    Cost and memory ``E · P`` for ``E`` arcs whatever the degree distribution, so it
    suits skewed graphs (hubs) where the padded neighbour lists of
    :class:`~dfl.gossip.SparseMixer` would waste ``N · K_max``. The data
    ``{"self": [N], "src", "dst": int32 [E], "weight": [E]}`` is padded to the
    largest edge count over the period, so rounds never recompile.

    Args:
      schedule: a periodic schedule (random schedules need ``size``).
      size: edge slots ``E``; default the largest arc count over the period.
      block: columns per block, ``"auto"`` (blocked and in place on a single CPU
        device, see :func:`~dfl.gossip.blocking.mix_rows`) or ``None``.
    """

    form = "segment"

    def __init__(self, schedule: MixingSchedule, *, size: int | None = None, block: Block = "auto"):
        self.schedule = schedule
        self.n = schedule.n
        self.block: Block = block
        mats = period_matrices(schedule)
        if size is None:
            if mats is None:
                raise ValueError(
                    f"segment mixer: random schedule {schedule.name!r} needs an explicit size"
                )
            size = max(len(off_diagonal_entries(W)[0]) for W in mats)
        self.size = max(int(size), 1)
        self._data = RoundData(schedule.period, self._make)

    def _make(self, round: int) -> dict[str, jax.Array]:
        a, src, dst, weight = edge_arrays(self.schedule.stored(round), self.size)
        dtype = weight_dtype()
        return {
            "self": to_device(a, dtype),
            "src": jnp.asarray(src),
            "dst": jnp.asarray(dst),
            "weight": to_device(weight, dtype),
        }

    def data(self, round: int) -> dict[str, jax.Array]:
        """The round's self weights and padded edge list."""
        return self._data(round)

    def apply(self, tree: Any, data: dict[str, jax.Array]) -> Any:
        """``diag(W) x + Σ_e w_e x_src(e)`` summed into ``dst(e)`` (pure, jittable)."""

        def mix(x: jax.Array) -> jax.Array:
            msgs = data["weight"].astype(x.dtype)[:, None] * jnp.take(x, data["src"], axis=0)
            summed = jax.ops.segment_sum(
                msgs, data["dst"], num_segments=self.n, indices_are_sorted=True
            )
            return data["self"].astype(x.dtype)[:, None] * x + summed

        return jax.tree.map(lambda x: mix_rows(x, mix, self.block), tree)
