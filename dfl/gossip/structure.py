"""Detecting the structure of mixing matrices that the fast mixers exploit.

Every helper takes a dense ``W`` or a ``scipy.sparse`` one (a sparse schedule's
:meth:`~dfl.topology.MixingSchedule.stored` matrices) and gives the same answer;
on a sparse ``W`` it costs ``O(E + n)``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from dfl.topology.graph import SPARSE, shape_of
from dfl.topology.mixing import Matrix
from dfl.topology.schedule import MixingSchedule

ATOL = 1e-12
"""Entries with ``|W_ij| <= ATOL`` count as zero; circulant entries may differ by ATOL."""


def circulant_coefficients(W: Matrix, *, atol: float = ATOL) -> np.ndarray | None:
    """``c`` with ``W[i, (i + s) mod n] = c[s]`` for all ``i, s``, or ``None``.

    A circulant ``W`` mixes as ``out = Σ_s c[s] · roll(x, -s)`` over the node axis.
    """
    if isinstance(W, SPARSE):
        return _sparse_circulant(scipy.sparse.csr_array(W), atol)
    n = W.shape[0]
    c = W[0]
    idx = np.arange(n)
    expected = c[(idx[None, :] - idx[:, None]) % n]
    return c.copy() if np.allclose(W, expected, rtol=0.0, atol=atol) else None


def _sparse_circulant(W: scipy.sparse.csr_array, atol: float) -> np.ndarray | None:
    """:func:`circulant_coefficients` of a sparse ``W`` in ``O(E + S n)``."""
    n = len(W.indptr) - 1
    c = np.zeros(n)
    c[W.indices[W.indptr[0] : W.indptr[1]]] = W.data[W.indptr[0] : W.indptr[1]]
    idx = np.arange(n)
    for s in np.flatnonzero(np.abs(c) > atol):
        if not np.allclose(W[idx, (idx + s) % n], c[s], rtol=0.0, atol=atol):
            return None
    C = W.tocoo()
    rows, cols = C.coords
    if not np.allclose(C.data, c[(cols - rows) % n], rtol=0.0, atol=atol):
        return None
    return c


def off_diagonal_entries(
    W: Matrix, *, atol: float = ATOL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dst, src, weight)`` of the off-diagonal entries ``|W[dst, src]| > atol``, row-major."""
    if isinstance(W, SPARSE):
        C = scipy.sparse.csr_array(W).tocoo()
        dst, src, w = C.coords[0], C.coords[1], C.data
        keep = (np.abs(w) > atol) & (dst != src)
        dst, src, w = dst[keep], src[keep], w[keep]
        order = np.lexsort((src, dst))
        return dst[order].astype(np.int64), src[order].astype(np.int64), w[order]
    nz = np.abs(W) > atol
    np.fill_diagonal(nz, False)
    dst, src = np.nonzero(nz)
    return dst, src, W[dst, src]


def diagonal(W: Matrix) -> np.ndarray:
    """``[n]``: the diagonal of a dense or sparse ``W`` (a copy)."""
    return np.asarray(W.diagonal()).copy()


def off_diagonal_in_degree(W: Matrix, *, atol: float = ATOL) -> np.ndarray:
    """``[n]``: the number of non-zero off-diagonal entries of each row."""
    if isinstance(W, SPARSE):
        dst, _, _ = off_diagonal_entries(W, atol=atol)
        return np.bincount(dst, minlength=shape_of(W)[0])
    nz = np.abs(W) > atol
    np.fill_diagonal(nz, False)
    return nz.sum(axis=1)


def period_matrices(schedule: MixingSchedule) -> list[Matrix] | None:
    """The matrices of one period as stored (dense or sparse), or ``None`` if random."""
    if schedule.period is None:
        return None
    return [schedule.stored(t) for t in range(schedule.period)]


def dense_period_matrices(schedule: MixingSchedule) -> list[np.ndarray] | None:
    """:func:`period_matrices` as dense arrays (``N × N`` each, also above
    :data:`dfl.topology.graph.SPARSE_ABOVE` nodes), or ``None`` if random."""
    mats = period_matrices(schedule)
    if mats is None:
        return None
    return [schedule.weights(t) for t in range(len(mats))]
