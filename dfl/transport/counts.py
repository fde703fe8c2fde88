"""Counters of an inbox: frames, messages and bytes received, per message kind and round."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class InboxStats:
    """Counters of one inbox (cumulative).

    Attributes:
      frames: frames whose header parsed.
      bytes: bytes of valid frames (headers included): delivered messages,
        notices, duplicates of finished messages.
      bytes_rejected: bytes of rejected frames (each its header and the chunk it
        could plausibly carry, never a declared length beyond the largest message).
      messages: messages and notices delivered.
      duplicates: frames of messages already finished (ignored).
      rejected: frames and messages rejected.
    """

    frames: int = 0
    bytes: int = 0
    bytes_rejected: int = 0
    messages: int = 0
    duplicates: int = 0
    rejected: int = 0


class RoundBytes:
    """Bytes received per message kind, attributed to the round in each frame's header.

    Rounds before the inbox's current round are folded into one total per kind,
    and rounds past its window into the window's last round, so memory stays
    bounded whatever round numbers a peer writes into its headers.
    """

    def __init__(self) -> None:
        self._past: dict[int, int] = {}
        self._ahead: dict[tuple[int, int], int] = {}

    def add(self, kind: int, round_: int, nbytes: int, *, floor: int, last: int) -> None:
        """Counts a frame of ``round_`` when the current round is ``floor`` and
        ``last`` is the furthest round accepted."""
        if round_ < floor:
            self._past[kind] = self._past.get(kind, 0) + nbytes
            return
        key = (kind, min(round_, last + 1))
        self._ahead[key] = self._ahead.get(key, 0) + nbytes

    def fold(self, floor: int) -> None:
        """Folds the rounds before ``floor`` into the per-kind totals."""
        for key in [k for k in self._ahead if k[1] < floor]:
            self._past[key[0]] = self._past.get(key[0], 0) + self._ahead.pop(key)

    def total(self, kind: int, through_round: int | None = None) -> int:
        """Bytes of ``kind``, of rounds up to ``through_round`` when given (rounds
        already folded are always included)."""
        ahead = sum(
            n
            for (k, r), n in self._ahead.items()
            if k == kind and (through_round is None or r <= through_round)
        )
        return self._past.get(kind, 0) + ahead
