"""Graphs and mixing matrices over rounds: :class:`GraphSchedule`, :class:`MixingSchedule`.

A static topology is a schedule of period 1. A periodic time-varying topology
(one-peer exponential, base-(k+1)) cycles through ``period`` graphs:
``graph_at(t) = graphs[t mod period]``. A random schedule (random matching) draws
its graph at round ``t`` from a generator seeded by ``(seed, t)``, so any round can
be reproduced on its own (``period`` is ``None``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse

from dfl.topology.graph import Topology, is_sparse
from dfl.topology.mixing import Matrix, Rule


@dataclasses.dataclass(frozen=True, eq=False)
class GraphSchedule:
    """The graph used at each round.

    Attributes:
      name: the topology's name.
      n: number of nodes.
      directed: whether any round's graph has one-way arcs.
      period: 1 for static graphs, the cycle length for periodic ones, ``None``
        for random schedules.
      graph_at: ``graph_at(round) -> Topology``; deterministic in ``round``.
      one_peer: promise that every round's graph has in- and out-degree <= 1 (each
        node hears at most one peer and is heard by at most one), so mixing is a
        permutation; used by :func:`dfl.gossip.make_mixer` for random schedules.
    """

    name: str
    n: int
    directed: bool
    period: int | None
    graph_at: Callable[[int], Topology]
    one_peer: bool = False

    @classmethod
    def static(cls, topology: Topology) -> GraphSchedule:
        """The schedule that uses ``topology`` at every round."""
        return cls(
            name=topology.name,
            n=topology.n,
            directed=topology.directed,
            period=1,
            graph_at=lambda t: topology,
        )

    @classmethod
    def cycle(cls, graphs: Sequence[Topology], *, name: str) -> GraphSchedule:
        """The schedule ``graph_at(t) = graphs[t mod len(graphs)]``."""
        graphs = tuple(graphs)
        if not graphs:
            raise ValueError(f"topology {name!r}: a periodic schedule needs at least one graph")
        n = graphs[0].n
        if any(g.n != n for g in graphs):
            raise ValueError(f"topology {name!r}: graphs of one schedule must have the same n")
        one_peer = all(
            int(g.in_degree.max(initial=0)) <= 1 and int(g.out_degree.max(initial=0)) <= 1
            for g in graphs
        )
        return cls(
            name=name,
            n=n,
            directed=any(g.directed for g in graphs),
            period=len(graphs),
            graph_at=lambda t: graphs[t % len(graphs)],
            one_peer=one_peer,
        )

    @classmethod
    def random(
        cls,
        sampler: Callable[[int], Topology],
        *,
        name: str,
        n: int,
        directed: bool,
        one_peer: bool = False,
    ) -> GraphSchedule:
        """A random schedule; ``sampler(round)`` must be deterministic in ``round``."""
        return cls(
            name=name,
            n=n,
            directed=directed,
            period=None,
            graph_at=functools.lru_cache(maxsize=4)(sampler),
            one_peer=one_peer,
        )

    @property
    def time_varying(self) -> bool:
        """Whether the graph changes between rounds."""
        return self.period != 1


@dataclasses.dataclass(frozen=True, eq=False)
class MixingSchedule:
    """The mixing matrix ``W(t)`` used at each round ``t``.

    ``W(t)[i, j]`` is the weight node ``i`` gives to node ``j``'s message (row ``i``
    lists node ``i``'s in-neighbours and itself); a round of plain gossip is
    ``x_i ← Σ_j W(t)_ij x_j``.

    Attributes:
      graphs: the graph schedule.
      rule: the mixing rule applied to each round's graph.
      rule_name: the rule's config name.
      matrices: for periodic schedules the ``period`` matrices of one period
        (read-only float64 numpy arrays, or ``scipy.sparse.csr_array`` on sparse
        graphs), ``None`` for random schedules.

    Accessors: :meth:`weights` is always a dense ``[n, n]`` array (built on demand,
    ``n²`` floats, for a sparse schedule); :meth:`sparse_weights` is always a
    ``csr_array`` (``O(E)``); :attr:`sparse` says which one is stored. Code that
    only needs ``W``'s non-zeros (mixers, validation, diagnostics) uses
    :meth:`sparse_weights`.
    """

    graphs: GraphSchedule
    rule: Rule
    rule_name: str
    matrices: tuple[np.ndarray, ...] | None

    @classmethod
    def build(cls, graphs: GraphSchedule, rule: Rule, *, rule_name: str) -> MixingSchedule:
        """Applies ``rule`` to every graph of one period (lazily for random schedules)."""
        matrices = None
        if graphs.period is not None:
            mats = []
            for t in range(graphs.period):
                mats.append(_frozen(rule(graphs.graph_at(t))))
            matrices = tuple(mats)
        return cls(graphs=graphs, rule=rule, rule_name=rule_name, matrices=matrices)

    @property
    def name(self) -> str:
        """``"<topology>/<rule>"``."""
        return f"{self.graphs.name}/{self.rule_name}"

    @property
    def n(self) -> int:
        """Number of nodes."""
        return self.graphs.n

    @property
    def directed(self) -> bool:
        """Whether the graph has one-way arcs (at some round)."""
        return self.graphs.directed

    @property
    def period(self) -> int | None:
        """1 if static, the cycle length if periodic, ``None`` if random."""
        return self.graphs.period

    @property
    def time_varying(self) -> bool:
        """Whether ``W`` may change between rounds."""
        return self.graphs.time_varying

    def topology(self, round: int) -> Topology:
        """The graph at ``round``."""
        return self.graphs.graph_at(int(round))

    @property
    def sparse(self) -> bool:
        """Whether ``W`` is stored sparse (a sparse graph), so :meth:`weights` costs ``n²``."""
        return is_sparse(self.stored(0))

    def stored(self, round: int) -> Matrix:
        """``W`` at ``round`` as stored: dense or ``csr_array`` (do not modify)."""
        if self.matrices is not None:
            return self.matrices[int(round) % len(self.matrices)]
        return self._random_weights(int(round))

    def weights(self, round: int) -> np.ndarray:
        """``W`` at ``round``: float64 ``[n, n]`` (read-only; densified if sparse)."""
        W = self.stored(round)
        if isinstance(W, scipy.sparse.csr_array):
            W = W.toarray()
            W.setflags(write=False)
        return np.asarray(W)

    def sparse_weights(self, round: int) -> scipy.sparse.csr_array:
        """``W`` at ``round`` as a float64 ``csr_array`` with sorted indices (``O(E)``).

        Stores the diagonal and every non-zero; for a dense schedule it is built
        from the dense ``W`` (explicit zeros dropped).
        """
        W = self.stored(round)
        if isinstance(W, scipy.sparse.csr_array):
            return W
        S = scipy.sparse.csr_array(W)
        S.sort_indices()
        return S

    @functools.cached_property
    def _random_weights(self) -> Callable[[int], Matrix]:
        @functools.lru_cache(maxsize=4)
        def weights(t: int) -> Matrix:
            return _frozen(self.rule(self.graphs.graph_at(t)))

        return weights

    def rounds(self, samples: int = 8) -> range:
        """The rounds that represent the schedule: one period, or ``samples`` rounds if random."""
        return range(self.period if self.period is not None else samples)


def neighbours_of(schedule: MixingSchedule, node: int) -> frozenset[int]:
    """Every node ``node`` sends to or hears from over one period of ``schedule``.

    A schedule without a period (a random one) may pair any two nodes: every
    other node is returned.
    """
    if schedule.period is None:
        return frozenset(range(schedule.n)) - {node}
    out: set[int] = set()
    for slot in range(schedule.period):
        W = schedule.sparse_weights(slot)
        row = W.indices[W.indptr[node] : W.indptr[node + 1]]
        out.update(row[W.data[W.indptr[node] : W.indptr[node + 1]] != 0].tolist())
        col = W[:, [node]].tocoo()
        out.update(col.coords[0][col.data != 0].tolist())
    return frozenset(out) - {node}


def _frozen(W: np.ndarray | scipy.sparse.sparray) -> Matrix:
    """A rule's ``W`` as stored: read-only float64 numpy, or a sorted float64 ``csr_array``."""
    if is_sparse(W):
        S = scipy.sparse.csr_array(W, dtype=np.float64)
        S.sort_indices()
        return S
    W = np.array(W, dtype=np.float64)
    W.setflags(write=False)
    return W
