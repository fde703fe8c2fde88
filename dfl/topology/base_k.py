"""The Base-(k+1) graph: k peers per round and exact averaging in finitely many rounds.

Takezawa et al. (2023) build, for every ``n`` and every maximum degree ``k``, a finite
sequence of symmetric doubly stochastic matrices ``W(0), ..., W(m-1)``, each with at
most ``k`` peers per node, whose product is exactly ``J = 11ᵀ/n``. Three pieces:

1. **k-peer hyper-hypercube** (``n`` whose prime factors are all ``<= k+1``): write
   ``n = f_1 f_2 ... f_m`` with ``f_t <= k+1`` (greedily, largest factors first) and the
   node ids in that mixed radix; at round ``t`` the nodes that differ only in digit ``t``
   form a clique of ``f_t`` nodes and average (weights ``1/f_t``). After ``m`` rounds
   every node holds the mean.
2. **Simple Base-(k+1) graph** (any ``n``): write ``n = Σ_l a_l (k+1)^{p_l}`` in base
   ``k+1`` (``p_1 > p_2 > ...``, ``1 <= a_l <= k``) and split the nodes into groups
   ``V_l`` of ``n_l = a_l (k+1)^{p_l}`` nodes, ``V_l`` itself into ``a_l`` blocks of
   ``(k+1)^{p_l}``. (i) Every group averages with its own hyper-hypercube. (ii) For
   ``j = 1, ..., L-1`` in turn, every node ``i`` of a later group ``V_{>j}`` pairs with
   one fresh node of each block of ``V_j``, with weights ``W_ip = (n_j / N_{>=j}) / a_j``
   to each partner ``p``, ``W_ii = 1 - n_j / N_{>=j}`` and ``W_pp = 1 - W_ip``
   (``N_{>=j} = Σ_{l>=j} n_l``); the unpaired nodes of ``V_j`` average in cliques of
   ``k+1``. This leaves every block of ``V_j`` holding exactly its share of the global
   sum and the later groups the right mass. (iii) Each block of ``V_j`` then averages
   with its hyper-hypercube (in parallel with the later steps). The last group holds the
   mean after its final pairing.
3. **Base-(k+1) graph**: with ``n = n_s · n_r``, ``n_s`` the largest divisor of ``n``
   whose prime factors are ``<= k+1``, run the simple graph on ``n_s`` blocks of ``n_r``
   nodes in parallel and then a hyper-hypercube across the blocks (node ``j`` of each
   block), if that is not longer than the simple graph on all ``n`` nodes.

The length is at most ``2 log_{k+1}(n) + 2`` rounds (Theorem 1 of the paper).

References:
  Takezawa, Sato, Niwa, Yamada. "Beyond Exponential Graph: Communication-Efficient
  Topologies for Decentralized Learning via Finite-time Convergence", NeurIPS 2023,
  arXiv:2305.11420.
"""

from __future__ import annotations

import numpy as np

from dfl.topology.graph import Topology
from dfl.topology.schedule import GraphSchedule

Round = list[np.ndarray]
"""The cliques that average in one hyper-hypercube round (global node ids)."""


def smooth_part(n: int, k: int) -> int:
    """The largest divisor of ``n`` whose prime factors are all ``<= k + 1``."""
    part, rest = 1, n
    for p in range(2, k + 2):
        while rest % p == 0:
            part, rest = part * p, rest // p
    return part


def hyper_factors(n: int, k: int) -> list[int]:
    """The radices of the k-peer hyper-hypercube over ``n`` nodes (``[]`` for ``n = 1``).

    Greedy: divide by ``k+1, k, ..., 2`` as often as possible; the factors are returned
    smallest first (the order of the rounds).

    Raises:
      ValueError: if ``n`` has a prime factor larger than ``k + 1``.
    """
    factors, rest = [], n
    for f in range(k + 1, 1, -1):
        while rest % f == 0:
            factors.append(f)
            rest //= f
    if rest != 1:
        raise ValueError(f"hyper-hypercube: n={n} has a prime factor > k+1={k + 1}")
    return factors[::-1]


