"""Topologies, mixing rules, schedules over rounds, validation and spectral diagnostics.

Conventions: ``W[i, j]`` is the weight node ``i`` gives to node ``j``'s message
(``Topology.adjacency[i, j]``: node ``i`` hears node ``j``); a round of gossip is
``x_i ← Σ_j W_ij x_j``. Entry point for runners: :func:`build_schedule`.
"""

from dfl.topology.base_k import base_k, base_k_matrices
from dfl.topology.build import TOPOLOGIES, build_graphs, build_schedule
from dfl.topology.edge_list import from_edge_list
from dfl.topology.graph import Topology
from dfl.topology.mixing import (
    RULES,
    column_stochastic,
    graph_defined,
    lazy,
    make_rule,
    max_degree,
    metropolis_hastings,
    uniform,
)
from dfl.topology.random_graphs import erdos_renyi, random_regular, small_world
from dfl.topology.schedule import GraphSchedule, MixingSchedule
from dfl.topology.spectral import diagnose, plot_diagnostics
from dfl.topology.static import (
    circulant,
    complete,
    exponential,
    grid,
    hypercube,
    path,
    ring,
    star,
    torus,
)
from dfl.topology.time_varying import one_peer_exponential, random_matching
from dfl.topology.validate import check_requirements, validate_matrix, validate_schedule

__all__ = [
    "RULES",
    "TOPOLOGIES",
    "GraphSchedule",
    "MixingSchedule",
    "Topology",
    "base_k",
    "base_k_matrices",
    "build_graphs",
    "build_schedule",
    "check_requirements",
    "circulant",
    "column_stochastic",
    "complete",
    "diagnose",
    "erdos_renyi",
    "exponential",
    "from_edge_list",
    "graph_defined",
    "grid",
    "hypercube",
    "lazy",
    "make_rule",
    "max_degree",
    "metropolis_hastings",
    "one_peer_exponential",
    "path",
    "plot_diagnostics",
    "random_matching",
    "random_regular",
    "ring",
    "small_world",
    "star",
    "torus",
    "uniform",
    "validate_matrix",
    "validate_schedule",
]
