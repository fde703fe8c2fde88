"""When a node that fell behind may skip rounds to rejoin its neighbours.

A node that was away (killed and restarted, its daemon or network down, stalled)
sees its neighbours' messages of later rounds and jumps to their round instead of
replaying the rounds it missed (``node.rejoin``). No single member may decide that
for it (issue 13, finding 1: one forged frame claiming round +140 made every node
skip 137-139 of 160 rounds). It skips only

* when **more than half** of its members (its in-neighbours over one schedule
  period, :meth:`dfl.node.exchange.NodeExchange.members`) sent a valid message of
  a later round, each of them a peer that mixes this node's messages in between
  (:meth:`~dfl.node.exchange.NodeExchange.rejoin_claims`; members it heard nothing
  from count as being at its round);
* no further than that majority agrees on (:func:`dfl.transport.quorum.agreed_round`);
* and never further than time allows: neighbours that went on without it waited
  for it at most one ``node.deadline_s`` per round, so since the last round it was
  in step with them (no majority ahead; after a restart: its checkpoint's round and
  wall-clock time) at most ``⌊elapsed / deadline_s⌋ + 1`` rounds can have passed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping

from dfl.transport.quorum import agreed_round


@dataclasses.dataclass
class InStep:
    """The last round a node was in step with its members, and when (wall clock, s)."""

    round: int
    time: float

    def bound(self, now: float, deadline_s: float) -> int:
        """The furthest round its neighbours can have reached by ``now``."""
        if deadline_s <= 0:
            return self.round + 1
        return self.round + math.floor(max(0.0, now - self.time) / deadline_s) + 1


def rejoin_target(
    round_: int,
    members: Collection[int],
    claims: Mapping[int, int],
    *,
    bound: int,
    last_round: int,
) -> int:
    """The round the node jumps to (``round_``: no skip).

    Args:
      round_: the node's next round.
      members: its members.
      claims: member → the round of its latest valid message, for the members
        ahead (:meth:`~dfl.node.exchange.NodeExchange.rejoin_claims`).
      bound: the furthest round time allows (:meth:`InStep.bound`).
      last_round: the run's last round.
    """
    agreed = agreed_round(round_, members, claims)
    return max(round_, min(agreed, bound, last_round))
