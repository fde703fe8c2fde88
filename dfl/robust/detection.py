"""Flagging a neighbour whose messages stay far from the node's own model (jittable).

**The test.** Node ``i`` measures, every round, the distance ``s_e = ‖m_e − x_i‖₂`` of
each delivered in-edge ``e``, and keeps the last ``window`` rounds. Let ``s̄_e`` be the
mean over the rounds in the window in which ``e`` was delivered. Edge ``e`` is flagged
when it has been seen in at least ``min_rounds`` of them and

.. math::

   \\bar s_e \\;>\\; \\kappa \\cdot \\mathrm{med}\\{\\bar s_k : k \\to i,\\ k \\ne e\\}
   + \\text{atol},

the median running over ``i``'s *other* in-edges that have been seen ``min_rounds``
times and are not flagged (a leave-one-out median, so it works with two neighbours, e.g.
on a ring, and an attacker cannot drag the reference; with no such other edge nothing is
flagged). Flags are sticky: a flagged edge stays flagged, and a runner masks it out of
the combine (``delivered & ~flagged``) and, in deployment, reports the peer to the
transport.

It is deliberately not "was clipped": ClippedGossip's adaptive radius clips a fixed share
of weight every round, honest or not. Honest neighbours at similar distance never pass
``κ`` times the others' median; an attacker that sends far-away models (sign flip,
large noise, IPM with large ``ε``) does. Attacks built to stay within the honest spread
(ALIE, small-``ε`` dissensus) are by construction hard to see with any distance test.

The window is kept per *edge slot*: with a time-varying graph, index edges by a fixed
superset (the union over the period) and mark absent ones undelivered.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dfl.robust.segments import delivered_or_all, edge_distances, segment_sort


class DetectorState(NamedTuple):
    """The window of distances and the sticky flags.

    Attributes:
      dists: ``float32 [window, E]`` distances, a ring buffer over rounds.
      seen: ``bool [window, E]`` whether the edge was delivered in that round.
      round: ``int32`` rounds recorded so far.
      flagged: ``bool [E]``.
    """

    dists: jax.Array
    seen: jax.Array
    round: jax.Array
    flagged: jax.Array


def init_detector(num_edges: int, *, window: int) -> DetectorState:
    """An empty window of ``window`` rounds over ``num_edges`` edge slots."""
    if window < 1:
        raise ValueError(f"window must be >= 1, found {window=}")
    return DetectorState(
        jnp.zeros((window, num_edges), jnp.float32),
        jnp.zeros((window, num_edges), bool),
        jnp.zeros((), jnp.int32),
        jnp.zeros(num_edges, bool),
    )


def leave_one_out_median(values: jax.Array, dst: jax.Array, ok: jax.Array, n: int):
    """Per edge: the median of ``values`` over the *other* ``ok`` edges of its ``dst``.

    Returns ``(median [E], has_others [E])``; one segment sort, ``O(E)``.
    """
    s = segment_sort(values[:, None], dst, ok, n, order=True)
    e = values.shape[0]
    order = s.order[:, 0]
    rank = jnp.zeros(e, jnp.int32).at[order].set(s.rank)
    big = jnp.iinfo(jnp.int32).max
    my_rank = jnp.where(ok, rank, big)
    others = s.count[dst] - ok.astype(jnp.int32)
    q1, q2 = (others - 1) // 2, others // 2
    start = s.start[dst]

    def at(q: jax.Array) -> jax.Array:
        pos = start + jnp.where(q < my_rank, q, q + 1)
        return s.values[jnp.clip(pos, 0, e - 1), 0]

    return (at(q1) + at(q2)) / 2, others > 0


def update_detector(
    state: DetectorState,
    own: Any,
    messages_e: Any,
    dst: ArrayLike,
    *,
    delivered: ArrayLike | None = None,
    kappa: float = 3.0,
    min_rounds: int | None = None,
    atol: float = 1e-6,
) -> DetectorState:
    """Records this round's distances and flags the edges that fail the test (see module).

    Args:
      state: from :func:`init_detector` or the previous round.
      own: pytree, leaves ``[N, ...]``: the node's model the messages are compared with.
      messages_e: pytree, leaves ``[E, ...]``: this round's edge messages.
      dst: ``int [E]`` receiving node of each edge.
      delivered: ``bool [E]`` arrival mask.
      kappa: how many times the others' median distance is an outlier (``> 1``).
      min_rounds: deliveries in the window before an edge is judged (default the window).
      atol: absolute slack, so that nodes at consensus (all distances ≈ 0) flag nothing.

    Returns:
      The new state; ``state.flagged`` holds all flags so far.
    """
    window = state.dists.shape[0]
    need = window if min_rounds is None else min_rounds
    if not 1 <= need <= window:
        raise ValueError(f"min_rounds must be in [1, {window}], found {min_rounds=}")
    n = jax.tree.leaves(own)[0].shape[0]
    d = jnp.asarray(dst, jnp.int32)
    mask = delivered_or_all(delivered, d)
    slot = state.round % window
    dists = state.dists.at[slot].set(jnp.where(mask, edge_distances(own, messages_e, d), 0.0))
    seen = state.seen.at[slot].set(mask)
    count = jnp.sum(seen, axis=0)
    mean = jnp.sum(jnp.where(seen, dists, 0.0), axis=0) / jnp.maximum(count, 1)
    judged = count >= need
    ref, has = leave_one_out_median(mean, d, judged & ~state.flagged, n)
    new = judged & has & (mean > kappa * ref + atol)
    return DetectorState(dists, seen, state.round + 1, state.flagged | new)


def flag_counts(flagged: ArrayLike, src: ArrayLike, byzantine: ArrayLike) -> dict[str, jax.Array]:
    """``byzantine_flagged`` metrics: flagged edges in all, and true / false positives.

    An edge flag is a true positive when its sender is Byzantine (known in a study).
    """
    f = jnp.asarray(flagged, bool)
    byz = jnp.asarray(byzantine, bool)[jnp.asarray(src)]
    return {
        "byzantine_flagged": jnp.sum(f),
        "byzantine_flagged_true": jnp.sum(f & byz),
        "byzantine_flagged_false": jnp.sum(f & ~byz),
    }
