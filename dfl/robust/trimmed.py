"""Coordinate-wise trimmed mean and median over a node's neighbourhood (BRIDGE).

For every coordinate ``k`` and node ``j`` with delivered in-neighbours ``N_j``
(Fang, Yang & Bajwa 2022):

* BRIDGE-T (:func:`trimmed_mean`): drop the ``b`` largest and the ``b`` smallest of the
  neighbours' values ``{[x_i]_k : i ∈ N_j}``, keep the survivors ``N_j^k`` and the node's
  own value,

  .. math::  [y_j]_k = \\frac{1}{|N_j| - 2b + 1} \\sum_{i \\in N_j^k \\cup \\{j\\}} [x_i]_k ;

* BRIDGE-M (:func:`median`): ``[y_j]_k = \\mathrm{med}\\{[x_i]_k : i ∈ N_j ∪ \\{j\\}\\}``
  (the mean of the two middle values when the closed neighbourhood is even).

With ``keep_own=False`` the trimmed mean instead trims ``b`` per side over the closed
neighbourhood ``N_j ∪ {j}`` (own value included) and averages the ``|N_j| + 1 − 2b``
survivors: the decentralized trimmed-mean baseline of He, Karimireddy & Jaggi (2022,
``DeTM`` in their code), which is not BRIDGE-T. At ``b = 0`` both are the uniform average
over the closed neighbourhood.
Both rules need in-degree ``≥ 2b + 1`` at every honest node when up to ``b`` of its
neighbours may be Byzantine (:func:`dfl.robust.requirements.check_in_degree`). Where a
node has fewer delivered neighbours (allowed with ``unsafe=True``) the trimmed mean trims
``min(b, ⌊|N_j|/2⌋)`` from each end, so it stays defined.

Each coordinate is sorted within its segment by one ``lax.sort`` over the ``E`` edge
rows (``N + E`` for the median): ``O((N + E) · P)`` memory, no padding to the largest
in-degree.

References:
  Fang, Yang & Bajwa, "BRIDGE: Byzantine-Resilient Decentralized Gradient Descent",
  IEEE Trans. Signal and Information Processing over Networks 8, 2022.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dfl.robust.segments import candidates, delivered_or_all, flat, segment_sort, unflatten_like


def trimmed_mean(
    own: Any,
    messages_e: Any,
    dst: ArrayLike,
    *,
    b: int,
    delivered: ArrayLike | None = None,
    keep_own: bool = True,
) -> Any:
    """BRIDGE-T: trim ``b`` per side among the neighbours, average the rest with ``x_j``.

    Args:
      own: pytree, leaves ``[N, ...]``.
      messages_e: pytree, leaves ``[E, ...]``: the message on each edge.
      dst: ``int [E]`` receiving node of each edge.
      b: values trimmed from each end, per coordinate (static, ``≥ 0``).
      delivered: ``bool [E]`` arrival mask (default all delivered).
      keep_own: ``True`` (BRIDGE-T) never trims the node's own value; ``False`` trims over
        the closed neighbourhood (He et al.'s baseline), at most ``⌊|N_j|/2⌋`` per side.

    Returns:
      A pytree like ``own``.
    """
    if b < 0:
        raise ValueError(f"trim b must be >= 0, found {b=}")
    n = jax.tree.leaves(own)[0].shape[0]
    d = jnp.asarray(dst, jnp.int32)
    mask = delivered_or_all(delivered, d)
    if keep_own:
        rows, seg, valid, extra = messages_e, d, mask, 1
    else:
        (rows, seg, valid), extra = candidates(own, messages_e, d, mask), 0

    def one(x: jax.Array, m: jax.Array) -> jax.Array:
        s = segment_sort(flat(m), seg, valid, n)
        count = s.count  # values sorted per node (without / with its own)
        trim = jnp.minimum(b, (count + extra - 1) // 2)
        t, c = trim[s.seg][:, None], count[s.seg][:, None]
        r = s.rank[:, None]
        keep = (r >= t) & (r < c - t)
        kept = jnp.where(keep, s.values.astype(jnp.float32), 0.0)
        total = jax.ops.segment_sum(kept, s.seg, num_segments=n)
        if keep_own:
            total = total + flat(x).astype(jnp.float32)
        out = total / (count + extra - 2 * trim).astype(jnp.float32)[:, None]
        return unflatten_like(out, x)

    return jax.tree.map(one, own, rows)


def median(
    own: Any,
    messages_e: Any,
    dst: ArrayLike,
    *,
    delivered: ArrayLike | None = None,
) -> Any:
    """BRIDGE-M: the coordinate-wise median over the closed neighbourhood ``N_j ∪ {j}``.

    Args:
      own, messages_e, dst, delivered: as in :func:`trimmed_mean`.

    Returns:
      A pytree like ``own``.
    """
    n = jax.tree.leaves(own)[0].shape[0]
    rows, seg, valid = candidates(own, messages_e, dst, delivered)

    def one(x: jax.Array, r_all: jax.Array) -> jax.Array:
        s = segment_sort(flat(r_all), seg, valid, n)
        c = s.count[s.seg]
        lo, hi = (c - 1) // 2, c // 2
        pick = (s.rank == lo).astype(jnp.float32) + (s.rank == hi).astype(jnp.float32)
        vals = jnp.where(pick[:, None] > 0, pick[:, None] * s.values.astype(jnp.float32), 0.0)
        summed = jax.ops.segment_sum(vals, s.seg, num_segments=n)
        return unflatten_like(summed / 2.0, x)

    return jax.tree.map(one, own, rows)
