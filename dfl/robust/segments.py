"""The gathered, edge-indexed exchange form and the segment operations every robust rule uses.

The form (one round, ``N`` nodes, ``E`` directed edges ``src(e) → dst(e)``, self-loops
excluded, ``N`` and ``E`` static):

* ``own``: a pytree whose leaves have a leading node axis ``N`` — each node's own message;
* ``messages_e``: a pytree of the same structure with a leading edge axis ``E`` — the
  message ``dst(e)`` received from ``src(e)`` (attackers may send a different message on
  each edge);
* ``dst``, ``src``: ``int`` arrays ``[E]`` (any order: nothing here assumes sorting);
* ``delivered``: ``bool [E]`` — which messages arrived (drops, deadlines, padding slots,
  and peers a detector cut off are ``False``).

A node's *closed neighbourhood* is its own message plus the delivered messages on its
in-edges. Robust rules see it as ``M = N + E`` *candidates*: candidate ``c < N`` is
``own[c]`` (segment ``c``), candidate ``N + e`` is ``messages_e[e]`` (segment ``dst(e)``).
Everything is a segment operation over those ``M`` rows, so memory is ``O((N + E) · P)``,
never padded to the largest in-degree.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def delivered_or_all(delivered: ArrayLike | None, dst: ArrayLike) -> jax.Array:
    """``delivered`` as a ``bool [E]`` array (all ``True`` when ``None``)."""
    if delivered is None:
        return jnp.ones(jnp.shape(dst), bool)
    return jnp.asarray(delivered, bool)


def in_degree(dst: ArrayLike, n: int, delivered: ArrayLike | None = None) -> jax.Array:
    """Delivered in-edges per node, ``int32 [N]``."""
    mask = delivered_or_all(delivered, dst)
    return jax.ops.segment_sum(mask.astype(jnp.int32), jnp.asarray(dst), num_segments=n)


def flat(x: jax.Array) -> jax.Array:
    """``x`` as ``[rows, P]`` (``P = 1`` for a vector)."""
    return jnp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))


def sq_norms(tree: Any) -> jax.Array:
    """Squared ℓ₂ norm of every row over all leaves: ``Σ_leaves ‖x_r‖²``, ``[rows]``."""
    leaves = jax.tree.leaves(tree)
    return sum(jnp.sum(flat(x).astype(jnp.float32) ** 2, axis=1) for x in leaves)  # type: ignore[return-value]


def edge_differences(own: Any, messages_e: Any, dst: ArrayLike) -> Any:
    """``m_e − own[dst(e)]`` for every edge (a pytree with leading axis ``E``)."""
    d = jnp.asarray(dst)
    return jax.tree.map(lambda m, x: m - jnp.take(x, d, axis=0), messages_e, own)


def edge_distances(own: Any, messages_e: Any, dst: ArrayLike) -> jax.Array:
    """``‖m_e − own[dst(e)]‖₂`` over the whole pytree, ``float32 [E]``."""
    return jnp.sqrt(sq_norms(edge_differences(own, messages_e, dst)))


def candidates(own: Any, messages_e: Any, dst: ArrayLike, delivered: ArrayLike | None):
    """``(rows, segment [M], valid [M])``: the closed neighbourhoods as ``M = N + E`` rows.

    ``rows`` is a pytree with leading axis ``M`` (``own`` then ``messages_e``).
    """
    n = jax.tree.leaves(own)[0].shape[0]
    rows = jax.tree.map(lambda x, m: jnp.concatenate([x, m.astype(x.dtype)]), own, messages_e)
    seg = jnp.concatenate([jnp.arange(n, dtype=jnp.int32), jnp.asarray(dst, jnp.int32)])
    valid = jnp.concatenate([jnp.ones(n, bool), delivered_or_all(delivered, dst)])
    return rows, seg, valid


class Sorted(NamedTuple):
    """Values sorted within segments (valid entries first, ascending), column by column.

    Attributes:
      values: ``[M, P]`` sorted values (invalid entries at the end of their segment).
      seg: ``[M]`` segment of each sorted row (the same for every column).
      rank: ``[M]`` position of each sorted row within its segment.
      start: ``[S]`` first row of each segment in the sorted order.
      count: ``[S]`` valid entries per segment (the same for every column).
      order: ``[M, P]`` original row of each sorted entry (only with ``order=True``).
    """

    values: jax.Array
    seg: jax.Array
    rank: jax.Array
    start: jax.Array
    count: jax.Array
    order: jax.Array


def segment_sort(
    values: jax.Array, seg: jax.Array, valid: jax.Array, num_segments: int, *, order: bool = False
) -> Sorted:
    """Sorts every column of ``values [M, P]`` within the segments ``seg [M]``.

    One ``lax.sort`` keyed by ``(2·segment + invalid, value)``: ``O(M · P)`` memory and
    ``O(M log M · P)`` work, whatever the segment sizes. ``order=True`` also carries the
    original row of each entry (``Sorted.order``; else it is an empty ``[0, P]`` array).
    """
    m, p = values.shape
    key = 2 * seg.astype(jnp.int32) + (~valid).astype(jnp.int32)
    key_b = jnp.broadcast_to(key[:, None], (m, p))
    if order:
        iota = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32)[:, None], (m, p))
        s_key, s_val, s_ord = jax.lax.sort((key_b, values, iota), dimension=0, num_keys=2)
    else:
        s_key, s_val = jax.lax.sort((key_b, values), dimension=0, num_keys=2)
        s_ord = jnp.zeros((0, p), jnp.int32)
    sizes = jax.ops.segment_sum(jnp.ones(m, jnp.int32), seg, num_segments=num_segments)
    start = jnp.cumsum(sizes) - sizes
    seg_sorted = s_key[:, 0] // 2
    rank = jnp.arange(m, dtype=jnp.int32) - start[seg_sorted]
    count = jax.ops.segment_sum(valid.astype(jnp.int32), seg, num_segments=num_segments)
    return Sorted(s_val, seg_sorted, rank, start, count, s_ord)


def segment_cumsum(values: jax.Array, seg_sorted: jax.Array) -> jax.Array:
    """Inclusive running sum of ``values [M, ...]`` restarting at each new segment.

    ``seg_sorted`` must be non-decreasing (as after :func:`segment_sort`); a segmented
    associative scan, so no cancellation against the sums of earlier segments.
    """
    first = jnp.concatenate([jnp.ones(1, bool), seg_sorted[1:] != seg_sorted[:-1]])
    first = first.reshape((-1,) + (1,) * (values.ndim - 1))
    first = jnp.broadcast_to(first, values.shape)

    def op(a, b):
        a_v, a_f = a
        b_v, b_f = b
        return jnp.where(b_f, b_v, a_v + b_v), a_f | b_f

    out, _ = jax.lax.associative_scan(op, (values, first))
    return out


def unflatten_like(x: jax.Array, like: jax.Array) -> jax.Array:
    """``[N, P]`` back to the shape and dtype of a leaf ``like`` with leading axis ``N``."""
    return jnp.reshape(x, like.shape).astype(like.dtype)


def edges_of(W: np.ndarray, *, atol: float = 1e-12) -> tuple[np.ndarray, ...]:
    """``(dst, src, weight [E], self_weight [N])`` of a mixing matrix (rows receive).

    The off-diagonal non-zeros ``W[dst, src]`` in row-major order; a host-side helper for
    tests, studies and runners that build the gathered form from a ``W``.
    """
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"expected a square mixing matrix, found {W.shape=}")
    nz = np.abs(W) > atol
    np.fill_diagonal(nz, False)
    dst, src = np.nonzero(nz)
    return dst.astype(np.int32), src.astype(np.int32), W[dst, src], np.diag(W).copy()


def gather(tree: Any, src: ArrayLike) -> Any:
    """The honest edge-indexed messages ``tree[src(e)]`` (every node sends the same)."""
    s = jnp.asarray(src)
    return jax.tree.map(lambda x: jnp.take(x, s, axis=0), tree)
