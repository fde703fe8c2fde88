"""Bounded before trust: tcp's listener and every connection not yet authenticated.

One thread owns the listening socket and drives the handshake of every pending
connection with a selector (:mod:`dfl.transport.handshake`), so an
unauthenticated peer gets no thread and no frame buffer. At most
``max_pending`` connections are pending at once: a new one beyond that makes
room by closing the oldest pending one (a genuine handshake takes milliseconds, so
idle connections cannot keep a node's listener full; an attacker has to outrun
them). Each connection has one total deadline for its whole handshake (not per
read: a peer that trickles one byte a second is closed when it passes). Refusals
over the cap are counted and logged rate-limited; failed and expired handshakes
are reported through ``reject`` (the inbox's rejection log). A connection that
completes its handshake is switched to blocking mode and handed to ``admit``
with the node id it is bound to.
"""

from __future__ import annotations

import dataclasses
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from dfl.transport.handshake import Handshake, HandshakeError

log = logging.getLogger("dfl.transport.tcp")

LOG_FIRST = 3
"""Refusals over the cap logged one by one, before they are only counted."""
LOG_EVERY_S = 10.0
"""After that, one line with the count at most this often."""

Start = Callable[[socket.socket], tuple[socket.socket, Handshake]]
"""``start(conn)``: the socket to drive (e.g. TLS-wrapped ``conn``) and its handshake."""


@dataclasses.dataclass
class GateStats:
    """What the gate did.

    Attributes:
      accepted: connections accepted from the listener.
      authenticated: handshakes completed (handed to ``admit``).
      failed: handshakes refused (bad certificate, bad ``HELLO``, closed).
      expired: handshakes not completed within the deadline.
      evicted: pending connections closed to make room (over ``max_pending``).
      peak_pending: most connections pending at once.
    """

    accepted: int = 0
    authenticated: int = 0
    failed: int = 0
    expired: int = 0
    evicted: int = 0
    peak_pending: int = 0


@dataclasses.dataclass(eq=False)
class _Pending:
    sock: socket.socket
    handshake: Handshake
    deadline: float
    events: int = 0


class Gate:
    """Accepts connections on ``listener`` and authenticates them in one thread.

    Args:
      listener: a listening socket (the gate owns and finally closes it).
      name: the thread's name.
      node_id: this node (for log lines).
      start: ``start(conn)`` → the socket to drive and its handshake generator.
      admit: ``admit(sock, node)``: a connection bound to ``node`` (blocking mode).
      reject: ``reject(reason)``: a refused or expired handshake.
      max_pending: connections pending authentication at most.
      deadline_s: total time a connection has for its handshake.
    """

    def __init__(
        self,
        listener: socket.socket,
        *,
        name: str,
        node_id: int,
        start: Start,
        admit: Callable[[socket.socket, int], None],
        reject: Callable[[str], None],
        max_pending: int = 64,
        deadline_s: float = 5.0,
    ):
        if max_pending < 1:
            raise ValueError(f"transport.max_pending must be >= 1, found {max_pending}")
        if not deadline_s > 0:
            raise ValueError(f"transport.handshake_timeout_s must be > 0, found {deadline_s}")
        self.listener = listener
        self.node_id = node_id
        self.start_handshake = start
        self.admit = admit
        self.reject = reject
        self.max_pending = max_pending
        self.deadline_s = deadline_s
        self.stats = GateStats()
        self.closing = threading.Event()
        self._pending: dict[socket.socket, _Pending] = {}  # oldest first
        self._selector = selectors.DefaultSelector()
        self._unlogged = 0
        self._last_log = 0.0
        listener.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    @property
    def pending(self) -> int:
        """Connections pending authentication now."""
        return len(self._pending)

    def close(self, timeout: float = 2.0) -> None:
        """Stops accepting, closes every pending connection and the listener."""
        self.closing.set()
        self.thread.join(timeout)

    # -- the loop ------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self.closing.is_set():
                now = time.monotonic()
                wait = 0.2
                if self._pending:
                    first = min(p.deadline for p in self._pending.values())
                    wait = max(0.0, min(wait, first - now))
                for key, _ in self._selector.select(wait):
                    if key.data is None:
                        self._accept_all()
                    elif key.data.sock in self._pending:
                        self._advance(key.data)
                self._expire(time.monotonic())
                self._log_refusals(time.monotonic())
        except Exception:  # never let the listener die silently
            log.exception("node %d: the tcp listener failed", self.node_id)
        finally:
            for p in list(self._pending.values()):
                self._drop(p)
            self._selector.close()
            self.listener.close()

    def _accept_all(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. out of file descriptors: try again next round
                log.warning("node %d cannot accept a connection: %s", self.node_id, e)
                return
            self.stats.accepted += 1
            if len(self._pending) >= self.max_pending:
                self._evict_oldest()
            try:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock, handshake = self.start_handshake(conn)
            except OSError as e:
                conn.close()
                log.debug("node %d: a new connection failed at once: %s", self.node_id, e)
                continue
            p = _Pending(sock, handshake, time.monotonic() + self.deadline_s)
            self._pending[sock] = p
            self.stats.peak_pending = max(self.stats.peak_pending, len(self._pending))
            self._advance(p)

    def _advance(self, p: _Pending) -> None:
        try:
            want = next(p.handshake)
        except StopIteration as done:
            self._finish(p, int(done.value))
            return
        except HandshakeError as e:
            self._fail(p, e.reason)
            return
        except OSError as e:
            self._fail(p, f"connection failed during the handshake ({e})")
            return
        except Exception as e:  # a bug must cost one connection, never the listener
            log.exception("node %d: a connection handshake failed unexpectedly", self.node_id)
            self._fail(p, f"connection handshake failed ({type(e).__name__})")
            return
        if want != p.events:
            if p.events:
                self._selector.modify(p.sock, want, p)
            else:
                self._selector.register(p.sock, want, p)
            p.events = want

    def _forget(self, p: _Pending) -> None:
        self._pending.pop(p.sock, None)
        if p.events:
            self._selector.unregister(p.sock)
            p.events = 0
        p.handshake.close()

    def _drop(self, p: _Pending) -> None:
        self._forget(p)
        p.sock.close()

    def _finish(self, p: _Pending, node: int) -> None:
        self._forget(p)
        self.stats.authenticated += 1
        try:
            p.sock.setblocking(True)
            self.admit(p.sock, node)
        except OSError as e:
            p.sock.close()
            log.debug("node %d: connection of node %d ended at once: %s", self.node_id, node, e)

    def _fail(self, p: _Pending, reason: str) -> None:
        self._drop(p)
        self.stats.failed += 1
        self.reject(reason)

    def _expire(self, now: float) -> None:
        late = [p for p in self._pending.values() if p.deadline <= now]
        for p in late:
            self._drop(p)
            self.stats.expired += 1
            self.reject(
                f"connection handshake not finished within transport.handshake_timeout_s="
                f"{self.deadline_s:g}s (closed)"
            )

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._pending.values()))
        self._drop(oldest)
        self.stats.evicted += 1
        self._unlogged += 1
        if self.stats.evicted <= LOG_FIRST:
            self._log_refusals(time.monotonic(), force=True)

    def _log_refusals(self, now: float, *, force: bool = False) -> None:
        if not self._unlogged or not (force or now - self._last_log >= LOG_EVERY_S):
            return
        log.warning(
            "node %d closed %d pending connection(s) over transport.max_pending=%d "
            "(%d in all; the oldest unauthenticated connection makes room)",
            self.node_id,
            self._unlogged,
            self.max_pending,
            self.stats.evicted,
        )
        self._unlogged = 0
        self._last_log = now
