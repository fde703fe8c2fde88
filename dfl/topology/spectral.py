"""Spectral diagnostics of a mixing schedule: :func:`diagnose` and :func:`plot_diagnostics`.

For a mixing matrix ``W`` over ``n`` nodes and ``J = 11ᵀ/n``, plain gossip
``x ← W x`` with doubly stochastic ``W`` contracts the disagreement ``x - J x`` by

    slem(W) = max_i |λ_i(W - J)|          (second largest eigenvalue modulus)

per round asymptotically (exactly, in norm, when ``W`` is symmetric), so the
consensus error after ``t`` rounds is ``<= slem^t`` times the initial one. The
spectral gap is ``1 - slem``. For a periodic schedule the product of one period
``P = W(p-1) ... W(0)`` plays this role (``slem(P) = 0`` for schedules that
average exactly, e.g. one-peer exponential with ``n = 2^τ`` or Base-(k+1)).

On a sparse schedule (``schedule.sparse``) with more than :data:`DENSE_SPECTRUM_UPTO`
nodes the eigenvalues come from ``scipy.sparse.linalg`` (``eigsh`` if symmetric, else
``eigs``) applied to ``v ↦ W v - mean(v) 1`` (and to the product of one period as a
chain of sparse products), so no ``n x n`` array is built; the random schedules'
mean-square contraction stays dense.

References:
  Xiao, Boyd. "Fast linear iterations for distributed averaging", 2004.
  Boyd, Ghosh, Prabhakar, Shah. "Randomized gossip algorithms", IEEE TIT 2006.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from dfl.topology.graph import union
from dfl.topology.mixing import Matrix
from dfl.topology.schedule import MixingSchedule
from dfl.topology.validate import stochasticity

DENSE_SPECTRUM_UPTO = 2048
"""Up to this many nodes a sparse ``W``'s spectrum is taken densely (exact, ``n²`` memory)."""


def slem(W: np.ndarray) -> float:
    """``max_i |λ_i(W - 11ᵀ/n)|`` (0 for ``n = 1``)."""
    n = W.shape[0]
    M = W - np.full((n, n), 1.0 / n)
    if np.allclose(M, M.T, atol=1e-12):
        lam = np.linalg.eigvalsh((M + M.T) / 2)
    else:
        lam = np.linalg.eigvals(M)
    value = float(np.max(np.abs(lam))) if n > 1 else 0.0
    return 1.0 if abs(value - 1.0) < 1e-12 else value


class _Centered(scipy.sparse.linalg.LinearOperator):
    """``v ↦ P v - mean(P v) 1`` for the product ``P = mats[-1] ... mats[0]``."""

    def __init__(self, mats: list[scipy.sparse.csr_array]):
        n = len(mats[0].indptr) - 1
        super().__init__(dtype=np.dtype(np.float64), shape=(n, n))
        self.mats = mats

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(X, dtype=np.float64)
        for W in self.mats:
            out = np.asarray(W @ out)
        return out - np.mean(out, axis=0, keepdims=True)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self._matmat(np.asarray(x).reshape(-1, 1)).reshape(-1)


def sparse_slem(mats: list[Matrix]) -> float:
    """:func:`slem` of the product ``mats[-1] ... mats[0]`` of sparse matrices, matrix-free.

    The largest ``|λ|`` of ``v ↦ P v - mean(v) 1`` by ARPACK: ``eigsh`` when every
    matrix is symmetric and there is one (``P`` symmetric), else ``eigs``; to machine
    precision (ARPACK's ``tol=0``).
    """
    csr = [scipy.sparse.csr_array(W) for W in mats]
    n = len(csr[0].indptr) - 1
    if n <= 2:
        return slem(np.linalg.multi_dot([*(W.toarray() for W in csr[::-1]), np.eye(n)]))
    op = _Centered(csr)
    diff = scipy.sparse.csr_array(abs(csr[0] - csr[0].T))
    symmetric = len(csr) == 1 and (diff.nnz == 0 or float(diff.max()) <= 1e-12)
    v0 = np.random.default_rng(0).standard_normal(n)
    solve = scipy.sparse.linalg.eigsh if symmetric else scipy.sparse.linalg.eigs
    lam = solve(op, k=1, which="LM", tol=0, v0=v0, return_eigenvectors=False)
    value = float(np.max(np.abs(lam)))
    return 1.0 if abs(value - 1.0) < 1e-12 else value


