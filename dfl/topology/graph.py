"""The :class:`Topology` dataclass: one graph over ``n`` nodes.

Convention used everywhere in :mod:`dfl.topology` and :mod:`dfl.gossip`:
``adjacency[i, j]`` is ``True`` when node ``i`` *receives* from node ``j`` (the arc
``j → i``), which is exactly the support of row ``i`` of a mixing matrix ``W``
(``W[i, j]`` is the weight node ``i`` gives to node ``j``'s message). Self loops
are implicit (every node always keeps its own message) and never stored.

**Sparse graphs.** Above :data:`SPARSE_ABOVE` nodes the builders of sparse graphs
(ring, path, grid, torus, star, hypercube, exponential, edge lists) store
``adjacency`` as a ``scipy.sparse.csr_array`` (``O(E)`` memory instead of ``n²``
bytes), and the mixing rules then return a sparse ``W`` too
(:meth:`dfl.topology.MixingSchedule.sparse_weights`). :attr:`Topology.arcs` is the
sparse form of either; :meth:`Topology.dense_adjacency` the dense one (``n²`` bytes).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

SPARSE_ABOVE = 1024
"""Graphs with more nodes than this are built sparse (``adjacency`` a ``csr_array``)."""


def want_sparse(n: int, sparse: bool | None) -> bool:
    """``sparse``, or when ``None`` whether ``n`` is above :data:`SPARSE_ABOVE`."""
    return n > SPARSE_ABOVE if sparse is None else bool(sparse)


SPARSE = (scipy.sparse.sparray, scipy.sparse.spmatrix)
"""The scipy sparse types (for ``isinstance``)."""


def shape_of(a: Any) -> tuple[int, ...]:
    """The shape of a numpy array or a scipy sparse one."""
    return tuple(int(d) for d in a.shape)


def is_sparse(a: object) -> bool:
    """Whether ``a`` is a scipy sparse matrix or array."""
    return scipy.sparse.issparse(a)


@dataclasses.dataclass(frozen=True, eq=False)
class Topology:
    """A directed or undirected graph over nodes ``0 .. n-1``.

    Attributes:
      name: human-readable name (``"ring"``, ``"torus(4x4)"``, ...).
      adjacency: bool ``[n, n]``; ``adjacency[i, j]`` means ``j → i`` (``i`` hears
        ``j``). Zero diagonal; symmetric when ``directed`` is ``False``. A numpy
        array, or for sparse graphs a bool ``scipy.sparse.csr_array`` (see the
        module doc; :attr:`arcs` is always sparse).
      directed: whether arcs are one-way.
      weights: the mixing matrix the graph defines itself (one-peer exponential,
        base-(k+1), random matching), or ``None`` when a mixing rule must supply it.
    """

    name: str
    adjacency: np.ndarray | scipy.sparse.csr_array
    directed: bool = False
    weights: np.ndarray | scipy.sparse.csr_array | None = None

    def __post_init__(self) -> None:
        if is_sparse(self.adjacency):
            self._init_sparse()
            return
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

    def _init_sparse(self) -> None:
        A = scipy.sparse.csr_array(self.adjacency, dtype=bool)
        A.eliminate_zeros()
        A.sort_indices()
        shape = shape_of(A)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"topology {self.name!r}: expected a square adjacency, found {shape=}")
        loops = A.diagonal()
        if loops.any():
            raise ValueError(
                f"topology {self.name!r}: self loops are implicit; found adjacency[i, i] set "
                f"for nodes {np.flatnonzero(loops).tolist()[:10]}"
            )
        if not self.directed and (A != A.T).nnz:
            raise ValueError(
                f"topology {self.name!r} is declared undirected but its adjacency is not "
                "symmetric; pass directed=True for one-way arcs"
            )
        object.__setattr__(self, "adjacency", A)
        if self.weights is not None:
            W = self.weights
            W = scipy.sparse.csr_array(W, dtype=np.float64) if is_sparse(W) else np.asarray(W)
            if shape_of(W) != shape:
                raise ValueError(
                    f"topology {self.name!r}: weights shape {shape_of(W)} != adjacency shape "
                    f"{shape}"
                )
            object.__setattr__(self, "weights", W)

    @property
    def sparse(self) -> bool:
        """Whether ``adjacency`` is stored sparse."""
        return is_sparse(self.adjacency)

    @functools.cached_property
    def arcs(self) -> scipy.sparse.csr_array:
        """The adjacency as a bool ``csr_array`` (``O(E)``; built once from a dense one)."""
        if isinstance(self.adjacency, scipy.sparse.csr_array):
            return self.adjacency
        A = scipy.sparse.csr_array(self.adjacency)
        A.sort_indices()
        return A

    def dense_adjacency(self) -> np.ndarray:
        """The adjacency as a bool ``[n, n]`` numpy array (``n²`` bytes if sparse)."""
        if isinstance(self.adjacency, scipy.sparse.csr_array):
            return self.adjacency.toarray()
        return np.asarray(self.adjacency)

    @classmethod
    def from_edges(
        cls,
        n: int,
        edges: Iterable[tuple[int, int]],
        *,
        name: str,
        directed: bool = False,
        weights: np.ndarray | None = None,
        sparse: bool | None = None,
    ) -> Topology:
        """Builds a topology from ``(src, dst)`` pairs (both directions if undirected).

        Self loops and duplicate edges are dropped.

        Args:
          n: number of nodes.
          edges: pairs ``(u, v)``; for directed graphs ``u → v`` (``v`` hears ``u``).
          name: the topology's name.
          directed: whether the pairs are one-way arcs.
          weights: optional graph-defined mixing matrix.
          sparse: store the adjacency sparse; ``None``: above :data:`SPARSE_ABOVE` nodes.

        Returns:
          The :class:`Topology`.
        """
        if want_sparse(n, sparse):
            pairs = np.asarray(list(edges), dtype=np.int64).reshape(-1, 2)
            bad = (pairs < 0) | (pairs >= n)
            if bad.any():
                u, v = pairs[np.flatnonzero(bad.any(axis=1))[0]]
                raise ValueError(
                    f"topology {name!r}: edge ({u}, {v}) names a node outside 0..{n - 1}"
                )
            pairs = pairs[pairs[:, 0] != pairs[:, 1]]
            src, dst = pairs[:, 0], pairs[:, 1]
            if not directed:
                src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
            return cls(
                name=name, adjacency=arcs_matrix(n, dst, src), directed=directed, weights=weights
            )
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
        return int(shape_of(self.adjacency)[0])

    @property
    def num_edges(self) -> int:
        """Undirected: number of edges ``{i, j}``; directed: number of arcs."""
        count = int(self.arcs.nnz)
        return count if self.directed else count // 2

    @property
    def in_degree(self) -> np.ndarray:
        """``[n]`` int: number of in-neighbours of each node (self excluded)."""
        return np.diff(self.arcs.indptr).astype(np.int64)

    @property
    def out_degree(self) -> np.ndarray:
        """``[n]`` int: number of out-neighbours of each node (self excluded)."""
        return np.bincount(self.arcs.indices, minlength=self.n).astype(np.int64)

    @property
    def degree(self) -> np.ndarray:
        """``[n]`` int: the degree of an undirected graph (the in-degree if directed)."""
        return self.in_degree

    def in_neighbours(self, i: int) -> np.ndarray:
        """The nodes ``j`` with ``j → i`` (sorted)."""
        A = self.arcs
        return A.indices[A.indptr[i] : A.indptr[i + 1]].astype(np.int64)

    def out_neighbours(self, i: int) -> np.ndarray:
        """The nodes ``j`` with ``i → j`` (sorted)."""
        A = self.arcs
        return (
            np.flatnonzero(A.indices == i) if self.sparse else np.flatnonzero(self.adjacency[:, i])
        )

    def edges(self) -> list[tuple[int, int]]:
        """Undirected: pairs ``(i, j)`` with ``i < j``; directed: arcs ``(src, dst)``."""
        A = self.arcs
        dst = np.repeat(np.arange(self.n), np.diff(A.indptr))
        src = A.indices
        if self.directed:
            return [(int(s), int(d)) for s, d in zip(src, dst, strict=True)]
        return [(int(s), int(d)) for s, d in zip(src, dst, strict=True) if s < d]

    def components(self) -> np.ndarray:
        """``[n]`` int labels of the (strongly, if directed) connected components."""
        _, labels = scipy.sparse.csgraph.connected_components(
            self.arcs, directed=True, connection="strong"
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
    if any(g.sparse for g in graphs):
        S = graphs[0].arcs
        for g in graphs[1:]:
            S = S + g.arcs
        S = scipy.sparse.csr_array(S, dtype=bool)
        directed = any(g.directed for g in graphs) and bool((S != S.T).nnz)
        return Topology(name=name, adjacency=S, directed=directed)
    A = np.zeros_like(graphs[0].dense_adjacency())
    for g in graphs:
        A = A | g.dense_adjacency()
    directed = any(g.directed for g in graphs) and not np.array_equal(A, A.T)
    return Topology(name=name, adjacency=A, directed=directed)


def arcs_matrix(n: int, dst: np.ndarray, src: np.ndarray) -> scipy.sparse.csr_array:
    """The bool ``csr_array`` with ``[dst, src]`` set (``src → dst``; duplicates merged)."""
    data = np.ones(len(dst), dtype=bool)
    A = scipy.sparse.csr_array((data, (np.asarray(dst), np.asarray(src))), shape=(n, n))
    A.sum_duplicates()
    return scipy.sparse.csr_array(A, dtype=bool)
