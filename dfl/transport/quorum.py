"""No single member decides for others: what a strict majority of a node's peers claim.

A node learns how far its peers are from the rounds of their validated
messages. Two decisions rest on that: the inbox stops waiting for a peer seen
two rounds ahead (it gave up on this node), and the node runner skips rounds to
rejoin peers that went on without it. One member (or one forged frame) must
not trigger either for others, so both ask what **more than half** of the
node's *members* (its in-neighbours over one schedule period, the union over
the period's rounds, so in-degree-1 graphs such as one-peer exponential still
need several members) have reached; members heard nothing from count as being
at the node's own round. Pure functions of plain values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def agreed_round(round_: int, members: Collection[int], rounds: Mapping[int, int]) -> int:
    """The highest round that more than half of ``members`` reached (at least ``round_``).

    Args:
      round_: the node's own round (members without a claim count as there).
      members: the node's members (see the module docstring).
      rounds: peer → the highest round of a valid message it sent this node.

    Returns:
      The ``(⌊m/2⌋ + 1)``-th highest of the members' rounds (``m`` members), each
      at least ``round_``; ``round_`` when there are no members.
    """
    if not members:
        return round_
    reached = sorted((max(round_, int(rounds.get(j, round_))) for j in members), reverse=True)
    return reached[len(reached) // 2]


def majority_at(target: int, members: Collection[int], rounds: Mapping[int, int]) -> bool:
    """Whether more than half of ``members`` sent a valid message of ``target`` or later."""
    reached = sum(1 for j in members if rounds.get(j, -1) >= target)
    return bool(members) and 2 * reached > len(members)
