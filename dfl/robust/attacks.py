"""Byzantine attacks as pure functions: the message an attacker sends, edge by edge.

An attack produces an edge-indexed pytree (leading axis ``E``, one message per edge, so an
attacker may send each recipient something different); :func:`inject` puts it on the
edges whose sender is Byzantine and keeps the honest message elsewhere.

**Non-rushing.** The attacks that use honest statistics (:func:`alie`, :func:`ipm`,
:func:`dissensus`) take only what the attacker itself could see in a real run: the
messages *it received in the previous round* (:func:`received_stats`,
:func:`dissensus_view`). An attacker that waited for the current round's honest messages
would miss its own sending deadline in a deployment, so the same functions serve both the
simulation and a real node.

References:
  Baruch, Baruch & Goldberg, "A Little Is Enough: Circumventing Defenses for Distributed
  Learning", NeurIPS 2019 (ALIE).
  Xie, Koyejo & Gupta, "Fall of Empires: Breaking Byzantine-tolerant SGD by Inner Product
  Manipulation", UAI 2020 (IPM).
  He, Karimireddy & Jaggi, "Byzantine-Robust Decentralized Learning via ClippedGossip",
  arXiv:2202.01545, 2022 (dissensus).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jax.typing import ArrayLike

from dfl.robust.segments import delivered_or_all


def _bcast(v: jax.Array, like: jax.Array) -> jax.Array:
    """``v [rows]`` reshaped to broadcast against ``like [rows, ...]`` (dtype kept)."""
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def inject(honest_e: Any, attack_e: Any, src: ArrayLike, byzantine: ArrayLike) -> Any:
    """``attack_e`` on the edges sent by a Byzantine node, ``honest_e`` elsewhere."""
    byz = jnp.asarray(byzantine, bool)[jnp.asarray(src)]
    return jax.tree.map(
        lambda h, a: jnp.where(_bcast(byz, h), a.astype(h.dtype), h), honest_e, attack_e
    )


def sign_flip(honest_e: Any, *, scale: float = 1.0) -> Any:
    """Sends ``−scale · m`` instead of its honest message ``m`` (``scale = 1``: bit flipping)."""
    return jax.tree.map(lambda m: -scale * m, honest_e)


def gaussian_noise(honest_e: Any, key: jax.Array, *, sigma: float) -> Any:
    """Sends ``m + σ ξ``, ``ξ ~ N(0, I)`` drawn independently for every edge and leaf."""
    leaves, treedef = jax.tree.flatten(honest_e)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        m + sigma * jax.random.normal(k, m.shape, jnp.float32).astype(m.dtype)
        for m, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


class Received(NamedTuple):
    """What each node received in a round: coordinate-wise mean and std, and the count.

    ``mean`` and ``std`` are pytrees with leading axis ``N``; ``std`` is the sample
    standard deviation (``ddof = 1``, as in the ALIE reference code; ``0`` below two
    messages); ``count`` is ``int32 [N]``.
    """

    mean: Any
    std: Any
    count: jax.Array


def received_stats(
    messages_e: Any, dst: ArrayLike, n: int, *, mask: ArrayLike | None = None
) -> Received:
    """Per-node statistics of the messages it received (pass the *previous* round's).

    Args:
      messages_e: pytree, leaves ``[E, ...]``: the previous round's edge messages.
      dst: ``int [E]`` receiving node of each edge.
      n: number of nodes.
      mask: ``bool [E]`` which messages count: at least the delivered ones; attackers that
        know their colluders also drop those (``delivered & ~byzantine[src]``).
    """
    d = jnp.asarray(dst)
    keep = delivered_or_all(mask, d)
    count = jax.ops.segment_sum(keep.astype(jnp.int32), d, num_segments=n)
    c = jnp.maximum(count, 1).astype(jnp.float32)
    ddof = jnp.maximum(count - 1, 1).astype(jnp.float32)

    def stats(m: jax.Array):
        w = _bcast(keep, m)
        x = jnp.where(w, m.astype(jnp.float32), 0.0)
        mean = jax.ops.segment_sum(x, d, num_segments=n) / _bcast(c, x)
        dev = jnp.where(w, m.astype(jnp.float32) - jnp.take(mean, d, axis=0), 0.0)
        var = jax.ops.segment_sum(dev**2, d, num_segments=n) / _bcast(ddof, x)
        std = jnp.where(_bcast(count >= 2, var), jnp.sqrt(var), 0.0)
        return mean.astype(m.dtype), std.astype(m.dtype)

    pairs = jax.tree.map(stats, messages_e)
    is_pair = lambda t: isinstance(t, tuple)  # noqa: E731
    mean = jax.tree.map(lambda p: p[0], pairs, is_leaf=is_pair)
    std = jax.tree.map(lambda p: p[1], pairs, is_leaf=is_pair)
    return Received(mean, std, count)


def alie_z(n: int, f: int) -> float:
    """Baruch et al.'s ``z``: ``s = ⌊n/2 + 1⌋ − f`` supporters, ``z = Φ⁻¹((n − f − s)/(n − f))``.

    Args:
      n: number of participants the attack is aimed at (e.g. a neighbourhood's size).
      f: Byzantine participants among them.
    """
    if not 0 < f < n:
        raise ValueError(f"ALIE needs 0 < f < n, found {n=}, {f=}")
    s = math.floor(n / 2 + 1) - f
    p = (n - f - s) / (n - f)
    if not 0 < p < 1:
        raise ValueError(f"ALIE z undefined for {n=}, {f=}: (n - f - s)/(n - f) = {p} ∉ (0, 1)")
    return NormalDist().inv_cdf(p)


def alie(received: Received, *, z: float) -> Any:
    """ALIE: ``μ − z σ`` coordinate-wise, per attacker node (leading axis ``N``).

    ``μ, σ`` are the mean and std of what the attacker received in the previous round
    (non-rushing); :func:`alie_z` gives Baruch et al.'s ``z``. Spread to edges with
    :func:`dfl.robust.segments.gather` over ``src``.
    """
    return jax.tree.map(lambda m, s: m - z * s, received.mean, received.std)


def ipm(received: Received, *, epsilon: float) -> Any:
    """Inner-product manipulation: ``−ε μ`` per attacker node, ``μ`` the previous round's mean.

    Xie et al. send ``−ε`` times the mean of the honest vectors (small ``ε`` defeats Krum
    and the median, large ``ε`` the mean).
    """
    return jax.tree.map(lambda m: -epsilon * m, received.mean)


def dissensus(target_e: Any, pull_e: Any, *, epsilon: float) -> Any:
    """He et al.'s dissensus message on edge ``a → i``: ``x_i − ε v_i``.

    ``v_i = Σ_{k ∈ V_R} W_ik (x_k − x_i) / δ_i`` is the honest pull on the target ``i``
    scaled by its Byzantine weight ``δ_i = Σ_{j ∈ V_B} W_ij``; with ``ε = 1`` the
    Byzantine neighbours cancel the honest gossip step, with ``ε > 1`` they reverse it.
    :func:`dissensus_view` estimates ``x_i`` and ``v_i`` from the attacker's previous round.
    """
    return jax.tree.map(lambda x, v: x - epsilon * v, target_e, pull_e)


def reverse_edges(dst: npt.ArrayLike, src: npt.ArrayLike) -> np.ndarray:
    """For each edge ``s → d`` the index of edge ``d → s``, ``−1`` where none (host side)."""
    d, s = np.asarray(dst), np.asarray(src)
    index = {(int(a), int(b)): e for e, (a, b) in enumerate(zip(d, s, strict=True))}
    return np.array([index.get((int(b), int(a)), -1) for a, b in zip(d, s, strict=True)], np.int32)


def dissensus_view(
    messages_prev_e: Any,
    dst: ArrayLike,
    src: ArrayLike,
    weight_e: ArrayLike,
    byzantine: ArrayLike,
    reverse: ArrayLike,
    *,
    delivered_prev: ArrayLike | None = None,
) -> tuple[Any, Any]:
    """``(target_e, pull_e)`` for :func:`dissensus` from what each attacker saw last round.

    On edge ``a → i``: ``x̂_i`` is the message ``a`` received from ``i`` (edge
    ``reverse[e]``); the mean of ``i``'s honest neighbours is estimated by ``μ̂``, the mean
    of the *other* honest messages ``a`` received, so
    ``v̂_i = (h_i / δ_i)(μ̂ − x̂_i)`` with ``h_i, δ_i`` the honest and Byzantine weight at
    ``i`` (public: the attackers know the topology, its weights and each other). Exact
    when ``i``'s honest neighbours are ``a``'s other honest neighbours with equal weights
    (e.g. a complete graph with uniform weights); an approximation otherwise. Where
    ``i → a`` does not exist or was not delivered, the attacker sends the mean of what
    it received.

    Args:
      messages_prev_e: the previous round's edge messages (leaves ``[E, ...]``).
      dst, src: ``int [E]`` the edge list (the same in both rounds).
      weight_e: ``[E]`` mixing weights ``W_{dst, src}``.
      byzantine: ``bool [N]``.
      reverse: ``int [E]`` from :func:`reverse_edges`.
      delivered_prev: the previous round's arrival mask.
    """
    d, s = jnp.asarray(dst), jnp.asarray(src)
    n = jnp.shape(byzantine)[0]
    byz = jnp.asarray(byzantine, bool)
    ok = delivered_or_all(delivered_prev, d)
    seen = received_stats(messages_prev_e, d, n, mask=ok & ~byz[s])
    w = jnp.asarray(weight_e, jnp.float32)
    delta = jax.ops.segment_sum(jnp.where(byz[s], w, 0.0), d, num_segments=n)
    honest = jax.ops.segment_sum(jnp.where(byz[s], 0.0, w), d, num_segments=n)
    rev = jnp.asarray(reverse)
    r = jnp.maximum(rev, 0)
    has = (rev >= 0) & ok[r] & ~byz[d]  # a heard the honest target i last round
    others = seen.count[s] - has.astype(jnp.int32)  # a's other honest messages
    scale = jnp.where(has & (others > 0), honest[d] / jnp.maximum(delta[d], 1e-30), 0.0)
    count_a = jnp.maximum(seen.count[s], 1).astype(jnp.float32)

    def estimate(m: jax.Array, mu: jax.Array):
        mean_a = jnp.take(mu, s, axis=0).astype(jnp.float32)  # mean a received, on a → i
        h = _bcast(has, mean_a)
        target = jnp.where(h, jnp.take(m, r, axis=0).astype(jnp.float32), mean_a)
        rest = (mean_a * _bcast(count_a, target) - target) / _bcast(jnp.maximum(others, 1), target)
        pull = jnp.where(h, _bcast(scale, target) * (rest - target), 0.0)
        return target.astype(m.dtype), pull.astype(m.dtype)

    pairs = jax.tree.map(estimate, messages_prev_e, seen.mean)
    is_pair = lambda t: isinstance(t, tuple)  # noqa: E731
    target_e = jax.tree.map(lambda p: p[0], pairs, is_leaf=is_pair)
    pull_e = jax.tree.map(lambda p: p[1], pairs, is_leaf=is_pair)
    return target_e, pull_e


def flip_labels(x: ArrayLike, y: ArrayLike, *, num_classes: int) -> tuple[jax.Array, jax.Array]:
    """Label flipping on an attacker's partition: ``(x, C − 1 − y)`` (``9 − y`` on digits)."""
    y_arr = jnp.asarray(y)
    if num_classes < 2:
        raise ValueError(f"label flipping needs num_classes >= 2, found {num_classes=}")
    return jnp.asarray(x), (num_classes - 1 - y_arr).astype(y_arr.dtype)
