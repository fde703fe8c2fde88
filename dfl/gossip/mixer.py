"""The :class:`Mixer` protocol and :func:`make_mixer`, which picks the fastest exact form."""

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


class Mixer(Protocol):
    """Applies a round's mixing matrix over the leading node axis of a pytree.

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
