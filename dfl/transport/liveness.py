"""Failure detection: which peers a node holds for down.

A peer is **down** once its connection was refused or its last connection to
this node closed (one of several closing is not enough), or once it missed
``down_after_missed`` consecutive deadlines (its message of a round was neither
delivered nor rejected when the node's wait for that round ended); its next
valid frame (a message, a late one or a ``WAITING`` notice, on its own bound
channel) marks it up again. While a peer is down, a node whose algorithm
RENORMALIZEs counts its messages as missing at once instead of after a full
deadline; WAIT algorithms still wait. ``transport.down_after_missed = 0``
disables the rule. The simulated network model uses the same rule and key.

:class:`PeerHealth` records the facts (misses, lost connections); the receive
that asks passes its ``down_after_missed``. No lock: the inbox calls it under its own.
"""

from __future__ import annotations

import logging

log = logging.getLogger("dfl.transport")

DOWN_AFTER_MISSED = 3
"""The default of ``transport.down_after_missed``."""


class PeerHealth:
    """Consecutive missed deadlines and lost connections per peer of one node."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self._missed: dict[int, int] = {}
        self._lost: set[int] = set()

    def heard(self, peer: int) -> None:
        """A valid frame from ``peer``: it is up."""
        if self._missed.pop(peer, 0) or peer in self._lost:
            self._lost.discard(peer)
            log.info("node %d hears node %d again", self.node_id, peer)

    def missed(self, peer: int, round_: int) -> None:
        """``peer``'s message of ``round_`` was not there when the wait ended."""
        self._missed[peer] = self._missed.get(peer, 0) + 1

    def lost(self, peer: int, why: str) -> None:
        """``peer``'s connection was refused or closed."""
        if peer not in self._lost:
            self._lost.add(peer)
            log.info("node %d: connection of node %d %s", self.node_id, peer, why)

    def misses(self, peer: int) -> int:
        """Consecutive deadlines ``peer`` missed."""
        return self._missed.get(peer, 0)

    def is_down(self, peer: int, down_after_missed: int) -> bool:
        """Whether ``peer`` is down under ``down_after_missed`` (0: never)."""
        if down_after_missed <= 0:
            return False
        return peer in self._lost or self._missed.get(peer, 0) >= down_after_missed
