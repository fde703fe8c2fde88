"""One robust combine rule over the gathered form, the same function in both modes.

:func:`robust_mix` dispatches on a :class:`RuleSpec` to plain gossip, ClippedGossip,
the trimmed mean, the median or (Multi-)Krum. The simulation calls it over all nodes
(``own [N, ...]``, every edge slot); a deployed node over itself alone (``own [1, ...]``,
its in-edges, ``dst = 0``) — so both modes run the same arithmetic on the same
messages. ``delivered`` already excludes the peers a detector flagged.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dfl.gossip.gathered import Edges, mixed_sum
from dfl.robust.clipping import adaptive_tau, budget_weight, clipped_gossip, oracle_tau
from dfl.robust.krum import KrumPairs, krum
from dfl.robust.trimmed import median, trimmed_mean

RULES = ("none", "clipped_gossip", "trimmed_mean", "median", "krum")
"""The combine rules of ``byzantine.name``."""


class RuleSpec(NamedTuple):
    """A combine rule and its static options (hashable: part of the jitted round).

    Attributes:
      name: one of :data:`RULES`.
      b: Byzantine in-neighbours tolerated per neighbourhood.
      tau: ClippedGossip's radius rule: ``adaptive``, ``oracle`` or ``fixed``.
      tau_value: the fixed radius.
      keep_own: the trimmed mean's BRIDGE-T variant.
      m: Multi-Krum's count.
    """

    name: str = "none"
    b: int = 0
    tau: str = "adaptive"
    tau_value: float = math.inf
    keep_own: bool = True
    m: int = 1


def robust_mix(
    own: Any,
    messages_e: Any,
    edges: Edges,
    delivered: jax.Array,
    spec: RuleSpec,
    *,
    byzantine_e: jax.Array | None = None,
    pairs: KrumPairs | None = None,
) -> Any:
    """The rule's aggregate of every node's closed neighbourhood (jittable).

    Args:
      own: pytree, leaves ``[N, ...]``: the nodes' own messages.
      messages_e: pytree, leaves ``[E, ...]``: the message on each edge slot.
      edges: the round's :class:`~dfl.gossip.gathered.Edges` (``dst`` in ``[0, N)``).
      delivered: ``bool [E]``: slots whose message is used (valid, arrived, not flagged).
      spec: the rule.
      byzantine_e: ``bool [E]`` whether the slot's sender is an attacker (``oracle`` τ).
      pairs: :func:`dfl.robust.krum.krum_pairs` of ``edges.dst`` (Krum).

    Returns:
      A pytree like ``own``, what the algorithm's ``combine`` takes.
    """
    ok = delivered & edges.valid
    if spec.name == "none":
        return mixed_sum(own, messages_e, edges, ok)
    if spec.name == "clipped_gossip":
        if spec.tau == "fixed":
            tau = jnp.asarray(spec.tau_value, jnp.float32)
        elif spec.tau == "oracle":
            if byzantine_e is None:
                raise ValueError("clipped_gossip with tau='oracle' needs the attackers")
            tau = oracle_tau(
                own, messages_e, edges.dst, edges.weight, byzantine_e=byzantine_e, delivered=ok
            )
        else:
            n = edges.self_weight.shape[0]
            delta = budget_weight(edges.dst, edges.weight, n, b=spec.b, delivered=ok)
            tau = adaptive_tau(own, messages_e, edges.dst, edges.weight, delta=delta, delivered=ok)
        return clipped_gossip(own, messages_e, edges.dst, edges.weight, tau=tau, delivered=ok)
    if spec.name == "trimmed_mean":
        return trimmed_mean(
            own, messages_e, edges.dst, b=spec.b, delivered=ok, keep_own=spec.keep_own
        )
    if spec.name == "median":
        return median(own, messages_e, edges.dst, delivered=ok)
    if spec.name == "krum":
        if pairs is None:
            raise ValueError("krum needs the candidate pairs (dfl.robust.krum.krum_pairs)")
        return krum(own, messages_e, edges.dst, pairs, b=spec.b, m=spec.m, delivered=ok)
    raise ValueError(f"unknown robust rule {spec.name!r}; expected one of {RULES}")
