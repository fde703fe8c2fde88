"""Time-varying one-peer topologies: one-peer exponential graph, random matching.

One-peer exponential (Ying et al. 2021): with ``tau = ceil(log2 n)``, at round ``t``
node ``i`` hears only node ``(i + 2^(t mod tau)) mod n`` and mixes

    W(t) = ½ I + ½ P_t,      (P_t)_{i, i + 2^(t mod tau)} = 1,

which is doubly stochastic. When ``n`` is a power of two the product of ``tau``
consecutive matrices is exactly ``J = 11ᵀ/n`` (exact averaging every period).

Random matching: at round ``t`` a uniformly random (near-)perfect matching is drawn
from a generator seeded by ``(seed, t)``; matched pairs average (``½, ½``), an
unmatched node (odd ``n``) keeps its value.

References:
  Ying, Yuan, Chen, Hu, Pan, Yin. "Exponential Graph is Provably Efficient for
  Decentralized Deep Training", NeurIPS 2021.
  Boyd, Ghosh, Prabhakar, Shah. "Randomized gossip algorithms", IEEE TIT 2006.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from dfl.topology.graph import Topology
from dfl.topology.schedule import GraphSchedule
from dfl.topology.static import circulant, exponential_offsets


def one_peer_exponential(n: int) -> GraphSchedule:
    """The one-peer exponential graph: period ``tau = ceil(log2 n)``, weights ``½ I + ½ P_t``.

    Args:
      n: number of nodes (exact averaging per period iff ``n`` is a power of two).

    Returns:
      The periodic :class:`GraphSchedule` (each graph carries its own weights).
    """
    if n < 1:
        raise ValueError(f"topology 'one_peer_exponential': expected n >= 1, found n={n}")
    offsets = exponential_offsets(n) or [0]
    graphs = []
    idx = np.arange(n)
    for s in offsets:
        g = circulant(n, [s], name=f"one_peer_exponential(+{s})", directed=True)
        if g.sparse:
            rows, cols = np.concatenate([idx, idx]), np.concatenate([idx, (idx + s) % n])
            W = scipy.sparse.csr_array((np.full(2 * n, 0.5), (rows, cols)), shape=(n, n))
            W.sum_duplicates()
            W.sort_indices()
        else:
            W = np.zeros((n, n))
            W[idx, idx] += 0.5
            W[idx, (idx + s) % n] += 0.5
        graphs.append(Topology(g.name, g.adjacency, directed=g.directed, weights=W))
    return GraphSchedule.cycle(graphs, name="one_peer_exponential")


def random_matching(n: int, *, seed: int) -> GraphSchedule:
    """A fresh uniformly random matching every round (random schedule, ``period=None``).

    Args:
      n: number of nodes.
      seed: the matching at round ``t`` is drawn from ``default_rng([seed, t])``.

    Returns:
      The random :class:`GraphSchedule` (each graph carries its own weights).
    """
    if n < 1:
        raise ValueError(f"topology 'random_matching': expected n >= 1, found n={n}")

    def sample(t: int) -> Topology:
        perm = np.random.default_rng([seed, t]).permutation(n)
        pairs = perm[: n - n % 2].reshape(-1, 2)
        A = np.zeros((n, n), dtype=bool)
        A[pairs[:, 0], pairs[:, 1]] = True
        A[pairs[:, 1], pairs[:, 0]] = True
        W = np.where(A, 0.5, 0.0)
        np.fill_diagonal(W, 1.0 - W.sum(axis=1))
        return Topology(name=f"random_matching(t={t})", adjacency=A, weights=W)

    return GraphSchedule.random(sample, name="random_matching", n=n, directed=False, one_peer=True)
