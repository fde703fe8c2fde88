"""Topologies, mixing rules, schedules over rounds, validation and spectral diagnostics."""

from dfl.topology.build import TOPOLOGIES, build_graphs, build_schedule
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
from dfl.topology.schedule import GraphSchedule, MixingSchedule
from dfl.topology.spectral import diagnose, plot_diagnostics
from dfl.topology.validate import check_requirements, validate_matrix, validate_schedule

__all__ = [
    "RULES",
    "TOPOLOGIES",
    "GraphSchedule",
    "MixingSchedule",
    "Topology",
    "build_graphs",
    "build_schedule",
    "check_requirements",
    "column_stochastic",
    "diagnose",
    "graph_defined",
    "lazy",
    "make_rule",
    "max_degree",
    "metropolis_hastings",
    "plot_diagnostics",
    "uniform",
    "validate_matrix",
    "validate_schedule",
]
