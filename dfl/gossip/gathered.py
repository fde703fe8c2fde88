"""The gathered exchange form: every in-neighbour message, edge-indexed (robust aggregation).

Where the mixed-sum forms return only ``Σ_j W_ij m_j``, a robust combine rule must see
each neighbour's message. :class:`GatheredMixer` lays a schedule's arcs out as fixed
*edge slots* — the union of the off-diagonal non-zeros of every ``W`` of the period,
``dst`` ascending then ``src`` — and gives, per round, the slots' weights
``W[dst, src]`` (``0`` and ``valid = False`` where the slot's arc is absent that round)
and the diagonal. :func:`gather` turns the nodes' messages ``[N, ...]`` into the edge
messages ``[E, ...]``: ``O(E · P)`` memory, never padded to the largest in-degree, and
fixed shapes, so the round stays one jit. Fixed slots also give a detector and a
non-rushing attacker the same edge from round to round.

``apply`` is the plain mixed sum from the gathered form (the algorithm's ``RENORMALIZE``
rule for undelivered slots: their weight stays on the node's own message). Robust rules
over the form are in :mod:`dfl.robust.rules`. Random schedules (no period) have no fixed
union of arcs and are refused.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.structure import ATOL, dense_period_matrices
from dfl.topology.schedule import MixingSchedule


class Edges(NamedTuple):
    """One round's edge slots.

    Attributes:
      dst, src: ``int32 [E]`` receiver and sender of each slot.
      weight: ``float32 [E]`` ``W[dst, src]`` this round (``0`` on an absent arc).
      valid: ``bool [E]`` whether the slot's arc exists this round.
      self_weight: ``float32 [N]`` the diagonal of this round's ``W``.
    """

    dst: jax.Array
    src: jax.Array
    weight: jax.Array
    valid: jax.Array
    self_weight: jax.Array


def edge_slots(mats: list[np.ndarray], *, atol: float = ATOL) -> tuple[np.ndarray, np.ndarray]:
    """``(dst, src)`` of the union of the off-diagonal non-zeros of ``mats``, row-major."""
    union = np.zeros(mats[0].shape, bool)
    for W in mats:
        union |= np.abs(np.asarray(W)) > atol
    np.fill_diagonal(union, False)
    dst, src = np.nonzero(union)
    return dst.astype(np.int32), src.astype(np.int32)


def gather(tree: Any, src: jax.Array) -> Any:
    """The edge messages ``tree[src(e)]`` of every leaf (leading axis ``N`` → ``E``)."""
    return jax.tree.map(lambda x: jnp.take(x, src, axis=0), tree)


def mixed_sum(own: Any, messages_e: Any, edges: Edges, delivered: jax.Array) -> Any:
    """``W_ii own_i + Σ_{e→i} W_e (m_e if delivered else own_i)``, per node.

    The plain gossip sum from the gathered form, with the ``RENORMALIZE`` rule for the
    slots not delivered (for any ``W``, row-stochastic or not).
    """
    n = edges.self_weight.shape[0]
    w = jnp.where(edges.valid, edges.weight, 0.0)
    lost = jax.ops.segment_sum(jnp.where(delivered, 0.0, w), edges.dst, num_segments=n)
    keep = jnp.where(delivered, w, 0.0)

    def leaf(x: jax.Array, m: jax.Array) -> jax.Array:
        shape = (-1,) + (1,) * (x.ndim - 1)
        f = jnp.promote_types(x.dtype, jnp.float32)
        heard = jax.ops.segment_sum(keep.reshape(shape) * m.astype(f), edges.dst, num_segments=n)
        out = (edges.self_weight + lost).reshape(shape) * x.astype(f) + heard
        return out.astype(x.dtype)

    return jax.tree.map(leaf, own, messages_e)


class GatheredMixer:
    """A :class:`~dfl.gossip.mixer.Mixer` in the gathered form over fixed edge slots.

    Args:
      schedule: a periodic mixing schedule (static or cycling).
      block: accepted for the :func:`~dfl.gossip.mixer.make_mixer` signature; unused.

    Raises:
      ValueError: for a random schedule.
    """

    form = "gathered"

    def __init__(self, schedule: MixingSchedule, *, block: Any = None):
        del block
        mats = dense_period_matrices(schedule)
        if mats is None:
            raise ValueError(
                f"the gathered exchange needs a periodic schedule (fixed edge slots); "
                f"topology {schedule.graphs.name!r} is random"
            )
        self.n = schedule.n
        self.schedule = schedule
        self.period = len(mats)
        self.dst, self.src = edge_slots(mats)
        self._data = [self._make(W) for W in mats]

    @property
    def num_edges(self) -> int:
        """``E``, the number of edge slots."""
        return int(self.dst.shape[0])

    def _make(self, W: np.ndarray) -> Edges:
        W = np.asarray(W)
        weight = W[self.dst, self.src].astype(np.float32)
        return Edges(
            jnp.asarray(self.dst),
            jnp.asarray(self.src),
            jnp.asarray(weight),
            jnp.asarray(np.abs(weight) > ATOL),
            jnp.asarray(np.diag(W).astype(np.float32)),
        )

    def data(self, round: int) -> Edges:
        """The round's :class:`Edges` (the same shapes every round)."""
        return self._data[round % self.period]

    def apply(self, tree: Any, data: Edges) -> Any:
        """``Σ_j W_ij tree_j`` from the gathered form (every message delivered)."""
        return mixed_sum(tree, gather(tree, data.src), data, data.valid)
