"""What each robust rule needs of the graph, and the check that refuses a graph that breaks it.

``b`` is always *per neighbourhood*: the number of Byzantine in-neighbours a rule is
asked to tolerate at each honest node (not the number of attackers in the whole run;
:func:`dfl.robust.placement.attackers_per_node` reports what a placement produced).

=================  ===========================  =========================================
rule               needs (at every node)        why
=================  ===========================  =========================================
``trimmed_mean``   in-degree ``≥ 2b + 1``        BRIDGE-T: ``b`` trimmed per side, ≥ 1 left
``median``         in-degree ``≥ 2b + 1``        BRIDGE's condition for BRIDGE-M
``krum``           in-degree ``≥ 2b + 2``        Krum's ``n > 2f + 2``, ``n = in-degree + 1``
``clipped_gossip`` nothing structural            the radius bounds each neighbour's pull
=================  ===========================  =========================================
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike

MIN_IN_DEGREE = {
    "trimmed_mean": lambda b: 2 * b + 1,
    "median": lambda b: 2 * b + 1,
    "krum": lambda b: 2 * b + 2,
    "clipped_gossip": lambda b: 0,
}
"""The least in-degree each rule needs, as a function of ``b``."""


def required_in_degree(rule: str, b: int) -> int:
    """The least in-degree ``rule`` needs at every node to tolerate ``b`` Byzantine neighbours."""
    if rule not in MIN_IN_DEGREE:
        raise ValueError(f"unknown robust rule {rule!r}; expected one of {sorted(MIN_IN_DEGREE)}")
    if b < 0:
        raise ValueError(f"b must be >= 0, found {b=}")
    return MIN_IN_DEGREE[rule](b)


def check_in_degree(
    in_degree: ArrayLike, *, rule: str, b: int, unsafe: bool = False, nodes: ArrayLike | None = None
) -> list[int]:
    """Refuses a graph where some node has too few in-neighbours for ``rule`` at ``b``.

    Args:
      in_degree: ``[N]`` in-degree of every node (self-loop excluded), e.g.
        :func:`dfl.robust.segments.in_degree`; a concrete array (host side).
      rule: a key of :data:`MIN_IN_DEGREE`.
      b: Byzantine in-neighbours to tolerate per neighbourhood.
      unsafe: warn instead of raising (a study that shows a rule failing needs exactly
        those cells); the caller should record it in the run's metadata.
      nodes: check only these nodes (e.g. the honest ones); default all.

    Returns:
      The nodes that violate the requirement (empty when it holds).

    Raises:
      ValueError: naming the first violating node, its in-degree and what was needed
        (unless ``unsafe``).
    """
    need = required_in_degree(rule, b)
    deg = np.asarray(in_degree).astype(int)
    which = np.arange(deg.shape[0]) if nodes is None else np.asarray(nodes, dtype=int)
    bad = [int(i) for i in which if deg[i] < need]
    if bad:
        i = bad[0]
        msg = (
            f"{rule} with b={b} needs in-degree >= {need} at every node; node {i} has "
            f"in-degree {deg[i]} ({len(bad)} node(s) violate it: {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''})"
        )
        if not unsafe:
            raise ValueError(msg + "; pass unsafe=True to run it anyway")
        warnings.warn("unsafe: " + msg, stacklevel=2)
    return bad
