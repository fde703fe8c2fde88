"""The exchange protocol both modes implement, the :class:`Mixer`, and :func:`make_mixer`.

**The exchange.** One call per round, the same in both modes::

    mixed = exchange.apply(message, round, delivered=None)

* simulation: a :class:`Mixer`; ``message`` has the leading node axis ``N``,
  ``round`` is the round's weight data ``mixer.data(t)`` (arrays of fixed shapes,
  so the jitted round never recompiles) and ``mixed[i] = Σ_j W_ij message[j]``;
* deployment: :class:`dfl.node.exchange.NodeExchange`; ``message`` is the node's
  own, ``round`` the round number ``t``; it sends, receives, plans and mixes,
  ``mixed = Σ_j W_ij message_j`` over the node's in-neighbours and itself.

``delivered`` is the round's delivery mask, which in-neighbour messages arrived:
a bool ``[N, N]`` array inside the jitted round in the simulation
(``delivered[i, j]``: ``j``'s message reached ``i``; the diagonal is ignored), the
in-neighbours to use (a set of node ids) in deployment, on top of what the
transport delivered by the deadline. ``None`` means every message arrived
(simulation) or whatever the transport delivered (deployment). A missing message
is treated by the algorithm's missing-message rule: ``RENORMALIZE`` moves its
weight to the node's own message (:func:`dfl.gossip.dense.renormalize`); under
``WAIT`` nothing may be missing (the node waits; a mask that drops one is an error).
The dense mixer (``make_round``'s ``delivered`` argument) and the node exchange
take masks today; the round refuses one with the other forms (their per-edge layouts
would carry it as a per-edge mask the same way).

**The gathered form** (for robust aggregation, which must see each message; not
built yet) has the signature::

    gathered = exchange.gather(message, round, delivered=None)

returning a ``Gathered(own, messages, sender, receiver, weight, delivered)``:
``own`` the nodes' own messages (``[N, ...]``; one node's in deployment),
``messages`` every in-neighbour message with a leading *edge* axis ``[E, ...]``
(``E`` arcs of the round, sorted by ``receiver``, padded to the period's largest
``E``: ``O(E·P)`` memory, never padded to the largest in-degree), ``sender`` and
``receiver`` ``int32 [E]``, ``weight = W[receiver, sender]`` ``[E]`` and
``delivered`` ``bool [E]``. A combine rule reduces it per receiver with segment
operations (``jax.ops.segment_sum`` and friends); at a node ``receiver`` is all ``i``
and ``E`` its in-degree.
"""

from __future__ import annotations

from typing import Any, Protocol

from dfl.gossip.blocking import Block
from dfl.gossip.circulant import CirculantMixer
from dfl.gossip.dense import DenseMixer
from dfl.gossip.permutation import PermutationMixer
from dfl.gossip.segment import SegmentMixer
from dfl.gossip.sparse import SparseMixer
from dfl.gossip.structure import circulant_coefficients, off_diagonal_in_degree, period_matrices
from dfl.topology.schedule import MixingSchedule


class Exchange(Protocol):
    """The exchange of one round: ``apply(message, round) -> mixed`` (see the module doc)."""

    def apply(self, message: Any, round: Any, /) -> Any:
        """``Σ_j W_ij message_j`` for each node ``i``, as the round's weights say."""
        ...


class Mixer(Protocol):
    """The simulation's exchange: applies a round's W over the leading node axis.

    ``data(round)`` returns the round's weights as a pytree of arrays whose shapes
    and dtypes never change between rounds (so a jitted round never recompiles);
    ``apply(tree, data)`` returns ``Σ_j W_ij tree_j`` for each node ``i``.
    """

    form: str
    n: int

    def data(self, round: int) -> Any:
        """The round's weights as a pytree of arrays."""
        ...

    def apply(self, tree: Any, data: Any) -> Any:
        """Mixes every leaf of ``tree`` (leading node axis ``N``); pure and jittable."""
        ...


FORMS: dict[str, type] = {
    "dense": DenseMixer,
    "circulant": CirculantMixer,
    "permutation": PermutationMixer,
    "sparse": SparseMixer,
    "segment": SegmentMixer,
}
"""The mixer classes by form name."""

DENSE_FRACTION = 0.25
"""Above this fraction of non-zeros per row (``(K + 1) / N``) the dense form is used."""


def choose_form(schedule: MixingSchedule) -> str:
    """The fastest exact form for ``schedule``'s structure.

    * random schedules: ``permutation`` if they promise one peer per round, else ``dense``;
    * more than :data:`DENSE_FRACTION` of all entries non-zero: ``dense``;
    * every ``W`` of the period circulant with few offsets: ``circulant`` (a few rolls);
    * at most one peer per node per round: ``permutation`` (one gather);
    * a few nodes with many more peers than average (padding would more than double
      the work): ``segment`` (one edge-list gather and segment sum);
    * otherwise ``sparse`` (``K`` gathers, ``K`` = largest in-degree).
    """
    mats = period_matrices(schedule)
    if mats is None:
        return "permutation" if schedule.graphs.one_peer else "dense"
    n = schedule.n
    degrees = [off_diagonal_in_degree(W) for W in mats]
    k = max(int(d.max(initial=0)) for d in degrees)
    edges = max(int(d.sum()) for d in degrees)
    if edges + n > DENSE_FRACTION * n * n:
        return "dense"
    if k + 1 <= DENSE_FRACTION * n and all(circulant_coefficients(W) is not None for W in mats):
        return "circulant"
    if k <= 1:
        return "permutation"
    if k * n > 2 * edges:
        return "segment"
    return "sparse"


def make_mixer(schedule: MixingSchedule, *, form: str = "auto", block: Block = "auto") -> Mixer:
    """The mixer of ``schedule`` in the given form (the fastest exact one by default).

    Every form computes the same ``Σ_j W_ij tree_j`` (to float tolerance); they
    differ in cost: ``dense`` ``N²·P``, ``circulant`` ``S·N·P`` (``S`` offsets),
    ``permutation`` ``N·P``, ``sparse`` ``K·N·P`` (``K`` the largest in-degree),
    ``segment`` ``E·P`` (``E`` arcs).

    Args:
      schedule: the mixing schedule.
      form: ``"auto"`` (see :func:`choose_form`) or one of :data:`FORMS`.
      block: columns mixed per block: ``"auto"`` blocks (cache-sized, in place) on a
        single CPU device only and never for ``dense``, ``None`` mixes each leaf in
        one fused pass, an int forces that block size (see
        :func:`dfl.gossip.blocking.mix_rows`).

    Returns:
      A :class:`Mixer`.

    Raises:
      ValueError: for an unknown form or one that does not fit the schedule.
    """
    if form == "auto":
        form = choose_form(schedule)
    if form not in FORMS:
        raise ValueError(f"unknown mixer form {form!r}; expected 'auto' or one of {sorted(FORMS)}")
    return FORMS[form](schedule, block=block)
