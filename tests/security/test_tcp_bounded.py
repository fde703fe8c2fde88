"""Issue 13, finding 5 on tcp: bounded resources before trust.

Loopback sockets only. An unauthenticated connection gets no thread and no frame
buffer, at most ``max_pending`` of them are pending, and each has one total
handshake deadline however slowly it trickles bytes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dfl.transport import Kind, WireSpec, encode_payload
from dfl.transport.auth import NONCE_NBYTES
from dfl.transport.gate import LOG_FIRST
from dfl.transport.tcp import (
    IDLE_EVICT_S,
    MAX_CONNECTIONS_PER_PEER,
    RECONNECT_TIMEOUT_S,
    TcpTransport,
    free_ports,
)
from dfl.transport.tls import client_context, server_context
from dfl.transport.wire import FORMAT_VERSION, HEADER_NBYTES, Header, run_digest
from tests.transport.keys import credentials

TREE = {"w": np.arange(256, dtype=np.float32)}
SPEC = WireSpec.from_tree(TREE)
RUN = "t"
CAP = 64


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def wait_for(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def nodes(n: int, **kwargs) -> list[TcpTransport]:
    addresses = [("127.0.0.1", p) for p in free_ports(n)]
    keys = credentials(n, RUN)
    eps = [
        TcpTransport(i, addresses, run_id=RUN, tls=keys[i], connect_timeout_s=5, **kwargs)
        for i in range(n)
    ]
    for e in eps:
        e.expect(Kind.WIRE, SPEC)
    return eps


def test_500_unauthenticated_connections_are_capped_and_genuine_nodes_still_run(caplog):
    eps = nodes(3, max_pending=CAP, handshake_timeout_s=20)
    a, b, c = eps
    flood: list[socket.socket] = []
    try:
        b.send(0, 0, Kind.WIRE, encode_payload(SPEC, TREE))  # b's connection is established
        assert a.receive(0, [1], time.monotonic() + 10).missing == []
        threads, rss = threading.active_count(), rss_mb()
        with caplog.at_level(logging.WARNING, logger="dfl.transport.tcp"):
            for _ in range(10):  # in bursts of 50 (within the listen backlog)
                for _ in range(50):
                    s = socket.socket()
                    s.setblocking(False)
                    assert s.connect_ex(a.addresses[0]) in (0, errno.EINPROGRESS)
                    flood.append(s)  # connected and silent: never a handshake
                assert wait_for(lambda: a.gate.stats.accepted >= len(flood) + 1)
            # c connects for the first time during the flood, b over its open connection.
            payload = encode_payload(SPEC, TREE)
            b.send(0, 1, Kind.WIRE, payload)
            c.send(0, 1, Kind.WIRE, payload)
            got = a.receive(1, [1, 2], time.monotonic() + 10)
        assert got.missing == [] and sorted(got.messages) == [1, 2]
        stats = a.gate.stats
        assert a.gate.pending <= CAP and stats.peak_pending == CAP
        assert stats.evicted >= 500 - CAP and stats.authenticated == 2  # b, then c
        assert threading.active_count() - threads <= 3  # c's sender, a's reader of c, crc
        assert rss_mb() - rss < 20, f"RSS grew {rss_mb() - rss:.1f} MB"
        over = [r for r in caplog.records if "over transport.max_pending" in r.getMessage()]
        assert 1 <= len(over) <= LOG_FIRST + 1  # rate-limited: not one line per refusal
    finally:
        for s in flood:
            s.close()
        for e in eps:
            e.close()


def hello(sender: int, recipient: int) -> bytes:
    return Header(
        FORMAT_VERSION, Kind.HELLO, 0, sender, recipient, 0, run_digest(RUN), b"\0" * 16,
        0, 0, 1, 0, 0, 0,
    ).pack()  # fmt: skip


@pytest.mark.parametrize("stage", ["tls-handshake", "hello-after-tls"])
def test_a_slow_loris_is_closed_at_the_handshake_deadline(stage, caplog):
    """One byte every 0.1 s: every read gets data, so only a total deadline closes it."""
    a, b = nodes(2, handshake_timeout_s=1.0)
    keys = b.tls
    try:
        raw = socket.create_connection(a.addresses[0])
        start = time.monotonic()
        if stage == "tls-handshake":
            sock, trickle = raw, b"\x16\x03\x01\x02\x00" + bytes(512)  # a record's header, body
        else:  # a member with a valid certificate completes TLS, then trickles its HELLO
            assert keys is not None
            sock = client_context(keys).wrap_socket(raw, server_hostname="dfl-node-0")
            trickle = hello(1, 0)
        with caplog.at_level(logging.WARNING):
            closed_at = None
            for i in range(len(trickle)):
                if a.gate.stats.expired:
                    closed_at = time.monotonic() - start
                    break
                with contextlib.suppress(OSError):  # the node hung up; its counter says when
                    sock.sendall(trickle[i : i + 1])
                time.sleep(0.1)
        sock.close()
        assert closed_at is not None and 0.9 <= closed_at <= 2.5, closed_at
        assert a.gate.pending == 0 and a.gate.stats.authenticated == 0
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "handshake not finished within transport.handshake_timeout_s=1s" in logged
        # The node still serves its genuine peer.
        b.send(0, 0, Kind.WIRE, encode_payload(SPEC, TREE))
        assert a.receive(0, [1], time.monotonic() + 10).missing == []
    finally:
        a.close()
        b.close()


def test_a_member_keeps_at_most_two_connections():
    """After trust, too: at most MAX_CONNECTIONS_PER_PEER connections per peer (one
    reader thread and buffer each). While they are active, a member's further ones are
    refused; once one has been idle IDLE_EVICT_S, a new one (the member's own sender,
    say after a restart) takes its place."""
    a, b = nodes(2)
    assert b.tls is not None
    ctx = client_context(b.tls)
    socks = []
    try:
        for _ in range(6):
            s = ctx.wrap_socket(
                socket.create_connection(a.addresses[0]), server_hostname="dfl-node-0"
            )
            s.sendall(hello(1, 0))
            socks.append(s)
        assert wait_for(lambda: a.gate.stats.authenticated == 6)

        def readers() -> int:
            return sum(t.name == "dfl-tcp-read-0<-1" for t in threading.enumerate())

        assert wait_for(lambda: readers() == MAX_CONNECTIONS_PER_PEER)

        def closed(s: ssl.SSLSocket) -> bool:  # the node hung up on it
            if not select.select([s], [], [], 0)[0]:
                return False
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                assert s.recv(1) == b""
            return True

        hung_up: set[int] = set()

        def count() -> int:
            hung_up.update(i for i, s in enumerate(socks) if i not in hung_up and closed(s))
            return len(hung_up)

        assert wait_for(lambda: count() == len(socks) - MAX_CONNECTIONS_PER_PEER)
        time.sleep(IDLE_EVICT_S + 0.2)  # the kept two are idle now: a stale pair
        b.send(0, 0, Kind.WIRE, encode_payload(SPEC, TREE))  # b's own sender still gets in
        assert a.receive(0, [1], time.monotonic() + 10).missing == []
        assert wait_for(lambda: readers() == MAX_CONNECTIONS_PER_PEER)  # one more closed
    finally:
        for s in socks:
            s.close()
        a.close()
        b.close()


class TricklingListener:
    """A fake listener at ``address`` that writes its answer one byte every ``every_s``
    seconds: with ``keys``, the TLS handshake a real server with those keys would
    write; without, an insecure node's shared-secret challenge (a nonce)."""

    def __init__(self, address: tuple[str, int], keys=None, every_s: float = 0.05):
        self.server = socket.create_server(address)
        self.ctx = server_context(keys) if keys is not None else None
        self.every_s = every_s
        self.stop = threading.Event()
        self.accepted = 0
        self.hung_up: list[float] = []  # when each dialler closed its connection
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        self.server.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            with conn:
                self._trickle(conn)

    def _answer(self) -> Callable[[bytes], bytes]:
        if self.ctx is None:  # the nonce, once the dialler's HELLO is in
            got = bytearray()

            def nonce(data: bytes) -> bytes:
                first = len(got) < HEADER_NBYTES <= len(got) + len(data)
                got.extend(data)
                return bytes(NONCE_NBYTES) if first else b""

            return nonce
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(incoming, outgoing, server_side=True)

        def handshake(data: bytes) -> bytes:
            incoming.write(data)
            with contextlib.suppress(ssl.SSLError):
                tls.do_handshake()
            return outgoing.read()

        return handshake

    def _trickle(self, conn: socket.socket) -> None:
        answer = self._answer()
        out = bytearray()
        while not self.stop.is_set():
            if select.select([conn], [], [], 0)[0]:
                data = conn.recv(65536)
                if not data:  # the dialler gave up
                    self.hung_up.append(time.monotonic())
                    return
                out += answer(data)
            if out:
                with contextlib.suppress(OSError):
                    conn.sendall(out[:1])
                del out[:1]
            self.stop.wait(self.every_s)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.server.close()


