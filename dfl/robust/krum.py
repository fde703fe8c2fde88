"""Krum / Multi-Krum screening per neighbourhood (Blanchard et al. 2017).

Among the ``n`` vectors ``V_1 … V_n`` of which up to ``f`` may be Byzantine, Krum scores

.. math::  s(i) = \\sum_{i \\to j} \\|V_i - V_j\\|^2

where ``i → j`` runs over the ``n − f − 2`` vectors closest to ``V_i`` (``j ≠ i``), and
returns the vector of smallest score; Multi-Krum averages the ``m`` best-scored ones.
It needs ``n > 2f + 2``.

Here each node ``k`` screens its closed neighbourhood (its own message and the delivered
messages on its in-edges, ``n_k = |N_k| + 1``) with ``f = b``; so the requirement is
in-degree ``≥ 2b + 2`` (:func:`dfl.robust.requirements.check_in_degree`). Ties go to the
lower candidate index, i.e. to the node's own message first. Where ``n_k − b − 2 < 1``
(only with ``unsafe=True``) every score is 0 and the node keeps its own message.

Cost: the ordered pairs of candidates that share a neighbourhood, ``Σ_k n_k (n_k − 1)``
scalar distances (indices built once on the host by :func:`krum_pairs`, like a mixer's
round data), each computed in chunks of ``chunk`` pairs — memory
``O((N + E) · P + Σ_k n_k²)``, never ``O(N² · P)``.

References:
  Blanchard, El Mhamdi, Guerraoui & Stainer, "Machine Learning with Adversaries:
  Byzantine Tolerant Gradient Descent", NeurIPS 2017.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jax.typing import ArrayLike

from dfl.robust.segments import candidates, flat, unflatten_like


class KrumPairs(NamedTuple):
    """Ordered pairs ``(first, second)`` of distinct candidates of the same neighbourhood.

    Candidates are numbered as in :func:`dfl.robust.segments.candidates` (``c < N``: own,
    ``N + e``: edge ``e``). ``valid`` is ``False`` on padding slots.
    """

    first: jax.Array
    second: jax.Array
    valid: jax.Array


def krum_pairs(dst: npt.ArrayLike, n: int, *, size: int | None = None) -> KrumPairs:
    """The candidate pairs of every neighbourhood of the edge list ``dst`` (host side).

    Args:
      dst: ``int [E]`` receiving node of each edge (a concrete array).
      n: number of nodes.
      size: pad to this many pairs (so rounds of a time-varying schedule share one shape);
        default exactly ``Σ_k n_k (n_k − 1)``.
    """
    dst_np = np.asarray(dst, dtype=np.int64)
    if dst_np.size and (dst_np.min() < 0 or dst_np.max() >= n):
        raise ValueError(f"dst must lie in [0, {n}), found range [{dst_np.min()}, {dst_np.max()}]")
    members: list[list[int]] = [[k] for k in range(n)]
    for e, k in enumerate(dst_np):
        members[int(k)].append(n + e)
    first = [a for group in members for a in group for c in group if c != a]
    second = [c for group in members for a in group for c in group if c != a]
    count = len(first)
    size = count if size is None else size
    if count > size:
        raise ValueError(f"krum_pairs: {count} pairs > size {size}")
    pad = size - count
    return KrumPairs(
        jnp.asarray(np.array(first + [0] * pad, np.int32)),
        jnp.asarray(np.array(second + [0] * pad, np.int32)),
        jnp.asarray(np.array([True] * count + [False] * pad, dtype=bool)),
    )


def krum(
    own: Any,
    messages_e: Any,
    dst: ArrayLike,
    pairs: KrumPairs,
    *,
    b: int,
    m: int = 1,
    delivered: ArrayLike | None = None,
    chunk: int = 4096,
) -> Any:
    """(Multi-)Krum over every node's closed neighbourhood (jittable).

    Args:
      own: pytree, leaves ``[N, ...]``.
      messages_e: pytree, leaves ``[E, ...]``.
      dst: ``int [E]`` receiving node of each edge.
      pairs: :func:`krum_pairs` of the same ``dst``.
      b: ``f``, the Byzantine neighbours tolerated per neighbourhood (static).
      m: how many best-scored candidates to average (``1``: Krum).
      delivered: ``bool [E]`` arrival mask (default all delivered).
      chunk: pairs whose distances are computed at once (bounds memory).

    Returns:
      A pytree like ``own``: the selected message (or the mean of the ``m`` selected).
    """
    if b < 0 or m < 1:
        raise ValueError(f"krum needs b >= 0 and m >= 1, found {b=}, {m=}")
    n = jax.tree.leaves(own)[0].shape[0]
    rows, seg, valid = candidates(own, messages_e, dst, delivered)
    total = seg.shape[0]
    leaves = [flat(x).astype(jnp.float32) for x in jax.tree.leaves(rows)]

    def pair_sq(ab):
        a, c = ab
        return sum(jnp.sum((x[a] - x[c]) ** 2) for x in leaves)

    sq = jax.lax.map(pair_sq, (pairs.first, pairs.second), batch_size=chunk)
    ok = pairs.valid & valid[pairs.first] & valid[pairs.second]
    size = jax.ops.segment_sum(valid.astype(jnp.int32), seg, num_segments=n)  # n_k
    q = jnp.maximum(size - b - 2, 0)[seg]  # closest neighbours scored, per candidate
    s_first, s_bad, s_sq = jax.lax.sort(
        (pairs.first, (~ok).astype(jnp.int32), sq), dimension=0, num_keys=3
    )
    per_first = jax.ops.segment_sum(jnp.ones_like(s_first), s_first, num_segments=total)
    start = jnp.cumsum(per_first) - per_first
    rank = jnp.arange(s_first.shape[0], dtype=jnp.int32) - start[s_first]
    scored = (s_bad == 0) & (rank < q[s_first])
    score = jax.ops.segment_sum(jnp.where(scored, s_sq, 0.0), s_first, num_segments=total)
    score = jnp.where(valid, score, jnp.inf)
    # rank the candidates of each neighbourhood by (score, index)
    idx = jnp.arange(total, dtype=jnp.int32)
    c_seg, _, _, c_idx = jax.lax.sort(
        (seg, (~valid).astype(jnp.int32), score, idx), dimension=0, num_keys=4
    )
    members = jax.ops.segment_sum(jnp.ones_like(seg), seg, num_segments=n)
    c_start = jnp.cumsum(members) - members
    c_rank = idx - c_start[c_seg]
    take = jnp.minimum(m, size)
    chosen_sorted = c_rank < take[c_seg]
    chosen = jnp.zeros(total, bool).at[c_idx].set(chosen_sorted)
    coef = chosen.astype(jnp.float32) / take[seg].astype(jnp.float32)

    def pick(x: jax.Array, r: jax.Array) -> jax.Array:
        weighted = jnp.where(chosen[:, None], coef[:, None] * flat(r).astype(jnp.float32), 0.0)
        return unflatten_like(jax.ops.segment_sum(weighted, seg, num_segments=n), x)

    return jax.tree.map(pick, own, rows)
