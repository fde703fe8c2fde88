"""Structured-config schema of the ``topology`` and ``mixing`` groups."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TopologyConfig:
    """Which graph the nodes gossip over (``conf/topology/*.yaml``).

    Fields that a topology does not use are ignored by it.

    Attributes:
      name: builder name, one of ``ring``, ``path``, ``grid``, ``torus``, ``complete``,
        ``star``, ``hypercube``, ``erdos_renyi``, ``random_regular``, ``small_world``,
        ``exponential``, ``one_peer_exponential``, ``base_k``, ``random_matching``,
        ``edge_list``.
      n: number of nodes (``edge_list``: 0 infers it from the largest node id).
      rows: ``grid``/``torus`` rows; 0 infers it (with ``cols`` also 0, the
        factorisation of ``n`` closest to a square). ``rows * cols`` must equal ``n``.
      cols: ``grid``/``torus`` columns; 0 infers it.
      p: ``erdos_renyi`` edge probability.
      degree: ``random_regular`` degree d (``n * d`` even); ``small_world`` number of
        nearest ring neighbours each node starts with (even).
      rewire: ``small_world`` (Watts–Strogatz) rewiring probability.
      directed: ``exponential``: the directed graph ``i`` hears ``i + 2^j`` (Ying et
        al. 2021) instead of the symmetrised one; ``edge_list``: read arcs ``u → v``.
      k: ``base_k``: peers per node per round (the base-(k+1) graph).
      max_tries: resampling budget of the random graphs until one is connected.
      path: ``edge_list``: file of ``u v`` lines (0-based node ids, ``#`` comments).
    """

    name: str = "ring"
    n: int = 16
    rows: int = 0
    cols: int = 0
    p: float = 0.3
    degree: int = 4
    rewire: float = 0.1
    directed: bool = False
    k: int = 1
    max_tries: int = 100
    path: str = ""


@dataclasses.dataclass
class MixingConfig:
    """How a graph becomes a mixing matrix ``W`` (``conf/mixing/*.yaml``).

    Attributes:
      name: ``auto`` (the default: the topology's natural rule, see
        :func:`dfl.topology.mixing.natural_rule`), ``metropolis_hastings``,
        ``max_degree``, ``uniform``, ``lazy``, ``column_stochastic`` (push-sum) or
        ``graph_defined`` (the weights of the one-peer exponential, base-(k+1) and
        random-matching graphs).
      beta: ``lazy``: self weight β in ``β I + (1 - β) W_base``, ``0 <= β < 1``.
      base: ``lazy``: the rule that gives ``W_base`` (any name above but ``lazy``).
    """

    name: str = "auto"
    beta: float = 0.5
    base: str = "auto"
