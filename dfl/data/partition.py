"""Split a training set over nodes: IID, Dirichlet label skew, label shards, natural groups.

Every scheme returns one sorted int64 index array per node. ``iid``,
``dirichlet``, ``shards`` and ``natural`` all give disjoint arrays that together
cover every sample exactly once. The same ``seed`` gives the same partition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCHEMES: tuple[str, ...] = ("iid", "dirichlet", "shards", "natural")
"""The valid partition schemes."""

_PARTITION_STREAM = 22  # keeps the partition's random stream apart from the data split's


def partition(
    labels: np.ndarray,
    num_nodes: int,
    scheme: str,
    *,
    seed: int,
    alpha: float = 0.5,
    classes_per_node: int = 2,
    groups: np.ndarray | None = None,
    min_size: int = 1,
    max_tries: int = 100,
) -> list[np.ndarray]:
    """Assigns every training sample to one node.

    * ``iid``: a random permutation cut into ``num_nodes`` near-equal parts
      (sizes differ by at most one).
    * ``dirichlet``: for every class ``c``, proportions ``p_c ~ Dir(alpha · 1_N)``
      over nodes, and the class's shuffled samples are cut by ``cumsum(p_c)``.
      Redrawn until every node holds at least ``min_size`` samples, at most
      ``max_tries`` times. Small ``alpha`` -> few classes per node; large -> near IID.
    * ``shards``: the samples, grouped by label, are cut into
      ``num_nodes * classes_per_node`` single-class shards (shards are given to
      classes in proportion to class size, at least one each) and every node
      gets ``classes_per_node`` random shards, so it sees at most
      ``classes_per_node`` classes. Needs ``num_nodes * classes_per_node`` to be
      at least the number of classes present.
    * ``natural``: node ``i`` gets the samples of the ``i``-th smallest value in
      ``groups`` (e.g. the device of a Synthetic(α, β) sample); the number of
      distinct groups must equal ``num_nodes``.

    Args:
      labels: int labels ``[n]``.
      num_nodes: number of nodes ``N``.
      scheme: one of :data:`SCHEMES`.
      seed: seed of the partition.
      alpha: Dirichlet concentration (``dirichlet`` only), > 0.
      classes_per_node: shards per node (``shards`` only), >= 1.
      groups: natural group of every sample ``[n]`` (``natural`` only).
      min_size: fewest samples a node may get (``dirichlet``; checked for all).
      max_tries: Dirichlet redraws before giving up.

    Returns:
      ``N`` sorted int64 index arrays.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, found {labels.shape=}")
    n = labels.shape[0]
    if scheme not in SCHEMES:
        raise ValueError(f"unknown partition scheme {scheme!r}; expected one of {list(SCHEMES)}")
    if int(num_nodes) != num_nodes or num_nodes < 1:
        raise ValueError(f"num_nodes must be a positive integer, found {num_nodes!r}")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0, found {min_size}")
    if num_nodes * max(min_size, 1) > n:
        raise ValueError(
            f"cannot give {num_nodes} nodes at least {max(min_size, 1)} sample(s) each from "
            f"{n} samples; expected num_nodes * min_size <= {n}"
        )
    rng = np.random.default_rng([seed, _PARTITION_STREAM])
    if scheme == "iid":
        parts = np.array_split(rng.permutation(n), num_nodes)
    elif scheme == "dirichlet":
        parts = _dirichlet(labels, num_nodes, alpha, min_size, max_tries, rng)
    elif scheme == "shards":
        parts = _shards(labels, num_nodes, classes_per_node, rng)
    else:
        parts = _natural(groups, num_nodes, n)
    parts = [np.sort(p).astype(np.int64) for p in parts]
    sizes = np.array([p.size for p in parts])
    if sizes.min() < min_size:
        raise ValueError(
            f"{scheme} partition gave node {int(sizes.argmin())} only {sizes.min()} samples; "
            f"expected at least min_size={min_size}"
        )
    return parts


