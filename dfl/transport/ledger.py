"""What one node knows of every message sent to it: finished, delivered, rejected.

The :class:`Ledger` keeps, per ``(sender, round, kind)``, the
:class:`MessageState` of a message whose reassembly ended, the validated leaves
of the delivered ones of the current and future rounds, and the reasons of the
rejected ones. It is pure bookkeeping (no lock, no clock); the inbox calls it
under its lock.
"""

from __future__ import annotations

import collections
import enum

import numpy as np

from dfl.transport.reassembly import MessageKey

KEEP_DONE_ROUNDS = 8
"""Rounds behind the current one whose finished messages are remembered, so a late
duplicate is recognised as a duplicate (ignored) rather than an old-round message."""


class MessageState(enum.Enum):
    """Where a message whose last chunk arrived stands (messages still being
    reassembled have no state yet)."""

    VALIDATING = "validating"
    """Every chunk is in; its payload is being checked and decoded."""
    DELIVERED = "delivered"
    """Valid: its leaves are kept for its round."""
    REJECTED = "rejected"
    """Invalid (or of a closed round): its later frames are ignored."""


Leaves = list[np.ndarray]


class Ledger:
    """Per-message states, delivered leaves and rejection reasons of one node."""

    def __init__(self) -> None:
        self._state: dict[MessageKey, MessageState] = {}
        self._delivered: dict[tuple[int, int], dict[int, Leaves]] = collections.defaultdict(dict)
        self._rejected: dict[tuple[int, int], dict[int, str]] = collections.defaultdict(dict)

    def state(self, key: MessageKey) -> MessageState | None:
        """The state of ``key``'s message (``None``: not finished, or forgotten)."""
        return self._state.get(key)

    def validating(self, key: MessageKey) -> None:
        """Every chunk of ``key`` is in; its payload is being checked."""
        self._state[key] = MessageState.VALIDATING

    def deliver(self, key: MessageKey, leaves: Leaves | None, *, floor: int) -> None:
        """Records a valid message; keeps its leaves (``None``: a notice without
        payload, nothing to keep) unless its round is closed."""
        sender, round_, kind = key
        self._state[key] = MessageState.DELIVERED
        if leaves is not None and round_ >= floor:
            self._delivered[(round_, kind)][sender] = leaves

    def reject(self, key: MessageKey, reason: str, *, floor: int) -> None:
        """Records an invalid message: its round's wait for it ends (if still open)."""
        sender, round_, kind = key
        self._state[key] = MessageState.REJECTED
        if round_ >= floor:
            self._rejected[(round_, kind)][sender] = reason

    def delivered(self, round_: int, kind: int) -> dict[int, Leaves]:
        """Sender → leaves of the valid messages of ``round_`` (do not modify)."""
        return self._delivered.get((round_, kind), {})

    def rejected(self, round_: int, kind: int) -> dict[int, str]:
        """Sender → why its message of ``round_`` was rejected (do not modify)."""
        return self._rejected.get((round_, kind), {})

    def settled(self, sender: int, round_: int, kind: int) -> bool:
        """Whether ``sender``'s message of ``round_`` was delivered or rejected."""
        return sender in self.delivered(round_, kind) or sender in self.rejected(round_, kind)

    def held(self, sender: int) -> int:
        """Delivered messages of ``sender`` kept for the current and future rounds."""
        return sum(1 for senders in self._delivered.values() if sender in senders)

    def held_keys(self, sender: int, kind: int) -> list[MessageKey]:
        """The delivered messages of ``sender`` and ``kind`` whose leaves are kept."""
        held = self._delivered.items()
        return [(sender, r, k) for (r, k), senders in held if k == kind and sender in senders]

    def forget(self, key: MessageKey) -> None:
        """Drops everything known of ``key``'s message (it may arrive again)."""
        sender, round_, kind = key
        self._state.pop(key, None)
        self._delivered.get((round_, kind), {}).pop(sender, None)
        self._rejected.get((round_, kind), {}).pop(sender, None)

    def advance(self, floor: int) -> None:
        """Drops the leaves and reasons of rounds before ``floor``, and the states
        of rounds more than :data:`KEEP_DONE_ROUNDS` before it."""
        for key in [k for k in self._delivered if k[0] < floor]:
            del self._delivered[key]
        for key in [k for k in self._rejected if k[0] < floor]:
            del self._rejected[key]
        for key in [k for k in self._state if k[1] < floor - KEEP_DONE_ROUNDS]:
            del self._state[key]
