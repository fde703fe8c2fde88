"""Builders of random static graphs, resampled until connected.

Erdős–Rényi ``G(n, p)``, random d-regular and Watts–Strogatz small-world graphs.
Each draw is reproducible from ``seed``; after ``max_tries`` disconnected draws
a ``ValueError`` says which parameter to raise.

References:
  Erdős, Rényi. "On random graphs I", 1959.
  Watts, Strogatz. "Collective dynamics of 'small-world' networks", Nature 1998.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dfl.topology.graph import Topology


def _from_nx(G, n: int, name: str) -> Topology:
    return Topology.from_edges(n, [(int(u), int(v)) for u, v in G.edges()], name=name)


def _until_connected(
    draw: Callable[[np.random.Generator], Topology],
    *,
    seed: int,
    max_tries: int,
    what: str,
    hint: str,
) -> Topology:
    if max_tries < 1:
        raise ValueError(f"topology {what}: expected max_tries >= 1, found {max_tries}")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        g = draw(rng)
        if g.is_connected():
            return g
    raise ValueError(
        f"topology {what}: no connected graph in max_tries={max_tries} draws (seed={seed}); {hint}"
    )


def erdos_renyi(n: int, p: float, *, seed: int, max_tries: int = 100) -> Topology:
    """An Erdős–Rényi graph ``G(n, p)`` (each edge present with probability ``p``).

    Args:
      n: number of nodes.
      p: edge probability in ``(0, 1]``.
      seed: seed of the draws.
      max_tries: how many draws before giving up.

    Returns:
      The first connected draw.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"topology 'erdos_renyi': expected 0 < p <= 1, found p={p!r}")

    def draw(rng: np.random.Generator) -> Topology:
        upper = np.triu(rng.random((n, n)) < p, k=1)
        return Topology(name=f"erdos_renyi(p={p:g})", adjacency=upper | upper.T)

    threshold = math.log(max(n, 2)) / max(n, 2)
    return _until_connected(
        draw,
        seed=seed,
        max_tries=max_tries,
        what=f"'erdos_renyi' (n={n}, p={p:g})",
        hint=f"raise p above the connectivity threshold log(n)/n = {threshold:.3g} "
        "or raise max_tries",
    )


def random_regular(n: int, d: int, *, seed: int, max_tries: int = 100) -> Topology:
    """A uniformly random simple d-regular graph.

    Args:
      n: number of nodes.
      d: degree, ``0 < d < n`` and ``n * d`` even.
      seed: seed of the draws.
      max_tries: how many draws before giving up.

    Returns:
      The first connected draw.
    """
    if not 0 < d < n or (n * d) % 2:
        raise ValueError(
            f"topology 'random_regular': expected 0 < degree < n with n*degree even, "
            f"found degree={d}, n={n}"
        )

    import networkx as nx

    def draw(rng: np.random.Generator) -> Topology:
        G = nx.random_regular_graph(d, n, seed=int(rng.integers(2**31)))
        return _from_nx(G, n, f"random_regular(d={d})")

    return _until_connected(
        draw,
        seed=seed,
        max_tries=max_tries,
        what=f"'random_regular' (n={n}, degree={d})",
        hint="raise the degree (d >= 3 is connected with high probability) or max_tries",
    )


def small_world(n: int, k: int, rewire: float, *, seed: int, max_tries: int = 100) -> Topology:
    """A Watts–Strogatz small-world graph.

    Start from the ring lattice where each node is joined to its ``k`` nearest
    neighbours (``k/2`` on each side), then rewire each edge with probability
    ``rewire``.

    Args:
      n: number of nodes.
      k: even number of nearest neighbours, ``2 <= k < n``.
      rewire: rewiring probability in ``[0, 1]``.
      seed: seed of the draws.
      max_tries: how many draws before giving up.

    Returns:
      The first connected draw.
    """
    if k < 2 or k >= n or k % 2:
        raise ValueError(
            f"topology 'small_world': expected an even degree 2 <= degree < n, found "
            f"degree={k}, n={n}"
        )
    if not 0.0 <= rewire <= 1.0:
        raise ValueError(f"topology 'small_world': expected 0 <= rewire <= 1, found {rewire!r}")

    import networkx as nx

    def draw(rng: np.random.Generator) -> Topology:
        G = nx.watts_strogatz_graph(n, k, rewire, seed=int(rng.integers(2**31)))
        return _from_nx(G, n, f"small_world(k={k}, p={rewire:g})")

    return _until_connected(
        draw,
        seed=seed,
        max_tries=max_tries,
        what=f"'small_world' (n={n}, degree={k}, rewire={rewire:g})",
        hint="lower rewire, raise the degree or raise max_tries",
    )
