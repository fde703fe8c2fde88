"""When a node that fell behind may skip rounds to rejoin its neighbours.

A node that was away (killed and restarted, stalled) sees its neighbours' frames
for later rounds and jumps to their round instead of replaying (``node.rejoin``).
No single member may decide that for it (issue 13, finding 1: one forged frame
claiming round +140 made every node skip 137-139 rounds):

* the **members** are the union of the node's in-neighbours over one schedule
  period starting at its round (``period`` rounds; a random schedule: ``n``), so
  an in-degree-1 graph (one-peer exponential) still needs several members;
* it skips only when **more than half** of them sent a valid message for a later
  round, and only to the round that such a majority reached (the ``k``-th highest
  round, ``k = ⌊m/2⌋ + 1`` of ``m`` members; members it heard nothing from count
  as at its round);
* never further than time allows: neighbours that stopped waiting for it advance
  at most one round per ``node.deadline_s`` of its silence, so the jump is at most
  ``⌊silent / deadline_s⌋ + 1`` rounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from dfl.node.exchange import in_neighbours


def members(weights: Callable[[int], np.ndarray], node: int, round_: int, period: int) -> list[int]:
    """The union of ``node``'s in-neighbours over rounds ``round_ .. round_ + period - 1``."""
    out: set[int] = set()
    for r in range(round_, round_ + max(1, period)):
        out.update(in_neighbours(np.asarray(weights(r)), node))
    return sorted(out)


def agreed_round(round_: int, peers: list[int], peer_rounds: Mapping[int, int]) -> int:
    """The highest round a strict majority of ``peers`` reached (``round_`` if none ahead).

    Args:
      round_: the node's next round.
      peers: the members (:func:`members`).
      peer_rounds: peer → the highest round of a valid message it sent this node.
    """
    if not peers:
        return round_
    reached = sorted((max(round_, int(peer_rounds.get(j, round_))) for j in peers), reverse=True)
    return reached[len(peers) // 2]  # the (⌊m/2⌋ + 1)-th highest: > m/2 members reached it


def time_bound(silent_s: float, deadline_s: float) -> int:
    """Rounds the neighbours can have gone on without the node in ``silent_s`` seconds."""
    if deadline_s <= 0:
        return 1
    return math.floor(max(0.0, silent_s) / deadline_s) + 1


def rejoin_target(
    round_: int,
    peers: list[int],
    peer_rounds: Mapping[int, int],
    *,
    silent_s: float,
    deadline_s: float,
    last_round: int,
) -> int:
    """The round the node jumps to (``round_``: no skip), by the rules above,
    never past ``last_round``."""
    agreed = agreed_round(round_, peers, peer_rounds)
    if agreed <= round_:
        return round_
    return max(round_, min(agreed, round_ + time_bound(silent_s, deadline_s), last_round))
