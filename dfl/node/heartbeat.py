"""A progress line while a standalone node waits (peers not up yet, a slow round).

A node process started alone prints nothing while round 0 waits for its
in-neighbours (up to ``node.first_deadline_s``); :class:`Heartbeat` logs, every
``every_s`` seconds without a finished round, which round it waits on, for
whom, and for how long it will.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("dfl.node")

HEARTBEAT_S = 5.0
"""Seconds without a finished round after which a waiting node says so (and again after each)."""


class Heartbeat:
    """Logs a line every ``every_s`` seconds in which no round finished.

    Args:
      node: this node's id.
      peers: ``peers(t)``: the nodes whose round-``t`` messages this node waits for.
      limit: ``limit(t)``: a phrase for how long round ``t`` may wait.
      every_s: seconds between lines.
      emit: where lines go (default: the ``dfl.node`` logger at INFO).
    """

    def __init__(
        self,
        node: int,
        peers: Callable[[int], Iterable[int]],
        limit: Callable[[int], str],
        *,
        every_s: float = HEARTBEAT_S,
        emit: Callable[[str], None] | None = None,
    ):
        self.node, self.peers, self.limit, self.every_s = node, peers, limit, every_s
        self.emit = emit or (lambda line: log.info("%s", line))
        self._round = 0
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"dfl-heartbeat-{node}", daemon=True
        )

    def start(self, first_round: int = 0) -> Heartbeat:
        """Starts watching from ``first_round``; returns ``self``."""
        self.beat(first_round)
        self._thread.start()
        return self

    def beat(self, rounds_done: int) -> None:
        """Records that ``rounds_done`` rounds are finished (resets the clock)."""
        with self._lock:
            self._round, self._since = rounds_done, time.monotonic()

    def stop(self) -> None:
        """Stops the thread (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def line(self, now: float | None = None) -> str:
        """The line describing the current wait."""
        with self._lock:
            t, since = self._round, self._since
        waited = (time.monotonic() if now is None else now) - since
        peers = sorted(int(p) for p in self.peers(t))
        return (
            f"node {self.node}: no round finished for {waited:.0f}s (at round {t}: it needs "
            f"the messages of node(s) {peers} and waits {self.limit(t)}); if they are not "
            "running yet, start them, else check their logs"
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            with self._lock:
                quiet = time.monotonic() - self._since
            if quiet >= self.every_s:
                self.emit(self.line())
