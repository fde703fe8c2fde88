"""From config to :class:`MixingSchedule`: the topology registry and :func:`build_schedule`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse

from dfl.config.topology_schema import MixingConfig, TopologyConfig
from dfl.topology import random_graphs, static
from dfl.topology.base_k import base_k
from dfl.topology.edge_list import from_edge_list
from dfl.topology.mixing import make_rule, natural_rule
from dfl.topology.schedule import GraphSchedule, MixingSchedule
from dfl.topology.time_varying import one_peer_exponential, random_matching
from dfl.topology.validate import validate_schedule

if TYPE_CHECKING:
    from dfl.algorithms.base import MixingRequirements

GraphBuilder = Callable[[TopologyConfig, int], GraphSchedule]
"""``builder(cfg, seed) -> GraphSchedule``."""


def _static(fn: Callable[[TopologyConfig, int], Any]) -> GraphBuilder:
    return lambda cfg, seed: GraphSchedule.static(fn(cfg, seed))


TOPOLOGIES: dict[str, GraphBuilder] = {
    "ring": _static(lambda c, s: static.ring(c.n)),
    "path": _static(lambda c, s: static.path(c.n)),
    "grid": _static(lambda c, s: static.grid(c.n, c.rows, c.cols)),
    "torus": _static(lambda c, s: static.torus(c.n, c.rows, c.cols)),
    "complete": _static(lambda c, s: static.complete(c.n)),
    "star": _static(lambda c, s: static.star(c.n)),
    "hypercube": _static(lambda c, s: static.hypercube(c.n)),
    "exponential": _static(lambda c, s: static.exponential(c.n, directed=c.directed)),
    "erdos_renyi": _static(
        lambda c, s: random_graphs.erdos_renyi(c.n, c.p, seed=s, max_tries=c.max_tries)
    ),
    "random_regular": _static(
        lambda c, s: random_graphs.random_regular(c.n, c.degree, seed=s, max_tries=c.max_tries)
    ),
    "small_world": _static(
        lambda c, s: random_graphs.small_world(
            c.n, c.degree, c.rewire, seed=s, max_tries=c.max_tries
        )
    ),
    "edge_list": _static(lambda c, s: from_edge_list(c.path, n=c.n, directed=c.directed)),
    "one_peer_exponential": lambda c, s: one_peer_exponential(c.n),
    "base_k": lambda c, s: base_k(c.n, c.k),
    "random_matching": lambda c, s: random_matching(c.n, seed=s),
}
"""Graph-schedule builders by ``topology.name``."""


def build_graphs(cfg: TopologyConfig, *, seed: int) -> GraphSchedule:
    """The graph schedule named by ``cfg.name``.

    Raises:
      ValueError: for an unknown name or invalid parameters.
    """
    if cfg.name not in TOPOLOGIES:
        raise ValueError(f"unknown topology {cfg.name!r}; expected one of {sorted(TOPOLOGIES)}")
    if cfg.name != "edge_list" and cfg.n < 2:
        raise ValueError(
            f"topology {cfg.name!r}: expected topology.n >= 2 (a decentralized run needs "
            f"at least two nodes), found topology.n={cfg.n}"
        )
    graphs = TOPOLOGIES[cfg.name](cfg, seed)
    if graphs.n < 2:
        raise ValueError(
            f"topology {cfg.name!r}: expected at least two nodes, found n={graphs.n} "
            f"(from {cfg.path!r})"
        )
    return graphs


def resolve_rule_name(name: str, graphs: GraphSchedule, *, stochastic: str = "row") -> str:
    """``name``, or for ``auto`` the natural rule of ``graphs`` (:func:`natural_rule`)."""
    if name != "auto":
        return str(name)
    rounds = range(graphs.period or 4)
    return natural_rule(
        defines_weights=all(graphs.graph_at(t).weights is not None for t in rounds),
        directed=graphs.directed,
        stochastic=stochastic,
    )


def _same_weights(a: Any, b: Any) -> bool:
    """``np.allclose(a, b)`` for dense or sparse mixing matrices."""
    if scipy.sparse.issparse(a) or scipy.sparse.issparse(b):
        diff = abs(scipy.sparse.csr_array(a) - scipy.sparse.csr_array(b))
        scale = abs(scipy.sparse.csr_array(b))
        return diff.nnz == 0 or bool((diff - 1e-5 * scale).max() <= 1e-8)
    return bool(np.allclose(a, b))


def build_schedule(
    cfg: TopologyConfig,
    mixing: MixingConfig,
    *,
    seed: int,
    requirements: MixingRequirements | None = None,
) -> MixingSchedule:
    """Builds and validates the mixing schedule of a topology and a mixing rule.

    ``mixing.name="auto"`` (and ``lazy``'s ``base="auto"``) is the topology's
    natural rule (:func:`dfl.topology.mixing.natural_rule`); the schedule's
    ``rule_name`` is the rule actually used.

    Args:
      cfg: the ``topology`` config group.
      mixing: the ``mixing`` config group.
      seed: seed of random graphs (Erdős–Rényi, random regular, small world,
        random matching).
      requirements: the algorithm's needs; on a directed graph ``auto`` picks
        ``column_stochastic`` when they ask for column sums of one.

    Returns:
      The validated :class:`MixingSchedule`.

    Raises:
      ValueError: unknown names, bad parameters (e.g. ``rows*cols != n``), a
        disconnected graph, a rule that does not apply (e.g. Metropolis–Hastings on
        a directed graph) or an invalid ``W``. Warns when ``W`` is valid but not
        doubly stochastic.

    Examples:
      >>> s = build_schedule(TopologyConfig("complete", n=4), MixingConfig("uniform"), seed=0)
      >>> s.weights(0)[0, 0]
      0.25
    """
    graphs = build_graphs(cfg, seed=seed)
    stochastic = requirements.stochastic if requirements is not None else "row"
    name = resolve_rule_name(mixing.name, graphs, stochastic=stochastic)
    base = resolve_rule_name(mixing.base, graphs, stochastic=stochastic)
    rule = make_rule(name, beta=mixing.beta, base=base)
    rule_name = f"lazy({base}, beta={mixing.beta:g})" if name == "lazy" else name
    own = [graphs.graph_at(t) for t in range(graphs.period or 4)]
    if any(g.weights is not None and not _same_weights(rule(g), g.weights) for g in own):
        warnings.warn(
            f"topology {graphs.name!r} defines its own weights but mixing {rule_name!r} "
            "replaces them (its exact-averaging property may be lost); use "
            "mixing=graph_defined for the paper's weights",
            UserWarning,
            stacklevel=2,
        )
    schedule = MixingSchedule.build(graphs, rule, rule_name=rule_name)
    validate_schedule(schedule)
    return schedule