@pytest.mark.parametrize("mode", ["tls", "insecure-secret"])
def test_the_dialler_gives_up_a_trickling_listener_at_the_handshake_deadline(mode, caplog):
    """Every read of the dialler gets a byte well within the deadline, so only one total
    deadline ends its handshake; then the dialler keeps going: once the genuine node
    listens there, the next message reaches it.

    TLS: node 1's own certificate, written slowly (~1.5 kB at 20 B/s). Insecure mode:
    the 32-byte nonce at 2 B/s (CPython bounds a blocking TLS handshake in total, but
    not a run of ``recv`` calls).
    """
    addresses = [("127.0.0.1", p) for p in free_ports(2)]
    if mode == "tls":
        keys: list = credentials(2, RUN)
        fake = TricklingListener(addresses[1], keys[1], every_s=0.05)
        kw: list[dict] = [{"tls": k} for k in keys]
    else:
        fake = TricklingListener(addresses[1], every_s=0.5)
        kw = [{"secret": b"s" * 32}] * 2
    a = TcpTransport(0, addresses, run_id=RUN, handshake_timeout_s=1.0, **kw[0])
    b = None
    try:
        with caplog.at_level(logging.WARNING, logger="dfl.transport.tcp"):
            start = time.monotonic()
            a.send(1, 0, Kind.WIRE, encode_payload(SPEC, TREE))
            assert wait_for(lambda: fake.hung_up, timeout=5), "the dialler never gave up"
            gave_up = fake.hung_up[0] - start
            assert 0.9 <= gave_up <= 2.0, gave_up
            assert wait_for(lambda: a.undelivered == 1)
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert (
            "node 0 gave up the connection handshake with node 1 at 127.0.0.1:"
            f"{addresses[1][1]}: not finished within transport.handshake_timeout_s=1s"
        ) in logged
        fake.close()
        b = TcpTransport(1, addresses, run_id=RUN, **kw[1])
        b.expect(Kind.WIRE, SPEC)
        time.sleep(RECONNECT_TIMEOUT_S)  # node 1 counts as down this long after a failure
        a.send(1, 1, Kind.WIRE, encode_payload(SPEC, TREE))
        got = b.receive(1, [0], time.monotonic() + 10)
        assert got.missing == [] and fake.accepted == 1
        np.testing.assert_array_equal(SPEC.unflatten(got.messages[0])["w"], TREE["w"])
    finally:
        fake.close()
        a.close()
        if b is not None:
            b.close()
