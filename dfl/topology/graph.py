"""The :class:`Topology` dataclass: one graph over ``n`` nodes.

Convention used everywhere in :mod:`dfl.topology` and :mod:`dfl.gossip`:
``adjacency[i, j]`` is ``True`` when node ``i`` *receives* from node ``j`` (the arc
``j → i``), which is exactly the support of row ``i`` of a mixing matrix ``W``
(``W[i, j]`` is the weight node ``i`` gives to node ``j``'s message). Self loops
are implicit (every node always keeps its own message) and never stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph


@dataclasses.dataclass(frozen=True, eq=False)
class Topology:
    """A directed or undirected graph over nodes ``0 .. n-1``.

    Attributes:
      name: human-readable name (``"ring"``, ``"torus(4x4)"``, ...).
      adjacency: bool ``[n, n]``; ``adjacency[i, j]`` means ``j → i`` (``i`` hears
        ``j``). Zero diagonal; symmetric when ``directed`` is ``False``.
      directed: whether arcs are one-way.
      weights: the mixing matrix the graph defines itself (one-peer exponential,
        base-(k+1), random matching), or ``None`` when a mixing rule must supply it.
    """

    name: str
    adjacency: np.ndarray
    directed: bool = False
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        A = np.asarray(self.adjacency)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(
                f"topology {self.name!r}: expected a square adjacency, found {A.shape=}"
            )
        A = A.astype(bool)
        if A.diagonal().any():
            raise ValueError(
                f"topology {self.name!r}: self loops are implicit; found adjacency[i, i] set "
                f"for nodes {np.flatnonzero(A.diagonal()).tolist()[:10]}"
            )
        if not self.directed and not np.array_equal(A, A.T):
            raise ValueError(
                f"topology {self.name!r} is declared undirected but its adjacency is not "
                "symmetric; pass directed=True for one-way arcs"
            )
        A.setflags(write=False)
        object.__setattr__(self, "adjacency", A)
        if self.weights is not None:
            W = np.asarray(self.weights, dtype=np.float64)
            if W.shape != A.shape:
                raise ValueError(
                    f"topology {self.name!r}: weights shape {W.shape} != adjacency shape {A.shape}"
                )
            W.setflags(write=False)
            object.__setattr__(self, "weights", W)

    @classmethod
    def from_edges(
        cls,
        n: int,
        edges: Iterable[tuple[int, int]],
        *,
        name: str,
        directed: bool = False,
        weights: np.ndarray | None = None,
    ) -> Topology:
        """Builds a topology from ``(src, dst)`` pairs (both directions if undirected).

        Self loops and duplicate edges are dropped.

        Args:
          n: number of nodes.
          edges: pairs ``(u, v)``; for directed graphs ``u → v`` (``v`` hears ``u``).
          name: the topology's name.
          directed: whether the pairs are one-way arcs.
          weights: optional graph-defined mixing matrix.

        Returns:
          The :class:`Topology`.
        """
        A = np.zeros((n, n), dtype=bool)
        for u, v in edges:
            if not (0 <= u < n and 0 <= v < n):
                raise ValueError(
                    f"topology {name!r}: edge ({u}, {v}) names a node outside 0..{n - 1}"
                )
            if u == v:
                continue
            A[v, u] = True
            if not directed:
                A[u, v] = True
        return cls(name=name, adjacency=A, directed=directed, weights=weights)

    @property
    def n(self) -> int:
        """Number of nodes."""
        return int(self.adjacency.shape[0])

    @property
    def num_edges(self) -> int:
        """Undirected: number of edges ``{i, j}``; directed: number of arcs."""
        count = int(self.adjacency.sum())
        return count if self.directed else count // 2

    @property
    def in_degree(self) -> np.ndarray:
        """``[n]`` int: number of in-neighbours of each node (self excluded)."""
        return self.adjacency.sum(axis=1).astype(np.int64)

    @property
    def out_degree(self) -> np.ndarray:
        """``[n]`` int: number of out-neighbours of each node (self excluded)."""
        return self.adjacency.sum(axis=0).astype(np.int64)

    @property
    def degree(self) -> np.ndarray:
        """``[n]`` int: the degree of an undirected graph (the in-degree if directed)."""
        return self.in_degree

    def in_neighbours(self, i: int) -> np.ndarray:
        """The nodes ``j`` with ``j → i`` (sorted)."""
        return np.flatnonzero(self.adjacency[i])

    def out_neighbours(self, i: int) -> np.ndarray:
        """The nodes ``j`` with ``i → j`` (sorted)."""
        return np.flatnonzero(self.adjacency[:, i])

    def edges(self) -> list[tuple[int, int]]:
        """Undirected: pairs ``(i, j)`` with ``i < j``; directed: arcs ``(src, dst)``."""
        dst, src = np.nonzero(self.adjacency)
        if self.directed:
            return [(int(s), int(d)) for s, d in zip(src, dst, strict=True)]
        return [(int(s), int(d)) for s, d in zip(src, dst, strict=True) if s < d]

    def components(self) -> np.ndarray:
        """``[n]`` int labels of the (strongly, if directed) connected components."""
        _, labels = scipy.sparse.csgraph.connected_components(
            scipy.sparse.csr_matrix(self.adjacency), directed=True, connection="strong"
        )
        return labels

    def is_connected(self) -> bool:
        """Whether every node reaches every other (strong connectivity if directed)."""
        return self.n <= 1 or len(np.unique(self.components())) == 1

    def to_networkx(self):
        """The graph as a ``networkx.Graph`` (``DiGraph`` if directed, arcs ``src → dst``)."""
        import networkx as nx

        G = nx.DiGraph() if self.directed else nx.Graph()
        G.add_nodes_from(range(self.n))
        G.add_edges_from(self.edges())
        return G


def union(graphs: Iterable[Topology], *, name: str) -> Topology:
    """The union of the arcs of several graphs over the same nodes.

    Args:
      graphs: topologies with the same ``n``.
      name: name of the result.

    Returns:
      A topology, directed if any of the inputs is.
    """
    graphs = list(graphs)
    A = np.zeros_like(graphs[0].adjacency)
    for g in graphs:
        A = A | g.adjacency
    directed = any(g.directed for g in graphs) and not np.array_equal(A, A.T)
    return Topology(name=name, adjacency=A, directed=directed)
