"""The circulant mixer: ``out = Σ_s c_s · roll(x, -s)`` (ring, exponential, one-peer)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.leaves import compute_dtype, to_device, weight_dtype
from dfl.gossip.structure import ATOL, circulant_coefficients
from dfl.topology.schedule import MixingSchedule


class CirculantMixer:
    """Mixes a periodic schedule whose every ``W`` is circulant with a few rolls.

    A circulant ``W`` (``W[i, (i+s) mod n] = c_s``) gives
    ``out_i = Σ_s c_s x_{(i+s) mod n}``, i.e. ``out = Σ_s c_s roll(x, -s)``: cost
    ``S · N · P`` for ``S`` non-zero offsets (``S = 3`` on a ring, ``1 + 2⌈log₂ n⌉``
    on the symmetric exponential graph, 2 on the one-peer exponential graph).

    If every round uses the same offsets they are static (compiled in) and the data
    is the per-offset weights ``{"c": [S]}``; otherwise (one-peer exponential) the
    offsets are data too, ``{"shift": int32 [S], "c": [S]}``, and the rolls are
    dynamic, so a new round never recompiles.

    Args:
      schedule: a periodic schedule whose matrices are all circulant.

    Raises:
      ValueError: if some ``W`` of the period is not circulant (or the schedule is random).
    """

    form = "circulant"

    def __init__(self, schedule: MixingSchedule):
        if schedule.period is None:
            raise ValueError(
                f"circulant mixer: schedule {schedule.name!r} is random; use 'permutation', "
                "'sparse' or 'dense'"
            )
        self.schedule = schedule
        self.n = schedule.n
        coeffs = []
        for t in range(schedule.period):
            c = circulant_coefficients(schedule.weights(t))
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
        shifts = self.static_offsets if self.static_offsets is not None else None

        def mix(x: jax.Array) -> jax.Array:
            xc = x.astype(compute_dtype(x))
            cc = c.astype(xc.dtype)
            out = jnp.zeros_like(xc)
            for k in range(self.num_offsets):
                s = shifts[k] if shifts is not None else data["shift"][k]
                rolled = xc if (shifts is not None and s == 0) else jnp.roll(xc, -s, axis=0)
                out = out + cc[k] * rolled
            return out.astype(x.dtype)

        return jax.tree.map(mix, tree)
