"""Hypothesis strategies for random graphs (shared by the topology and gossip tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from dfl.topology.graph import Topology


def random_connected(seed: int, n: int, p: float) -> Topology:
    """A connected undirected graph: a random spanning tree plus each other edge with ``p``."""
    rng = np.random.default_rng(seed)
    A = np.triu(rng.random((n, n)) < p, k=1)
    A = A | A.T
    for i in range(1, n):
        j = int(rng.integers(i))
        A[i, j] = A[j, i] = True
    return Topology(name="random", adjacency=A)


@st.composite
def connected_graphs(draw, min_n: int = 2, max_n: int = 12) -> Topology:
    """A random connected undirected graph: a random spanning tree plus random edges."""
    n = draw(st.integers(min_n, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    p = draw(st.floats(0.0, 0.6))
    return random_connected(seed, n, p)


@st.composite
def strongly_connected_digraphs(draw, min_n: int = 2, max_n: int = 12) -> Topology:
    """A random strongly connected directed graph: a random Hamiltonian cycle plus arcs."""
    n = draw(st.integers(min_n, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    p = draw(st.floats(0.0, 0.5))
    rng = np.random.default_rng(seed)
    A = rng.random((n, n)) < p
    np.fill_diagonal(A, False)
    order = rng.permutation(n)
    A[order, np.roll(order, 1)] = True
    np.fill_diagonal(A, False)
    return Topology(name="random_directed", adjacency=A, directed=True)