def mean_square_contraction(mats: list[np.ndarray]) -> float:
    """``sqrt(λ_max(mean_t (W_t - J)ᵀ (W_t - J)))``: the expected per-round contraction.

    For i.i.d. doubly stochastic ``W_t``, ``E‖x_{t+1} - x̄‖² <= ρ² ‖x_t - x̄‖²`` with
    this ``ρ`` (Boyd et al. 2006), estimated from the sampled ``W_t``.
    """
    n = mats[0].shape[0]
    J = np.full((n, n), 1.0 / n)
    M = np.mean([(W - J).T @ (W - J) for W in mats], axis=0)
    return float(np.sqrt(max(np.linalg.eigvalsh((M + M.T) / 2).max(), 0.0)))


def diagnose(schedule: MixingSchedule, *, samples: int = 64) -> dict[str, Any]:
    """Graph and spectral statistics of a mixing schedule, JSON-serialisable.

    Per-round quantities are taken over one period (static: the one ``W``;
    periodic: the ``period`` matrices; random: the first ``samples`` rounds) and
    reported as the worst case (``slem``: the largest, ``row_stochastic``: all).

    Args:
      schedule: the mixing schedule.
      samples: rounds sampled from a random schedule.

    Returns:
      A dict with ``name``, ``n``, ``directed``, ``time_varying``, ``period``
      (``None`` if random), ``edges`` (largest per-round number of edges, arcs if
      directed), ``edges_union`` (edges used by some round), ``degree_min`` and
      ``degree_max`` (in-degree, self excluded, over the rounds), ``connected``
      (strongly if directed, of the union graph), ``row_stochastic``,
      ``column_stochastic``, ``symmetric`` (all rounds), ``slem`` (largest per-round
      ``max|λ(W - J)|``), ``spectral_gap`` (``1 - slem``), ``product_slem`` (periodic:
      ``max|λ(P - J)|`` for the product ``P`` of one period, ~0 when the period
      averages exactly; random: the mean-square contraction
      ``sqrt(λ_max(mean_t (W_t - J)ᵀ(W_t - J)))`` over the sampled rounds, the
      expected per-round factor) and ``rate_per_round`` (the predicted per-round
      contraction: ``slem`` if static, ``product_slem^(1/period)`` if periodic,
      ``product_slem`` if random).
    """
    rounds = list(schedule.rounds(samples))
    matrix_free = schedule.period is not None and schedule.sparse
    matrix_free = matrix_free and schedule.n > DENSE_SPECTRUM_UPTO
    graphs = [schedule.topology(t) for t in rounds]
    if matrix_free:
        sparse: list[Matrix] = [schedule.sparse_weights(t) for t in rounds]
        props = [stochasticity(W, atol=1e-9) for W in sparse]
        per_round = [sparse_slem([W]) for W in sparse]
        product = per_round[0] if len(sparse) == 1 else sparse_slem(sparse)
        rate = product ** (1.0 / len(sparse))
    else:
        mats = [schedule.weights(t) for t in rounds]
        props = [stochasticity(W, atol=1e-9) for W in mats]
        per_round = [slem(W) for W in mats]
        if schedule.period is None:
            product = mean_square_contraction(mats)
            rate = product
        else:
            product = slem(np.linalg.multi_dot([*mats[::-1], np.eye(schedule.n)]))
            rate = product ** (1.0 / len(mats))
    whole = union(graphs, name=schedule.graphs.name)
    degrees = np.concatenate([g.in_degree for g in graphs])
    return {
        "name": schedule.name,
        "n": int(schedule.n),
        "directed": bool(schedule.directed),
        "time_varying": bool(schedule.time_varying),
        "period": None if schedule.period is None else int(schedule.period),
        "edges": int(max(g.num_edges for g in graphs)),
        "edges_union": int(whole.num_edges),
        "degree_min": int(degrees.min()),
        "degree_max": int(degrees.max()),
        "connected": bool(whole.is_connected()),
        "row_stochastic": all(p["row_stochastic"] for p in props),
        "column_stochastic": all(p["column_stochastic"] for p in props),
        "symmetric": all(p["symmetric"] for p in props),
        "slem": float(max(per_round)),
        "spectral_gap": float(1.0 - max(per_round)),
        "product_slem": float(product),
        "rate_per_round": float(rate),
    }