def _dirichlet(
    labels: np.ndarray,
    num_nodes: int,
    alpha: float,
    min_size: int,
    max_tries: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    if not alpha > 0:
        raise ValueError(f"dirichlet alpha must be > 0, found {alpha!r}")
    classes = np.unique(labels)
    smallest = 0
    for _ in range(max_tries):
        buckets: list[list[np.ndarray]] = [[] for _ in range(num_nodes)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            p = rng.dirichlet(np.full(num_nodes, alpha))
            cuts = (np.cumsum(p)[:-1] * idx.size).astype(np.int64)
            for node, chunk in enumerate(np.split(idx, cuts)):
                buckets[node].append(chunk)
        parts = [np.concatenate(b) for b in buckets]
        smallest = min(p.size for p in parts)
        if smallest >= min_size:
            return parts
    raise ValueError(
        f"dirichlet partition (alpha={alpha}) could not give each of {num_nodes} nodes at "
        f"least min_size={min_size} samples in {max_tries} draws (smallest node in the last "
        f"draw: {smallest}); raise alpha, or lower min_size or the number of nodes"
    )


def _shards(
    labels: np.ndarray, num_nodes: int, classes_per_node: int, rng: np.random.Generator
) -> list[np.ndarray]:
    if int(classes_per_node) != classes_per_node or classes_per_node < 1:
        raise ValueError(f"classes_per_node must be a positive integer, found {classes_per_node!r}")
    classes, class_sizes = np.unique(labels, return_counts=True)
    num_shards = num_nodes * classes_per_node
    if num_shards < classes.size:
        raise ValueError(
            f"shards partition needs num_nodes * classes_per_node >= {classes.size} (the number "
            f"of classes) to cover every sample, found {num_nodes} * {classes_per_node} = "
            f"{num_shards}"
        )
    if num_shards > labels.size:
        raise ValueError(
            f"shards partition needs num_nodes * classes_per_node <= {labels.size} samples, "
            f"found {num_shards}"
        )
    # D'Hondt apportionment: one shard per class, then each extra shard to the class
    # with the largest samples-per-shard (never more shards than samples).
    per_class = np.ones(classes.size, dtype=np.int64)
    for _ in range(num_shards - classes.size):
        score = np.where(per_class < class_sizes, class_sizes / (per_class + 1), -1.0)
        per_class[int(np.argmax(score))] += 1
    shards: list[np.ndarray] = []
    for c, k in zip(classes, per_class, strict=True):
        shards.extend(np.array_split(rng.permutation(np.flatnonzero(labels == c)), k))
    order = rng.permutation(num_shards)
    return [
        np.concatenate(
            [shards[s] for s in order[i * classes_per_node : (i + 1) * classes_per_node]]
        )
        for i in range(num_nodes)
    ]


def _natural(groups: np.ndarray | None, num_nodes: int, n: int) -> list[np.ndarray]:
    if groups is None:
        raise ValueError(
            "natural partition needs per-sample groups (a dataset with natural groups, e.g. "
            "'synthetic'), found groups=None"
        )
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},) like labels, found {groups.shape}")
    values = np.unique(groups)
    if values.size != num_nodes:
        raise ValueError(
            f"natural partition needs as many groups as nodes: found {values.size} groups for "
            f"num_nodes={num_nodes} (for synthetic, set num_devices to the number of nodes)"
        )
    return [np.flatnonzero(groups == g) for g in values]


def partition_summary(
    parts: list[np.ndarray], labels: np.ndarray, num_classes: int
) -> dict[str, Any]:
    """Per-node sample counts and class histograms, as plain (JSON-ready) lists.

    Args:
      parts: per-node index arrays.
      labels: int labels ``[n]`` the indices point into.
      num_classes: number of classes ``C``.

    Returns:
      ``{"counts": [N] ints, "class_counts": [N][C] ints, "classes_per_node": [N] ints
      (classes with at least one sample), "min": int, "max": int, "mean": float}``.
    """
    labels = np.asarray(labels)
    hist = np.stack(
        [np.bincount(labels[p], minlength=num_classes)[:num_classes] for p in parts]
    ).astype(np.int64)
    counts = hist.sum(axis=1)
    return {
        "counts": counts.tolist(),
        "class_counts": hist.tolist(),
        "classes_per_node": (hist > 0).sum(axis=1).tolist(),
        "min": int(counts.min()),
        "max": int(counts.max()),
        "mean": float(counts.mean()),
    }
