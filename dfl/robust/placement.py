"""Where the attackers sit: a count placed by a seed, or an explicit list; and what that gives.

A placement fixes the *run's* attackers. The robust rules' ``b`` is per neighbourhood, and
a placement by seed can put two attackers next to one node: :func:`attackers_per_node`
reports the count at every node, so a study can state what it actually tested (and
:func:`dfl.robust.requirements.check_in_degree` can be fed the honest nodes' degrees).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def place_attackers(
    n: int, *, count: int | None = None, nodes: Sequence[int] | None = None, seed: int = 0
) -> np.ndarray:
    """The attacker ids, sorted: ``count`` drawn without replacement by ``seed``, or ``nodes``.

    Args:
      n: number of nodes.
      count: how many attackers to place uniformly at random (``0 ≤ count < n``).
      nodes: an explicit list instead (distinct ids in ``[0, n)``, at least one honest node
        left).
      seed: the placement seed (used with ``count`` only).

    Raises:
      ValueError: for both or neither of ``count``/``nodes``, a count out of range, or an
        id that is out of range or repeated.
    """
    if (count is None) == (nodes is None):
        raise ValueError(f"give exactly one of count or nodes, found {count=}, {nodes=}")
    if nodes is not None:
        ids = np.asarray(list(nodes), dtype=np.int64)
        bad = [int(i) for i in ids if not 0 <= i < n]
        if bad:
            raise ValueError(f"attacker ids must lie in [0, {n}), found {bad}")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError(f"attacker ids must be distinct, found {sorted(ids.tolist())}")
        if len(ids) >= n:
            raise ValueError(
                f"at least one honest node is needed, found {len(ids)} attackers of {n}"
            )
        return np.sort(ids).astype(np.int32)
    assert count is not None
    if not 0 <= count < n:
        raise ValueError(f"attacker count must be in [0, {n}), found {count=}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=count, replace=False)).astype(np.int32)


def byzantine_mask(n: int, attackers: ArrayLike) -> np.ndarray:
    """``bool [N]``, ``True`` at the attackers."""
    mask = np.zeros(n, bool)
    mask[np.asarray(attackers, dtype=np.int64)] = True
    return mask


def attackers_per_node(dst: ArrayLike, src: ArrayLike, attackers: ArrayLike, n: int) -> np.ndarray:
    """``int [N]``: Byzantine in-neighbours of every node (over the edge list ``src → dst``)."""
    byz = byzantine_mask(n, attackers)
    d, s = np.asarray(dst, dtype=np.int64), np.asarray(src, dtype=np.int64)
    return np.bincount(d[byz[s]], minlength=n).astype(np.int32)


def placement_report(dst: ArrayLike, src: ArrayLike, attackers: ArrayLike, n: int) -> dict:
    """A JSON-ready summary: the attackers, the per-node count, its maximum over honest nodes."""
    per = attackers_per_node(dst, src, attackers, n)
    honest = ~byzantine_mask(n, attackers)
    return {
        "attackers": [int(a) for a in np.asarray(attackers)],
        "attackers_per_node": per.tolist(),
        "max_per_honest_node": int(per[honest].max(initial=0)),
    }
