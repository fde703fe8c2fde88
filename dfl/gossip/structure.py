"""Detecting the structure of mixing matrices that the fast mixers exploit."""

from __future__ import annotations

import numpy as np

from dfl.topology.schedule import MixingSchedule

ATOL = 1e-12
"""Entries with ``|W_ij| <= ATOL`` count as zero; circulant entries may differ by ATOL."""


def circulant_coefficients(W: np.ndarray, *, atol: float = ATOL) -> np.ndarray | None:
    """``c`` with ``W[i, (i + s) mod n] = c[s]`` for all ``i, s``, or ``None``.

    A circulant ``W`` mixes as ``out = Σ_s c[s] · roll(x, -s)`` over the node axis.
    """
    n = W.shape[0]
    c = W[0]
    idx = np.arange(n)
    expected = c[(idx[None, :] - idx[:, None]) % n]
    return c.copy() if np.allclose(W, expected, rtol=0.0, atol=atol) else None


def off_diagonal_in_degree(W: np.ndarray, *, atol: float = ATOL) -> np.ndarray:
    """``[n]``: the number of non-zero off-diagonal entries of each row."""
    nz = np.abs(W) > atol
    np.fill_diagonal(nz, False)
    return nz.sum(axis=1)


def period_matrices(schedule: MixingSchedule) -> list[np.ndarray] | None:
    """The matrices of one period, or ``None`` for a random schedule."""
    if schedule.period is None:
        return None
    return [schedule.weights(t) for t in range(schedule.period)]
