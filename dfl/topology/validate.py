"""Validation of graphs and mixing matrices, and of an algorithm's requirements.

A valid mixing matrix is square, finite, non-negative, supported on the graph
(``W_ij ≠ 0`` only for ``j = i`` or ``j → i``) and row or column stochastic. A
valid ``W`` that is not doubly stochastic triggers a ``UserWarning`` (plain gossip
then does not preserve the average).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse

from dfl.topology.graph import Topology, is_sparse, shape_of, union

if TYPE_CHECKING:
    from dfl.topology.schedule import GraphSchedule, MixingSchedule

ATOL = 1e-9
"""Absolute tolerance of the stochasticity and sign checks (float64)."""


def stochasticity(W: np.ndarray | scipy.sparse.sparray, *, atol: float = ATOL) -> dict[str, bool]:
    """Which sums of ``W`` are one and whether it is symmetric.

    Returns:
      ``{"row_stochastic", "column_stochastic", "doubly_stochastic", "symmetric"}``.
    """
    if isinstance(W, scipy.sparse.sparray):
        W = scipy.sparse.csr_array(W)
        row = bool(np.allclose(W.sum(axis=1), 1.0, rtol=0.0, atol=atol))
        col = bool(np.allclose(W.sum(axis=0), 1.0, rtol=0.0, atol=atol))
        diff = abs(W - W.T)
        symmetric = diff.nnz == 0 or float(diff.max()) <= atol
        return {
            "row_stochastic": row,
            "column_stochastic": col,
            "doubly_stochastic": row and col,
            "symmetric": bool(symmetric),
        }
    row = bool(np.allclose(W.sum(axis=1), 1.0, rtol=0.0, atol=atol))
    col = bool(np.allclose(W.sum(axis=0), 1.0, rtol=0.0, atol=atol))
    return {
        "row_stochastic": row,
        "column_stochastic": col,
        "doubly_stochastic": row and col,
        "symmetric": bool(np.allclose(W, W.T, rtol=0.0, atol=atol)),
    }


def validate_matrix(
    W: Any, *, name: str, topology: Topology | None = None, atol: float = ATOL
) -> dict[str, bool]:
    """Checks that ``W`` is a valid mixing matrix (see the module docstring).

    Args:
      W: the candidate matrix.
      name: what to call it in errors (e.g. ``"ring/uniform round 0"``).
      topology: if given, ``W`` must be supported on its arcs and the diagonal.
      atol: tolerance.

    Returns:
      :func:`stochasticity` of ``W``.

    Raises:
      ValueError: naming the first problem found.
    """
    if is_sparse(W):
        return _validate_sparse(scipy.sparse.csr_array(W, dtype=np.float64), name, topology, atol)
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"mixing matrix {name}: expected a square 2-D matrix, found {W.shape=}")
    if topology is not None and W.shape[0] != topology.n:
        raise ValueError(
            f"mixing matrix {name}: expected shape ({topology.n}, {topology.n}), found {W.shape}"
        )
    if not np.isfinite(W).all():
        i, j = np.argwhere(~np.isfinite(W))[0]
        raise ValueError(
            f"mixing matrix {name}: expected finite entries, found W[{i}, {j}]={W[i, j]}"
        )
    negative = W + atol < 0.0
    if negative.any():
        i, j = np.argwhere(negative)[0]
        raise ValueError(
            f"mixing matrix {name}: expected non-negative weights, found W[{i}, {j}]={W[i, j]:.6g}"
        )
    if topology is not None:
        off = (np.abs(W) > atol) & ~topology.dense_adjacency() & ~np.eye(W.shape[0], dtype=bool)
        if off.any():
            i, j = np.argwhere(off)[0]
            raise ValueError(
                f"mixing matrix {name}: W[{i}, {j}]={W[i, j]:.6g} but node {i} does not hear "
                f"node {j} in topology {topology.name!r}"
            )
    info = stochasticity(W, atol=atol)
    if not (info["row_stochastic"] or info["column_stochastic"]):
        rows = W.sum(axis=1)
        bad = int(np.argmax(np.abs(rows - 1.0)))
        raise ValueError(
            f"mixing matrix {name}: expected row or column sums of 1, found row {bad} "
            f"summing to {rows[bad]:.6g} and columns summing to "
            f"[{W.sum(axis=0).min():.6g}, {W.sum(axis=0).max():.6g}]"
        )
    return info


def _validate_sparse(
    W: scipy.sparse.csr_array, name: str, topology: Topology | None, atol: float
) -> dict[str, bool]:
    """:func:`validate_matrix` on a sparse ``W``, in ``O(E)`` (the same checks and messages)."""
    shape = shape_of(W)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"mixing matrix {name}: expected a square 2-D matrix, found {shape=}")
    if topology is not None and shape[0] != topology.n:
        raise ValueError(
            f"mixing matrix {name}: expected shape ({topology.n}, {topology.n}), found {shape}"
        )
    C = W.tocoo()
    rows, cols, data = C.coords[0], C.coords[1], C.data
    order = np.lexsort((cols, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    bad = ~np.isfinite(data)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"mixing matrix {name}: expected finite entries, found "
            f"W[{rows[k]}, {cols[k]}]={data[k]}"
        )
    bad = data + atol < 0.0
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"mixing matrix {name}: expected non-negative weights, found "
            f"W[{rows[k]}, {cols[k]}]={data[k]:.6g}"
        )
    if topology is not None:
        A = topology.arcs
        heard = np.asarray(A[rows, cols]).ravel().astype(bool)
        off = (np.abs(data) > atol) & ~heard & (rows != cols)
        if off.any():
            k = int(np.flatnonzero(off)[0])
            raise ValueError(
                f"mixing matrix {name}: W[{rows[k]}, {cols[k]}]={data[k]:.6g} but node "
                f"{rows[k]} does not hear node {cols[k]} in topology {topology.name!r}"
            )
    info = stochasticity(W, atol=atol)
    if not (info["row_stochastic"] or info["column_stochastic"]):
        sums, colsums = np.asarray(W.sum(axis=1)), np.asarray(W.sum(axis=0))
        bad_row = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(
            f"mixing matrix {name}: expected row or column sums of 1, found row {bad_row} "
            f"summing to {sums[bad_row]:.6g} and columns summing to "
            f"[{colsums.min():.6g}, {colsums.max():.6g}]"
        )
    return info


def check_connected(graphs: GraphSchedule) -> None:
    """Refuses a disconnected graph (the union over one period if time-varying).

    Random schedules are not checked: each draw (e.g. a matching) is disconnected
    by design and only the expected graph over many rounds is connected.

    Raises:
      ValueError: naming the topology and an unreachable node.
    """
    if graphs.period is None:
        return
    if graphs.period == 1:
        g = graphs.graph_at(0)
        what = f"topology {graphs.name!r} (n={graphs.n})"
    else:
        g = union((graphs.graph_at(t) for t in range(graphs.period)), name=graphs.name)
        what = f"topology {graphs.name!r} (n={graphs.n}, union over its period {graphs.period})"
    if g.is_connected():
        return
    labels = g.components()
    count = len(np.unique(labels))
    other = int(np.flatnonzero(labels != labels[0])[0])
    kind = "strongly connected" if g.directed else "connected"
    raise ValueError(
        f"{what} is not {kind}: {count} components, e.g. node {other} and node 0 cannot reach "
        "each other; gossip would never reach consensus. Use a connected graph (more edges, "
        "a higher p, or a different seed)"
    )


def validate_schedule(schedule: MixingSchedule, *, samples: int = 8) -> None:
    """Validates every ``W`` of one period (``samples`` rounds if random) and connectivity.

    Warns once (``UserWarning``) if some ``W`` is valid but not doubly stochastic.

    Raises:
      ValueError: on a disconnected graph or an invalid ``W``.
    """
    check_connected(schedule.graphs)
    not_doubly = []
    for t in schedule.rounds(samples):
        info = validate_matrix(
            schedule.stored(t), name=f"{schedule.name!r} round {t}", topology=schedule.topology(t)
        )
        if not info["doubly_stochastic"]:
            not_doubly.append((t, "row" if info["row_stochastic"] else "column"))
    if not_doubly:
        t, kind = not_doubly[0]
        warnings.warn(
            f"mixing matrix {schedule.name!r} is {kind} stochastic but not doubly stochastic "
            f"(round {t}): plain gossip will not preserve the average; fine for push-sum "
            "(column) or when intended",
            UserWarning,
            stacklevel=3,
        )


def check_requirements(
    schedule: MixingSchedule, requirements: Any, algorithm_name: str, *, samples: int = 8
) -> None:
    """Refuses a schedule whose ``W`` misses what an algorithm declared it needs.

    Applies ``requirements.check(W, time_varying=schedule.time_varying,
    algorithm=algorithm_name)`` to every ``W`` of one period, or to the first
    ``samples`` rounds of a random schedule.

    Args:
      schedule: the mixing schedule.
      requirements: a :class:`dfl.algorithms.base.MixingRequirements`.
      algorithm_name: the algorithm's name, for the error message.
      samples: rounds checked for random schedules.

    Raises:
      RequirementError: (a ``ValueError``) from ``requirements.check``, naming
        what is missing.
    """
    for t in schedule.rounds(samples):
        requirements.check(
            schedule.stored(t), time_varying=schedule.time_varying, algorithm=algorithm_name
        )