def gossip_errors(schedule: MixingSchedule, rounds: int, *, seed: int = 0) -> np.ndarray:
    """Relative consensus error of plain gossip ``x ← W(t) x`` from a random start.

    Returns:
      ``[rounds + 1]``: ``‖x_t - mean(x_0)‖ / ‖x_0 - mean(x_0)‖``.
    """
    x = np.random.default_rng(seed).standard_normal(schedule.n)
    mean = x.mean()
    errs = [1.0]
    scale = np.linalg.norm(x - mean) or 1.0
    for t in range(rounds):
        x = schedule.stored(t) @ x
        errs.append(float(np.linalg.norm(x - mean) / scale))
    return np.asarray(errs)


def plot_diagnostics(
    schedule: MixingSchedule, path: str | os.PathLike, *, rounds: int | None = None, seed: int = 0
) -> None:
    """Draws the graph, the spectrum and the gossip consensus error to an image file.

    Panels: (1) the graph (the union over the rounds if time-varying; an adjacency
    plot above 200 nodes), (2) the eigenvalues of ``W`` (of the period product if
    periodic) in the complex plane with the unit circle, (3) the consensus error of
    plain gossip over rounds against the predicted bound ``rate_per_round^t``.
    Uses matplotlib's Agg canvas (imported here, no global backend change).

    Args:
      schedule: the mixing schedule.
      path: the image file (format from its extension, e.g. ``.png``).
      rounds: gossip rounds to simulate (default: until the bound reaches 1e-8,
        between 10 and 300).
      seed: seed of the random start vector.
    """
    from matplotlib.figure import Figure

    info = diagnose(schedule)
    rate = info["rate_per_round"]
    if rounds is None:
        steps = np.log(1e-8) / np.log(min(max(rate, 1e-12), 1 - 1e-6))
        rounds = int(np.clip(steps, 10, 300))
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax_graph, ax_spec, ax_err = fig.subplots(1, 3)
    _draw_graph(ax_graph, schedule, info, seed)
    _draw_spectrum(ax_spec, schedule, info)
    _draw_consensus(ax_err, schedule, info, rounds, seed)
    fig.savefig(os.fspath(path), dpi=110)


def _draw_graph(ax: Any, schedule: MixingSchedule, info: dict[str, Any], seed: int) -> None:
    """Panel 1: the graph (union over 16 rounds), an adjacency plot above 200 nodes."""
    import networkx as nx

    whole = union([schedule.topology(t) for t in schedule.rounds(16)], name=schedule.graphs.name)
    if whole.n <= 200:
        G = whole.to_networkx()
        pos = nx.circular_layout(G) if whole.n <= 64 else nx.spring_layout(G, seed=seed)
        nx.draw_networkx(
            G,
            pos,
            ax=ax,
            node_size=max(20, 300 - 4 * whole.n),
            with_labels=whole.n <= 32,
            font_size=7,
            arrows=whole.directed,
            width=0.6,
        )
    else:
        ax.spy(whole.adjacency, markersize=0.5)
    ax.set_title(f"{schedule.name}: n={info['n']}, edges={info['edges']}", fontsize=9)
    ax.set_axis_off()


def _draw_spectrum(ax: Any, schedule: MixingSchedule, info: dict[str, Any]) -> None:
    """Panel 2: W's eigenvalues (the period product's if periodic) and the unit circle."""
    mats = [schedule.weights(t) for t in schedule.rounds(16)]
    n = mats[0].shape[0]
    M = mats[0] if schedule.period == 1 else np.linalg.multi_dot([*mats[::-1], np.eye(n)])
    lam = np.linalg.eigvals(M)
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="0.7", lw=0.8)
    ax.scatter(lam.real, lam.imag, s=14)
    ax.set_aspect("equal")
    what = "W" if schedule.period == 1 else "product of the rounds shown"
    ax.set_title(f"eigenvalues of {what}; slem={info['slem']:.4g}", fontsize=9)


def _draw_consensus(
    ax: Any, schedule: MixingSchedule, info: dict[str, Any], rounds: int, seed: int
) -> None:
    """Panel 3: plain gossip's consensus error over ``rounds`` against the spectral bound."""
    rate = info["rate_per_round"]
    errs = gossip_errors(schedule, rounds, seed=seed)
    t = np.arange(rounds + 1)
    ax.semilogy(t, np.maximum(errs, 1e-16), label="plain gossip")
    period = schedule.period or 1
    bound = info["product_slem"] ** (t // period) if period > 1 else rate**t
    ax.semilogy(t, np.maximum(bound, 1e-16), "--", label=f"|λ|^t bound, {rate:.4g}/round")
    ax.set_xlabel("round")
    ax.set_ylabel("‖x_t - x̄‖ / ‖x_0 - x̄‖")
    ax.legend(fontsize=8)
    ax.set_title("consensus error", fontsize=9)
