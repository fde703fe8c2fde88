"""What the attackers put on their out-edges in one round, from the configured attack.

:func:`attack_messages` turns the honest edge messages of a round into the messages on
the wire: the honest message on an honest sender's edge, the attack on an attacker's. The
attacks that use honest statistics see only the *previous* round's messages the attacker
received (``prev_e``, ``prev_ok``: non-rushing, see :mod:`dfl.robust.attacks`), so the
simulation and a deployed attacker node compute the same message from the same inputs;
a node passes the global edge list with only its own in-edges marked in ``prev_ok``.
Gaussian noise is drawn per edge from ``fold_in(key, src · N + dst)``, so one edge's
noise does not depend on the others (a node draws only its own).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dfl.gossip.gathered import Edges
from dfl.robust.attacks import (
    alie,
    dissensus,
    dissensus_view,
    inject,
    ipm,
    received_stats,
    sign_flip,
)

MODEL_ATTACKS = ("sign_flip", "gaussian", "alie", "ipm", "dissensus")
"""Attacks on the messages (``label_flip`` acts on the data, ``none`` on nothing)."""


class AttackSpec(NamedTuple):
    """An attack and its static options (``byzantine.*`` of :mod:`dfl.config.byzantine_schema`)."""

    name: str = "none"
    scale: float = 1.0
    sigma: float = 1.0
    z: float = 1.0
    epsilon: float = 0.1


def edge_noise(honest_e: Any, key: jax.Array, edges: Edges, n: int, sigma: float) -> Any:
    """``m_e + σ ξ_e`` with ``ξ_e`` drawn from ``fold_in(key, src(e) · n + dst(e))``."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, edges.src * n + edges.dst)
    leaves, treedef = jax.tree.flatten(honest_e)

    def draw(k: jax.Array) -> list[jax.Array]:
        ks = jax.random.split(k, len(leaves))
        return [
            jax.random.normal(kk, m.shape[1:], jnp.float32)
            for kk, m in zip(ks, leaves, strict=True)
        ]

    noise = jax.vmap(draw)(keys)
    noisy = [m + (sigma * z).astype(m.dtype) for m, z in zip(leaves, noise, strict=True)]
    return jax.tree.unflatten(treedef, noisy)


def attack_messages(
    spec: AttackSpec,
    honest_e: Any,
    edges: Edges,
    byzantine: jax.Array,
    *,
    key: jax.Array,
    prev_e: Any,
    prev_ok: jax.Array,
    reverse: jax.Array,
    started: jax.Array,
) -> Any:
    """The edge messages on the wire: the attack on attackers' edges, honest elsewhere.

    Args:
      spec: the attack.
      honest_e: pytree, leaves ``[E, ...]``: every sender's honest message on each edge.
      edges: the round's edge slots (``N = byzantine.shape[0]`` nodes).
      byzantine: ``bool [N]``.
      key: the round's attack key.
      prev_e, prev_ok: the previous round's edge messages and which were received.
      reverse: ``int32 [E]``: the slot of the reverse arc (``-1``: none).
      started: ``bool`` scalar, ``False`` in the first round (nothing seen yet: the
        statistics attacks send their honest message).
    """
    n = byzantine.shape[0]
    if spec.name not in MODEL_ATTACKS:
        return honest_e
    if spec.name == "sign_flip":
        attack_e = sign_flip(honest_e, scale=spec.scale)
    elif spec.name == "gaussian":
        attack_e = edge_noise(honest_e, key, edges, n, spec.sigma)
    elif spec.name in ("alie", "ipm"):
        seen = received_stats(prev_e, edges.dst, n, mask=prev_ok & ~byzantine[edges.src])
        per_node = alie(seen, z=spec.z) if spec.name == "alie" else ipm(seen, epsilon=spec.epsilon)
        stat = jax.tree.map(lambda x: jnp.take(x, edges.src, axis=0), per_node)
        attack_e = jax.tree.map(lambda a, h: jnp.where(started, a, h), stat, honest_e)
    else:
        target, pull = dissensus_view(
            prev_e, edges.dst, edges.src, edges.weight, byzantine, reverse, delivered_prev=prev_ok
        )
        msg = dissensus(target, pull, epsilon=spec.epsilon)
        attack_e = jax.tree.map(lambda a, h: jnp.where(started, a, h), msg, honest_e)
    return inject(honest_e, attack_e, edges.src, byzantine)
