"""Builders of the deterministic static graphs.

ring, path, 2-D grid, 2-D torus, complete, star, hypercube and the static
exponential graph (Ying et al. 2021), undirected or directed.

References:
  Ying, Yuan, Chen, Hu, Pan, Yin. "Exponential Graph is Provably Efficient for
  Decentralized Deep Training", NeurIPS 2021.
"""

from __future__ import annotations

import math

import numpy as np

from dfl.topology.graph import Topology, arcs_matrix, want_sparse


def _check_n(n: int, name: str, minimum: int = 1) -> None:
    if not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"topology {name!r}: expected an integer n >= {minimum}, found n={n!r}")


def circulant(
    n: int, offsets: list[int], *, name: str, directed: bool = False, sparse: bool | None = None
) -> Topology:
    """A circulant graph: node ``i`` hears node ``(i + s) mod n`` for each offset ``s``.

    Args:
      n: number of nodes.
      offsets: the offsets ``s`` (taken mod ``n``; 0 is ignored).
      name: name of the result.
      directed: if ``False`` the offsets ``-s`` are added too.
      sparse: store the adjacency sparse (``None``: above ``SPARSE_ABOVE`` nodes).

    Returns:
      The :class:`Topology`.
    """
    idx = np.arange(n)
    if want_sparse(n, sparse):
        shifts = {s % n for s in offsets} | (set() if directed else {-s % n for s in offsets})
        shifts.discard(0)
        cols = [(idx + s) % n for s in sorted(shifts)]
        dst = np.tile(idx, len(cols))
        src = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        A = arcs_matrix(n, dst, src)
        return Topology(name=name, adjacency=A, directed=directed and bool((A != A.T).nnz))
    A = np.zeros((n, n), dtype=bool)
    for s in offsets:
        s %= n
        if s == 0:
            continue
        A[idx, (idx + s) % n] = True
        if not directed:
            A[idx, (idx - s) % n] = True
    return Topology(name=name, adjacency=A, directed=directed and not np.array_equal(A, A.T))


def ring(n: int) -> Topology:
    """The cycle ``i ~ i ± 1 (mod n)`` (a single edge for n = 2)."""
    _check_n(n, "ring")
    return circulant(n, [1], name="ring")


def path(n: int) -> Topology:
    """The path ``0 - 1 - ... - (n-1)``."""
    _check_n(n, "path")
    return Topology.from_edges(n, [(i, i + 1) for i in range(n - 1)], name="path")


def factor_grid(n: int, rows: int, cols: int, *, name: str) -> tuple[int, int]:
    """Resolves the shape ``rows x cols = n`` of a grid or torus.

    ``0`` means "infer": with both 0 the factorisation closest to a square is used;
    with one given the other is ``n // given``.

    Raises:
      ValueError: if the shape does not multiply to ``n``, or if both are inferred
        and ``n`` is prime (the only shape, ``1 x n``, is a path or a ring: an
        error rather than a warning, since a sweep's log would bury the warning and
        its results would be labelled with a grid they never ran on).
    """
    _check_n(n, name)
    if rows < 0 or cols < 0:
        raise ValueError(f"topology {name!r}: rows/cols must be >= 0, found {rows=}, {cols=}")
    if rows == 0 and cols == 0:
        rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
        cols = n // rows
        if rows == 1 and n > 1:
            flat = "path" if name == "grid" else "ring"
            raise ValueError(
                f"topology {name!r}: n={n} is prime, so the only shape is 1x{n}, which is "
                f"a {flat}, not a 2-D {name}; choose an n with a factor (e.g. n={n + 1}), "
                f"topology={flat}, or set rows=1 cols={n} to mean it"
            )
    elif rows == 0:
        rows = n // cols
    elif cols == 0:
        cols = n // rows
    if rows * cols != n:
        raise ValueError(
            f"topology {name!r}: rows*cols must equal n, found rows={rows}, cols={cols} "
            f"(rows*cols={rows * cols}) for n={n}; set rows and cols so that rows*cols == n "
            "or leave them 0 to infer"
        )
    return rows, cols


def _lattice(n: int, rows: int, cols: int, *, periodic: bool, name: str) -> Topology:
    rows, cols = factor_grid(n, rows, cols, name=name)
    node = np.arange(n).reshape(rows, cols)
    edges: list[tuple[int, int]] = []
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols or (periodic and cols > 1):
                edges.append((int(node[r, c]), int(node[r, (c + 1) % cols])))
            if r + 1 < rows or (periodic and rows > 1):
                edges.append((int(node[r, c]), int(node[(r + 1) % rows, c])))
    return Topology.from_edges(n, edges, name=f"{name}({rows}x{cols})")


def grid(n: int, rows: int = 0, cols: int = 0) -> Topology:
    """The 2-D ``rows x cols`` grid (4-neighbour lattice, no wrap-around).

    Node ``r * cols + c`` sits at row ``r``, column ``c``.
    """
    return _lattice(n, rows, cols, periodic=False, name="grid")


def torus(n: int, rows: int = 0, cols: int = 0) -> Topology:
    """The 2-D ``rows x cols`` torus (grid with periodic wrap-around).

    With ``rows, cols >= 3`` every node has degree 4.
    """
    return _lattice(n, rows, cols, periodic=True, name="torus")


def complete(n: int) -> Topology:
    """The complete graph: every node hears every other."""
    _check_n(n, "complete")
    A = ~np.eye(n, dtype=bool)
    return Topology(name="complete", adjacency=A)


def star(n: int) -> Topology:
    """The star: node 0 is the hub, nodes ``1..n-1`` are leaves."""
    _check_n(n, "star")
    return Topology.from_edges(n, [(0, i) for i in range(1, n)], name="star")


def hypercube(n: int) -> Topology:
    """The ``log2(n)``-dimensional hypercube: ``i ~ i XOR 2^b``.

    Raises:
      ValueError: if ``n`` is not a power of two.
    """
    _check_n(n, "hypercube")
    if n & (n - 1):
        lo = 1 << (n.bit_length() - 1)
        raise ValueError(
            f"topology 'hypercube': n must be a power of 2, found n={n} (nearest: {lo} or {2 * lo})"
        )
    idx = np.arange(n)
    bits = range(n.bit_length() - 1)
    if want_sparse(n, None):
        dst = np.tile(idx, len(bits))
        src = np.concatenate([idx ^ (1 << b) for b in bits])
        return Topology(name="hypercube", adjacency=arcs_matrix(n, dst, src))
    A = np.zeros((n, n), dtype=bool)
    for b in bits:
        A[idx, idx ^ (1 << b)] = True
    return Topology(name="hypercube", adjacency=A)


def exponential_offsets(n: int) -> list[int]:
    """The offsets ``2^0, 2^1, ..., 2^(tau-1)`` with ``tau = ceil(log2 n)`` (all ``< n``)."""
    return [1 << j for j in range(max(n - 1, 0).bit_length())]


def exponential(n: int, *, directed: bool = False) -> Topology:
    """The static exponential graph of Ying et al. (2021).

    Directed: node ``i`` hears node ``(i + 2^j) mod n`` for ``j = 0 .. ceil(log2 n) - 1``,
    so every node has in- and out-degree ``tau = ceil(log2 n)`` and uniform weights
    ``1/(tau+1)`` are doubly stochastic (the paper's ``W``). Undirected: the
    symmetrised graph ``i ~ i ± 2^j``.
    """
    _check_n(n, "exponential")
    name = "exponential_directed" if directed else "exponential"
    return circulant(n, exponential_offsets(n), name=name, directed=directed)
