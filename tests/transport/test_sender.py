"""The per-peer senders shared by tcp and Pilot (dfl.transport.sender)."""

from __future__ import annotations

import threading
import time

from dfl.transport.sender import PeerSender, SenderPool


class Recorder(PeerSender[int]):
    """Records what it delivers; ``gate`` (if set) holds each delivery until it is set."""

    def __init__(self, peer: int, gate: threading.Event | None = None):
        super().__init__(peer, f"test-sender-{peer}")
        self.delivered: list[int] = []
        self.threads: set[str] = set()
        self.finished = 0
        self.gate = gate

    def deliver(self, item: int) -> None:
        if self.gate is not None:
            self.gate.wait(5)
        self.threads.add(threading.current_thread().name)
        self.delivered.append(item)

    def finish(self) -> None:
        self.finished += 1
        self.last_at_finish = list(self.delivered)


def test_items_are_delivered_in_order_by_the_peers_own_thread_then_finish_once():
    pool = SenderPool(Recorder, threading.Event())
    a, b = pool.get(1), pool.get(2)
    assert a is not None and b is not None and pool.get(1) is a
    for i in range(100):
        (a if i % 2 else b).put(i)
    pool.flush(5)
    assert a.delivered == list(range(1, 100, 2)) and b.delivered == list(range(0, 100, 2))
    assert a.threads == {"test-sender-1"} and b.threads == {"test-sender-2"}
    assert a.finished == b.finished == 1 and a.last_at_finish == a.delivered
    assert not a.thread.is_alive() and not b.thread.is_alive()


def test_after_flush_a_peer_gets_a_new_sender_and_a_closing_pool_makes_none():
    closing = threading.Event()
    pool = SenderPool(Recorder, closing)
    first = pool.get(3)
    assert first is not None
    assert pool.stop_all() == [first] and pool.stop_all() == []
    second = pool.get(3)
    assert second is not None and second is not first
    closing.set()
    assert pool.get(4) is None and pool.get(3) is None
    pool.flush(5)
    assert second.finished == 1


def test_flush_gives_up_after_its_timeout_in_all():
    gate = threading.Event()
    pool = SenderPool(lambda peer: Recorder(peer, gate), threading.Event())
    senders = [pool.get(p) for p in range(3)]
    for s in senders:
        assert s is not None
        s.put(0)
    start = time.monotonic()
    pool.flush(0.3)  # every delivery is held: one total timeout, not 0.3 s per sender
    took = time.monotonic() - start
    assert 0.25 <= took < 0.6, took
    assert all(s is not None and s.delivered == [] and s.thread.is_alive() for s in senders)
    gate.set()
    for s in senders:
        assert s is not None
        s.thread.join(5)
        assert s.delivered == [0] and s.finished == 1
