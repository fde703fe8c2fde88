"""Bounded, rate-limited accounting of rejected frames.

A peer (or an outsider) can make a node reject frames as fast as it can send
them, so what a rejection costs the node must not grow with their number:

* :class:`RejectionLog` logs the first :data:`LOG_FIRST` rejections of each
  ``(claimed sender, reason)`` (the reason with its numbers blanked, so "old
  round 4" and "old round 5" are one reason), then one line per
  :data:`SUMMARY_EVERY_S` seconds with how many more there were;
* :class:`Rejections` keeps what the node's next receive reports: counts, and
  at most :data:`KEEP_RECENT` of the rejections themselves.

Neither holds a lock; the inbox calls them under its own.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable

log = logging.getLogger("dfl.transport")

LOG_FIRST = 5
"""Rejections logged in full per (claimed sender, reason) before they are only counted."""
SUMMARY_EVERY_S = 30.0
"""At most one summary line of the rejections not logged in full per this many seconds."""
MAX_REASONS = 4096
"""(Sender, reason) pairs remembered; rejections of new pairs beyond it are only counted."""
KEEP_RECENT = 64
"""Rejections kept in full between two receives (the rest are only counted)."""

_NUMBERS = re.compile(r"\d+")


@dataclasses.dataclass(frozen=True)
class Rejection:
    """One rejected frame or message.

    Attributes:
      reason: why it was rejected.
      sender: the claimed sender where the header could be trusted, else ``None``.
      round: the claimed round where the header could be trusted, else ``None``.
      late: a message of a round this node has already closed, valid in every
        other respect and from the sender its channel is bound to (a straggler),
        not a malformed one.
    """

    reason: str
    sender: int | None = None
    round: int | None = None
    late: bool = False


def reason_kind(reason: str) -> str:
    """``reason`` with its numbers blanked: the key rejections are rate-limited by."""
    return _NUMBERS.sub("#", reason)


class RejectionLog:
    """Logs rejections, the first :data:`LOG_FIRST` per sender and reason in full.

    Args:
      node_id: the node (named in every line).
      clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, node_id: int, clock: Callable[[], float] = time.monotonic):
        self.node_id = node_id
        self.clock = clock
        self._seen: dict[tuple[int | None, str], int] = {}
        self._quiet = 0  # rejections counted but not logged since the last summary
        self._summary_at = clock() + SUMMARY_EVERY_S

    def rejected(self, reason: str, sender: int | None, round_: int | None) -> None:
        """Logs one rejection (in full, or counted for the next summary)."""
        key = (sender, reason_kind(reason))
        n = self._seen.get(key)
        if n is None and len(self._seen) >= MAX_REASONS:
            n = LOG_FIRST  # the table is full: counted only
        n = (n or 0) + 1
        if key in self._seen or len(self._seen) < MAX_REASONS:
            self._seen[key] = n
        if n <= LOG_FIRST:
            where = "" if sender is None else f" from node {sender} for round {round_}"
            more = " (more like it are only counted)" if n == LOG_FIRST else ""
            log.warning("node %d rejected a message%s: %s%s", self.node_id, where, reason, more)
        else:
            self._quiet += 1
        self.flush()

    def flush(self, *, force: bool = False) -> None:
        """Logs how many rejections went unlogged, at most once per
        :data:`SUMMARY_EVERY_S` (``force``: now, if there were any)."""
        now = self.clock()
        if self._quiet and (force or now >= self._summary_at):
            log.warning(
                "node %d rejected %d more frames since its last summary (reasons logged before)",
                self.node_id,
                self._quiet,
            )
            self._quiet = 0
        if now >= self._summary_at:
            self._summary_at = now + SUMMARY_EVERY_S


class Rejections:
    """The rejections since the last receive: counts, and the first :data:`KEEP_RECENT`."""

    def __init__(self) -> None:
        self.kept: list[Rejection] = []
        self.count = 0
        self.late = 0

    def add(self, rejection: Rejection) -> None:
        """Counts ``rejection`` (kept in full while fewer than :data:`KEEP_RECENT` are)."""
        self.count += 1
        self.late += rejection.late
        if len(self.kept) < KEEP_RECENT:
            self.kept.append(rejection)

    def take(self) -> tuple[list[Rejection], int, int]:
        """``(kept, count, late)`` since the last take; starts over."""
        out = (self.kept, self.count, self.late)
        self.kept, self.count, self.late = [], 0, 0
        return out
