"""Mixing rules: a :class:`Topology` becomes a mixing matrix ``W``.

``W[i, j]`` is the weight node ``i`` gives to node ``j``'s message; it is non-zero
only for ``j = i`` or ``j → i``. With ``d_i`` the degree of node ``i``:

* Metropolis–Hastings: ``W_ij = 1 / (1 + max(d_i, d_j))`` on edges,
  ``W_ii = 1 - Σ_{j≠i} W_ij``. Symmetric, doubly stochastic (undirected only).
* max-degree: ``W_ij = 1 / (1 + d_max)`` on edges, ``W_ii = 1 - d_i / (1 + d_max)``.
  Symmetric, doubly stochastic (undirected only).
* uniform: ``W_ij = 1 / (1 + d_i^in)`` for ``j ∈ N_in(i) ∪ {i}``. Row stochastic;
  doubly stochastic iff the graph is regular (``complete`` gives exactly ``11ᵀ/n``).
* column-stochastic (push-sum): node ``j`` splits its mass uniformly over itself and
  its out-neighbours, ``W_ij = 1 / (1 + d_j^out)`` for ``i ∈ N_out(j) ∪ {j}``.
* lazy: ``β I + (1 - β) W_base`` for any of the above as base.
* graph-defined: the weights the (time-varying) graph defines itself
  (one-peer exponential, base-(k+1), random matching).
* auto (the default): the topology's natural rule, :func:`natural_rule`.

On a sparse topology (``topology.sparse``) every rule returns a float64
``scipy.sparse.csr_array`` with the same entries (stored: the diagonal and the arcs),
never an ``n x n`` array.

References:
  Xiao, Boyd. "Fast linear iterations for distributed averaging", 2004.
  Kempe, Dobra, Gehrke. "Gossip-based computation of aggregate information", FOCS 2003.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse

from dfl.topology.graph import Topology, shape_of

Matrix = np.ndarray | scipy.sparse.csr_array
"""A mixing matrix: dense, or a ``csr_array`` on sparse graphs."""

Rule = Callable[[Topology], Matrix]
"""A mixing rule: ``rule(topology) -> W`` (float64 ``[n, n]``; sparse on sparse graphs)."""


def _arc_rows(topology: Topology) -> tuple[np.ndarray, np.ndarray]:
    """``(dst, src)`` of every arc, row-major (the CSR order of ``topology.arcs``)."""
    A = topology.arcs
    return np.repeat(np.arange(topology.n), np.diff(A.indptr)), A.indices.astype(np.int64)


def _with_diagonal(
    n: int, dst: np.ndarray, src: np.ndarray, w: np.ndarray, diag: np.ndarray
) -> scipy.sparse.csr_array:
    """The ``csr_array`` with off-diagonal ``w`` at ``[dst, src]`` and ``diag`` on the diagonal."""
    idx = np.arange(n)
    rows = np.concatenate([dst, idx])
    cols = np.concatenate([src, idx])
    W = scipy.sparse.csr_array((np.concatenate([w, diag]), (rows, cols)), shape=(n, n))
    W.sum_duplicates()
    W.sort_indices()
    return W


EXACT_SUMS_UPTO = 65536
"""Up to this many nodes a sparse rule's row sums are bit-identical to the dense rule's."""


def _self_weights(n: int, dst: np.ndarray, src: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``1 - Σ_{j≠i} W_ij`` per row (off-diagonal weights ``w`` at ``[dst, src]``, row-major).

    Up to :data:`EXACT_SUMS_UPTO` nodes the sums are numpy's own pairwise row sums of
    the dense rows, rebuilt a block of rows at a time (``O(n)`` memory, ``O(n²)``
    time), so ``W`` is bit-identical to the dense rule's; above, one sequential
    ``bincount`` (``O(E)``; may differ from the dense sums in the last bit).
    """
    if n > EXACT_SUMS_UPTO:
        return 1.0 - np.bincount(dst, weights=w, minlength=n)
    off = scipy.sparse.csr_array((w, (dst, src)), shape=(n, n))
    rows = max(1, (1 << 20) // max(n, 1))
    sums = np.empty(n)
    for start in range(0, n, rows):
        sums[start : start + rows] = off[start : start + rows].toarray().sum(axis=1)
    return 1.0 - sums


def _require_undirected(topology: Topology, rule: str) -> None:
    if topology.directed:
        raise ValueError(
            f"mixing rule {rule!r} needs an undirected graph, but topology "
            f"{topology.name!r} is directed; use 'column_stochastic' (push-sum), 'uniform' "
            "(row stochastic) or 'graph_defined' for directed graphs"
        )


def metropolis_hastings(topology: Topology) -> Matrix:
    """Metropolis–Hastings weights ``W_ij = 1/(1 + max(d_i, d_j))``.

    Args:
      topology: an undirected graph.

    Returns:
      Symmetric doubly stochastic ``W`` (float64 ``[n, n]``).
    """
    _require_undirected(topology, "metropolis_hastings")
    d = topology.degree.astype(np.float64)
    if topology.sparse:
        dst, src = _arc_rows(topology)
        w = 1.0 / (1.0 + np.maximum(d[dst], d[src]))
        return _with_diagonal(topology.n, dst, src, w, _self_weights(topology.n, dst, src, w))
    W = np.where(topology.dense_adjacency(), 1.0 / (1.0 + np.maximum(d[:, None], d[None, :])), 0.0)
    np.fill_diagonal(W, 1.0 - W.sum(axis=1))
    return W


def max_degree(topology: Topology) -> Matrix:
    """Max-degree weights ``W = I - L / (1 + d_max)`` (``L`` the graph Laplacian).

    Args:
      topology: an undirected graph.

    Returns:
      Symmetric doubly stochastic ``W`` (float64 ``[n, n]``).
    """
    _require_undirected(topology, "max_degree")
    d = topology.degree
    dmax = float(d.max()) if d.size else 0.0
    if topology.sparse:
        dst, src = _arc_rows(topology)
        w = np.full(len(dst), 1.0 / (1.0 + dmax))
        return _with_diagonal(topology.n, dst, src, w, _self_weights(topology.n, dst, src, w))
    W = np.where(topology.dense_adjacency(), 1.0 / (1.0 + dmax), 0.0)
    np.fill_diagonal(W, 1.0 - W.sum(axis=1))
    return W


def uniform(topology: Topology) -> Matrix:
    """Uniform weights ``1/(1 + d_i^in)`` over each node's in-neighbours and itself.

    Args:
      topology: any graph.

    Returns:
      Row stochastic ``W``; doubly stochastic when in- and out-degrees are all equal.
    """
    if topology.sparse:
        dst, src = _arc_rows(topology)
        share = 1.0 / (1.0 + topology.in_degree).astype(np.float64)
        return _with_diagonal(topology.n, dst, src, share[dst], share)
    S = topology.dense_adjacency() | np.eye(topology.n, dtype=bool)
    return np.where(S, 1.0 / S.sum(axis=1, keepdims=True).astype(np.float64), 0.0)


def column_stochastic(topology: Topology) -> Matrix:
    """Push-sum weights: node ``j`` splits its mass over itself and its out-neighbours.

    ``W_ij = 1 / (1 + d_j^out)`` for ``i ∈ N_out(j) ∪ {j}``.

    Args:
      topology: any graph.

    Returns:
      Column stochastic ``W``.

    References:
      Kempe, Dobra, Gehrke (2003); Assran et al. "Stochastic Gradient Push", ICML 2019.
    """
    if topology.sparse:
        dst, src = _arc_rows(topology)
        share = 1.0 / (1.0 + topology.out_degree).astype(np.float64)
        return _with_diagonal(topology.n, dst, src, share[src], share)
    S = topology.dense_adjacency() | np.eye(topology.n, dtype=bool)
    return np.where(S, 1.0 / S.sum(axis=0, keepdims=True).astype(np.float64), 0.0)


def graph_defined(topology: Topology) -> Matrix:
    """The weights the graph defines itself (``topology.weights``).

    Raises:
      ValueError: if the topology defines none.
    """
    if topology.weights is None:
        raise ValueError(
            f"mixing rule 'graph_defined' needs a topology that defines its own weights "
            f"(one_peer_exponential, base_k, random_matching); topology {topology.name!r} "
            "defines none: choose metropolis_hastings, max_degree, uniform or column_stochastic"
        )
    if scipy.sparse.issparse(topology.weights):
        return scipy.sparse.csr_array(topology.weights, dtype=np.float64, copy=True)
    return np.array(topology.weights, dtype=np.float64)


def lazy(W: Matrix, beta: float) -> Matrix:
    """The lazy version ``β I + (1 - β) W`` of a mixing matrix.

    Args:
      W: a mixing matrix.
      beta: self weight added, in ``[0, 1)``.

    Returns:
      The lazy matrix (same stochasticity and symmetry as ``W``; spectrum
      ``β + (1 - β) λ``, so all eigenvalues are ``>= 2β - 1``).
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"mixing rule 'lazy': expected 0 <= beta < 1, found beta={beta!r}")
    n = shape_of(W)[0]
    if scipy.sparse.issparse(W):
        eye = scipy.sparse.csr_array((np.full(n, beta), (np.arange(n), np.arange(n))), shape=(n, n))
        out = scipy.sparse.csr_array(eye + (1.0 - beta) * W)
        out.sort_indices()
        return out
    return beta * np.eye(n) + (1.0 - beta) * np.asarray(W)


RULES: dict[str, Rule] = {
    "metropolis_hastings": metropolis_hastings,
    "max_degree": max_degree,
    "uniform": uniform,
    "column_stochastic": column_stochastic,
    "graph_defined": graph_defined,
}
"""The base rules by config name (``lazy`` wraps one of them)."""


def natural_rule(*, defines_weights: bool, directed: bool, stochastic: str = "row") -> str:
    """The name of a topology's natural mixing rule (what ``mixing=auto`` picks).

    * ``graph_defined`` where the graph defines its own weights (one-peer exponential,
      base-(k+1), random matching): their exact-averaging properties are the point of
      those graphs;
    * ``metropolis_hastings`` on undirected graphs (symmetric, doubly stochastic);
    * on directed graphs, a rule the algorithm accepts: ``column_stochastic`` when it
      needs column sums of one (push-sum), else ``uniform`` (row stochastic, doubly
      stochastic on regular digraphs such as the directed exponential graph).

    Args:
      defines_weights: whether every round's graph carries its own weights.
      directed: whether some round's graph has one-way arcs.
      stochastic: the algorithm's ``MixingRequirements.stochastic``
        (``"row"``, ``"column"`` or ``"doubly"``).

    Returns:
      A key of :data:`RULES`.
    """
    if defines_weights:
        return "graph_defined"
    if not directed:
        return "metropolis_hastings"
    return "column_stochastic" if stochastic == "column" else "uniform"


def make_rule(name: str, *, beta: float = 0.5, base: str = "metropolis_hastings") -> Rule:
    """The rule named ``name`` (``lazy`` wraps the rule ``base`` with self weight ``beta``).

    Args:
      name: one of :data:`RULES` or ``"lazy"`` (``"auto"`` is resolved before, by
        :func:`natural_rule`).
      beta: lazy self weight.
      base: the rule ``lazy`` wraps.

    Returns:
      ``rule(topology) -> W``.
    """
    if name == "lazy":
        if base == "lazy" or base not in RULES:
            raise ValueError(
                f"mixing rule 'lazy': unknown base rule {base!r}; expected one of {sorted(RULES)}"
            )
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"mixing rule 'lazy': expected 0 <= beta < 1, found beta={beta!r}")
        inner = RULES[base]
        return lambda topology: lazy(inner(topology), beta)
    if name not in RULES:
        raise ValueError(
            f"unknown mixing rule {name!r}; expected one of {sorted([*RULES, 'lazy'])}"
        )
    return RULES[name]
