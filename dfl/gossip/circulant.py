"""The circulant mixer: ``out = Σ_s c_s · roll(x, -s)`` (ring, exponential, one-peer)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.blocking import Block, mix_rows, to_device, weight_dtype
from dfl.gossip.structure import ATOL, circulant_coefficients
from dfl.topology.schedule import MixingSchedule


class CirculantMixer:
    """Mixes a periodic schedule whose every ``W`` is circulant with a few rolls.

    A circulant ``W`` (``W[i, (i+s) mod n] = c_s``) gives
    ``out_i = Σ_s c_s x_{(i+s) mod n}``, i.e. ``out = Σ_s c_s roll(x, -s)``: cost
    ``S · N · P`` for ``S`` non-zero offsets (``S = 3`` on a ring, ``1 + 2⌈log₂ n⌉``
    on the symmetric exponential graph, 2 on the one-peer exponential graph).

    If every round uses the same offsets they are static (compiled in: each is a
    static roll, slices that XLA fuses into one loop) and the data is the per-offset
    weights ``{"c": [S]}``; otherwise (one-peer exponential) the offsets are data too,
    ``{"shift": int32 [S], "c": [S]}``, and each term is one row gather with the
    indices ``(i + shift) mod n`` (a ``jnp.roll`` by a traced shift would copy the
    leaf twice), so a new round never recompiles.

    On CPU the leaf is mixed a cache-sized block of columns at a time and in place
    (see :func:`~dfl.gossip.blocking.mix_rows`), so the ``S`` shifted reads hit cache
    and the cost is about one pass over the parameters whatever ``S``.

    Args:
      schedule: a periodic schedule whose matrices are all circulant.
      block: columns per block, ``"auto"`` (blocked on a single CPU device only) or
        ``None`` (one fused pass over each leaf).

    Raises:
      ValueError: if some ``W`` of the period is not circulant (or the schedule is random).
    """

    form = "circulant"

    def __init__(self, schedule: MixingSchedule, *, block: Block = "auto"):
        if schedule.period is None:
            raise ValueError(
                f"circulant mixer: schedule {schedule.name!r} is random; use 'permutation', "
                "'sparse' or 'dense'"
            )
        self.schedule = schedule
        self.n = schedule.n
        self.block: Block = block
        coeffs = []
        for t in range(schedule.period):
            c = circulant_coefficients(schedule.stored(t))
            if c is None:
                raise ValueError(
                    f"circulant mixer: W of {schedule.name!r} at round {t} is not circulant "
                    "(W[i, (i+s) mod n] must not depend on i)"
                )
            coeffs.append(c)
        supports = [tuple(np.flatnonzero(np.abs(c) > ATOL).tolist()) for c in coeffs]
        self.static_offsets: tuple[int, ...] | None = (
            supports[0] if all(s == supports[0] for s in supports) else None
        )
        width = max(len(s) for s in supports)
        dtype = weight_dtype()
        self._data = []
        for c, s in zip(coeffs, supports, strict=True):
            if self.static_offsets is not None:
                self._data.append({"c": to_device(c[list(s)], dtype)})
            else:
                shift = np.zeros(width, dtype=np.int32)
                weight = np.zeros(width)
                shift[: len(s)] = s
                weight[: len(s)] = c[list(s)]
                self._data.append({"shift": jnp.asarray(shift), "c": to_device(weight, dtype)})
        self.num_offsets = width

    def data(self, round: int) -> dict[str, jax.Array]:
        """The round's per-offset weights (and offsets if they vary)."""
        return self._data[int(round) % len(self._data)]

    def apply(self, tree: Any, data: dict[str, jax.Array]) -> Any:
        """``Σ_s c_s roll(x, -s)`` over the node axis of every leaf (pure, jittable)."""
        c = data["c"]
        if self.static_offsets is not None:
            offsets = self.static_offsets

            def mix(x: jax.Array) -> jax.Array:
                cc = c.astype(x.dtype)
                out = None
                for k, s in enumerate(offsets):
                    term = cc[k] * (x if s == 0 else jnp.roll(x, -s, axis=0))
                    out = term if out is None else out + term
                return jnp.zeros_like(x) if out is None else out

        else:
            rows = jnp.arange(self.n, dtype=jnp.int32)
            index = (rows[None, :] + data["shift"].astype(jnp.int32)[:, None]) % self.n

            def mix(x: jax.Array) -> jax.Array:
                cc = c.astype(x.dtype)
                out = None
                for k in range(self.num_offsets):
                    term = cc[k] * jnp.take(x, index[k], axis=0, unique_indices=True)
                    out = term if out is None else out + term
                return jnp.zeros_like(x) if out is None else out

        return jax.tree.map(lambda x: mix_rows(x, mix, self.block), tree)
