"""Per-peer sending shared by the tcp and Pilot backends: one queue and one thread a peer.

``send`` returns at once: a backend puts the peer's frames on that peer's queue
and the peer's own thread delivers them in order, so a slow or dead peer never
blocks the node or its other peers. :class:`PeerSender` is that queue and thread
(a backend says how to :meth:`~PeerSender.deliver` one item and what to
:meth:`~PeerSender.finish` after the last); :class:`SenderPool` makes one per
peer on first use and stops them all at ``flush``, ``crash`` and ``close``.
"""

from __future__ import annotations

import abc
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PeerSender(abc.ABC, Generic[T]):
    """The queue of one peer's outgoing items and the thread that delivers them.

    Args:
      peer: the peer this sender delivers to.
      name: the thread's name.
    """

    def __init__(self, peer: int, name: str):
        self.peer = peer
        self.queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        """Starts the thread (once the subclass is fully built)."""
        self.thread.start()

    def put(self, item: T) -> None:
        """Queues ``item``; the thread delivers items in the order they were put."""
        self.queue.put(item)

    def stop(self) -> None:
        """Lets the thread deliver what is queued before now, then end."""
        self.queue.put(None)

    @abc.abstractmethod
    def deliver(self, item: T) -> None:
        """Delivers one item (the thread's work; it must not raise for a lost peer)."""

    def finish(self) -> None:
        """Runs once in the thread after its last item (e.g. closes the connection)."""

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            self.deliver(item)
        self.finish()


S = TypeVar("S", bound=PeerSender)


class SenderPool(Generic[S]):
    """A transport's senders, one per peer, made by ``make(peer)`` on first use.

    Args:
      make: builds the (not yet started) sender of a peer.
      closing: the transport's closing event: once set, no sender is made.
    """

    def __init__(self, make: Callable[[int], S], closing: threading.Event):
        self._make = make
        self._closing = closing
        self._lock = threading.Lock()
        self._senders: dict[int, S] = {}

    def get(self, peer: int) -> S | None:
        """The sender of ``peer`` (made and started now if there is none), or ``None``
        once the transport is closing."""
        with self._lock:
            if self._closing.is_set():
                return None
            s = self._senders.get(peer)
            if s is None:
                s = self._senders[peer] = self._make(peer)
                s.start()
            return s

    def stop_all(self) -> list[S]:
        """Takes every sender out of the pool (a later :meth:`get` makes new ones) and
        stops each after what it has queued; returns them."""
        with self._lock:
            senders, self._senders = list(self._senders.values()), {}
        for s in senders:
            s.stop()
        return senders

    def flush(self, timeout: float) -> None:
        """Stops every sender and waits until each delivered its queue (or ``timeout``
        seconds in all)."""
        senders = self.stop_all()
        end = time.monotonic() + timeout
        for s in senders:
            s.thread.join(max(0.0, end - time.monotonic()))
