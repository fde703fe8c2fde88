"""Combining a round's received messages under an algorithm's missing-message rule.

``mixed = Σ_j W_ij · message_j`` over node ``i``'s in-neighbours and itself (the
exchange contract of :mod:`dfl.algorithms.base`). When in-neighbour ``j``'s
message is missing or was rejected at the deadline:

* ``RENORMALIZE``: its weight ``W_ij`` is added to the node's own weight (the
  row still sums to what it summed to);
* ``REUSE_LAST``: the last message received from ``j`` stands in for it (if
  none was ever received, the weight goes to the node itself, as above);
* ``WAIT``: the caller keeps waiting up to its hard timeout and fails loudly;
  :func:`plan_mix` refuses a missing message under ``WAIT``.

Every slot keeps its position (missing ones get weight 0 and the node's own
message as a placeholder), so the jitted mix sees the same shapes every round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from dfl.algorithms.base import MissingRule


@dataclasses.dataclass
class MixPlan:
    """The weights and messages of one round's mix at one node.

    Attributes:
      sources: node ids of the slots, ascending (the node itself included).
      weights: float32 weight per slot.
      messages: message per slot.
      missing: in-neighbours whose message of this round was not used.
      reused: in-neighbours whose last message stood in (``REUSE_LAST``).
    """

    sources: list[int]
    weights: np.ndarray
    messages: list[Any]
    missing: list[int]
    reused: list[int]


def plan_mix(
    node: int,
    row: np.ndarray,
    own: Any,
    received: Mapping[int, Any],
    rule: MissingRule,
    last: Mapping[int, Any] | None = None,
) -> MixPlan:
    """The mix of ``node`` for one round.

    Args:
      node: this node's id.
      row: ``W[node, :]`` (float64).
      own: this node's own decoded message.
      received: in-neighbour → decoded message, for those that arrived valid.
      rule: the algorithm's missing-message rule.
      last: in-neighbour → its last received message (``REUSE_LAST``).

    Returns:
      The :class:`MixPlan`.

    Raises:
      RuntimeError: under ``WAIT`` with a message missing.
    """
    row = np.asarray(row, dtype=np.float64)
    sources = sorted({node, *np.flatnonzero(row).tolist()})
    weights = {j: float(row[j]) for j in sources}
    messages: dict[int, Any] = {}
    missing, reused = [], []
    for j in sources:
        if j == node:
            messages[j] = own
        elif j in received:
            messages[j] = received[j]
        else:
            missing.append(j)
            if rule == MissingRule.WAIT:
                raise RuntimeError(
                    f"node {node}: the message of node {j} is missing and the algorithm's "
                    "missing-message rule is WAIT"
                )
            if rule == MissingRule.REUSE_LAST and last is not None and j in last:
                messages[j] = last[j]
                reused.append(j)
            else:
                weights[node] += weights[j]
                weights[j] = 0.0
                messages[j] = own
    return MixPlan(
        sources=sources,
        weights=np.asarray([weights[j] for j in sources], dtype=np.float32),
        messages=[messages[j] for j in sources],
        missing=missing,
        reused=reused,
    )