def hyper_hypercube(nodes: np.ndarray, k: int) -> list[Round]:
    """The rounds of the k-peer hyper-hypercube over ``nodes`` (one empty round if 1 node)."""
    m = len(nodes)
    factors = hyper_factors(m, k)
    if not factors:
        return [[]]
    idx = np.arange(m)
    rounds, stride = [], 1
    for f in factors:
        key = idx - ((idx // stride) % f) * stride
        rounds.append([nodes[key == c] for c in np.unique(key)])
        stride *= f
    return rounds


def _cliques(n: int, cliques: Round) -> np.ndarray:
    """The partial matrix where each clique averages (rows of other nodes stay zero)."""
    W = np.zeros((n, n))
    for c in cliques:
        if len(c) > 1:
            W[np.ix_(c, c)] = 1.0 / len(c)
    return W


def _parallel(rounds_per_part: list[list[Round]], length: int) -> list[list[np.ndarray]]:
    """Round ``t`` of every part, each part cycling through its own rounds."""
    return [
        [c for rounds in rounds_per_part for c in rounds[t % len(rounds)]] for t in range(length)
    ]


def simple_base_k(nodes: np.ndarray, k: int, n: int) -> list[np.ndarray]:
    """The Simple Base-(k+1) graph over ``nodes`` as partial ``[n, n]`` matrices.

    Rows of nodes outside ``nodes`` (and of idle nodes) are zero; see
    :func:`base_k_matrices` for the completed matrices.
    """
    m = len(nodes)
    if m == 1 or smooth_part(m, k) == m:
        return [_cliques(n, r) for r in hyper_hypercube(nodes, k)]
    b = k + 1
    sizes, powers = _base_digits(m, b)
    L = len(sizes)
    starts = np.cumsum([0, *sizes])
    groups = [nodes[starts[l] : starts[l + 1]] for l in range(L)]
    blocks = [np.split(g, len(g) // b**q) for g, q in zip(groups, powers, strict=True)]

    # (i) every group averages with its own hyper-hypercube.
    phase1 = [hyper_hypercube(g, k) for g in groups]
    mats = [_cliques(n, r) for r in _parallel(phase1, len(phase1[0]))]

    # (iii) after its pairing step each block of V_l averages (the whole group if p_l = 0).
    post = []
    for g, q, blks in zip(groups, powers, blocks, strict=True):
        parts = [hyper_hypercube(g, k)] if q == 0 else [hyper_hypercube(bl, k) for bl in blks]
        post.append(_parallel(parts, len(parts[0])))
    done = [0] * L
    start = [*range(1, L), L - 1]  # V_j averages after its pairing step j; the last after all

    step = 0
    while done[0] < len(post[0]):
        W = _pairing_step(n, b, groups, blocks, step) if step < L - 1 else np.zeros((n, n))
        for l in range(L):
            if step >= start[l]:
                W += _cliques(n, post[l][done[l] % len(post[l])])
                done[l] += 1
        mats.append(W)
        step += 1
    return mats


def _base_digits(m: int, b: int) -> tuple[list[int], list[int]]:
    """``m = Σ_l a_l b^(p_l)`` with digits ``0 < a_l < b``: the sizes ``a_l b^(p_l)``
    and the powers ``p_l`` (descending) of the groups V_l."""
    p = 0
    while b ** (p + 1) <= m:
        p += 1
    sizes, powers = [], []
    rest = m
    for q in range(p, -1, -1):
        a = rest // b**q
        if a:
            sizes.append(a * b**q)
            powers.append(q)
            rest -= a * b**q
    return sizes, powers


def _pairing_step(
    n: int, b: int, groups: list[np.ndarray], blocks: list[list[np.ndarray]], j: int
) -> np.ndarray:
    """(ii) Step ``j``: every node of a later group pairs with one fresh node of each
    block of V_j; V_j's unpaired nodes average in cliques of ``b``."""
    W = np.zeros((n, n))
    free = [list(bl) for bl in blocks[j]]
    r = len(groups[j]) / sum(len(g) for g in groups[j:])
    w = r / len(free)
    for l in range(len(groups) - 1, j, -1):
        for i in groups[l]:
            for blk in free:
                partner = blk.pop()
                W[i, partner] = W[partner, i] = w
                W[partner, partner] = 1.0 - w
            W[i, i] = 1.0 - r
    unpaired = np.array([x for blk in free for x in blk], dtype=int)
    return W + _cliques(n, [unpaired[s : s + b] for s in range(0, len(unpaired), b)])


def _complete(W: np.ndarray) -> np.ndarray:
    """Gives idle nodes (all-zero rows) self weight 1."""
    idle = ~W.any(axis=1)
    W = W.copy()
    W[idle, idle] = 1.0
    return W


def base_k_matrices(n: int, k: int) -> list[np.ndarray]:
    """The mixing matrices of one period of the Base-(k+1) graph.

    Args:
      n: number of nodes (any ``n >= 1``).
      k: maximum number of peers per node per round (``k >= 1``).

    Returns:
      Symmetric doubly stochastic ``[n, n]`` matrices whose product is ``11ᵀ/n``.
    """
    if n < 1 or k < 1:
        raise ValueError(f"topology 'base_k': expected n >= 1 and k >= 1, found n={n}, k={k}")
    nodes = np.arange(n)
    simple = simple_base_k(nodes, k, n)
    n_s = smooth_part(n, k)
    n_r = n // n_s
    across = [np.arange(j, n, n_r) for j in range(n_r)]
    inner = simple_base_k(np.arange(n_r), k, n_r)
    if len(simple) < len(inner) + len(hyper_hypercube(across[0], k)):
        return [_complete(W) for W in simple]
    mats = []
    for Wr in inner:
        W = np.zeros((n, n))
        for s in range(n_s):
            sl = slice(s * n_r, (s + 1) * n_r)
            W[sl, sl] = Wr
        mats.append(W)
    hyper = [hyper_hypercube(col, k) for col in across]
    mats += [_cliques(n, r) for r in _parallel(hyper, len(hyper[0]))]
    return [_complete(W) for W in mats]


def base_k(n: int, k: int) -> GraphSchedule:
    """The Base-(k+1) graph as a periodic schedule with its own weights.

    Args:
      n: number of nodes.
      k: maximum number of peers per node per round.

    Returns:
      A :class:`GraphSchedule` whose period is the length of the finite sequence;
      the product of the matrices of one period is exactly ``11ᵀ/n``.
    """
    graphs = []
    for t, W in enumerate(base_k_matrices(n, k)):
        A = (W > 0) & ~np.eye(n, dtype=bool)
        graphs.append(Topology(name=f"base_k(k={k}, t={t})", adjacency=A, weights=W))
    return GraphSchedule.cycle(graphs, name=f"base_k(k={k})")
