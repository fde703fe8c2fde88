"""Numpy transcriptions of the papers' formulas, one node at a time (the tests' references)."""

from __future__ import annotations

import numpy as np

from dfl.topology.mixing import metropolis_hastings
from tests.topology.graphs import random_connected as random_graph


def random_case(seed: int, n: int = 9, p: float = 0.4, dim: int = 4, drop: float = 0.0):
    """``(W, dst, src, weight, X [N, dim], M [E, dim], delivered [E])`` with per-edge messages."""
    from dfl.robust import edges_of

    W = metropolis_hastings(random_graph(seed, n, p))
    dst, src, weight, _ = edges_of(W)
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    M = (X[src] + rng.normal(scale=2.0, size=(len(dst), dim))).astype(np.float32)
    delivered = rng.random(len(dst)) >= drop
    return W, dst, src, weight, X, M, delivered


def inbox(i, dst, M, delivered):
    """``(edge ids, messages)`` that node ``i`` received."""
    es = [e for e in range(len(dst)) if dst[e] == i and delivered[e]]
    return es, [M[e] for e in es]


def clipped_gossip(X, dst, weight, M, delivered, tau):
    """He et al.: ``x_i + Σ_j W_ij CLIP(x_j − x_i, τ_i)``."""
    out = X.astype(np.float64).copy()
    for i in range(len(X)):
        for e, m in zip(*inbox(i, dst, M, delivered), strict=True):
            z = m - X[i]
            nz = np.linalg.norm(z)
            out[i] += weight[e] * (z if nz <= tau[i] else z * tau[i] / nz)
    return out


def adaptive_tau(X, dst, weight, M, delivered, delta):
    """Clip the farthest neighbours while their total weight stays within ``δ_i``."""
    taus = np.zeros(len(X))
    for i in range(len(X)):
        es, ms = inbox(i, dst, M, delivered)
        order = sorted(zip(es, ms, strict=True), key=lambda t: -np.linalg.norm(t[1] - X[i]))
        acc, tau = 0.0, 0.0
        for e, m in order:
            acc += weight[e]
            if acc > delta[i] * (1 + 1e-5) + 1e-12:
                tau = np.linalg.norm(m - X[i])
                break
        taus[i] = tau
    return taus


def bridge_t(X, dst, M, delivered, b):
    """Fang, Yang & Bajwa's BRIDGE-T, coordinate by coordinate."""
    out = np.zeros(X.shape)
    for i in range(len(X)):
        _, ms = inbox(i, dst, M, delivered)
        t = min(b, len(ms) // 2)
        for k in range(X.shape[1]):
            vals = sorted(float(m[k]) for m in ms)
            kept = vals[t : len(vals) - t]
            out[i, k] = (X[i, k] + sum(kept)) / (len(ms) - 2 * t + 1)
    return out


def bridge_m(X, dst, M, delivered):
    """BRIDGE-M: the coordinate-wise median over ``N_j ∪ {j}``."""
    out = np.zeros(X.shape)
    for i in range(len(X)):
        _, ms = inbox(i, dst, M, delivered)
        out[i] = np.median(np.stack([X[i], *ms]), axis=0)
    return out


def krum_one(vectors, f, m=1):
    """Blanchard et al.: score = sum of the ``n − f − 2`` smallest squared distances."""
    n = len(vectors)
    q = max(n - f - 2, 0)
    scores = []
    for i in range(n):
        d = sorted(float(np.sum((vectors[i] - vectors[j]) ** 2)) for j in range(n) if j != i)
        scores.append(sum(d[:q]))
    order = sorted(range(n), key=lambda i: (scores[i], i))[: min(m, n)]
    return np.mean([vectors[i] for i in order], axis=0)


def krum(X, dst, M, delivered, f, m=1):
    """Krum over each node's closed neighbourhood (own message first)."""
    return np.stack(
        [krum_one([X[i], *inbox(i, dst, M, delivered)[1]], f, m) for i in range(len(X))]
    )


def he_tm(X, dst, M, delivered, b):
    """He et al.'s ``DeTM``: trim ``b`` per side over ``[own] + neighbours`` (b shrinks to fit)."""
    out = np.zeros(X.shape)
    for i in range(len(X)):
        vals = [X[i], *inbox(i, dst, M, delivered)[1]]
        t = b
        while len(vals) - 2 * t <= 0:
            t -= 1
        for k in range(X.shape[1]):
            col = sorted(float(v[k]) for v in vals)
            out[i, k] = np.mean(col[t : len(col) - t])
    return out
