"""Issue 13, findings 2 and 3 on tcp: a member speaks only as itself, both ends authenticate.

Loopback sockets only. Nodes 0 (the receiver), 1 (genuine) and 2 (a member of the
run with its own valid key, the attacker) hold certificates of one run CA.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time

import numpy as np
import pytest

from dfl.keys import RunCA
from dfl.transport import Kind, WireSpec, encode_payload
from dfl.transport.tcp import TcpTransport, free_ports
from dfl.transport.tls import client_context, server_context
from dfl.transport.wire import FORMAT_VERSION, Header, frame_bytes, run_digest
from tests.transport.keys import credentials

GENUINE = {"w": np.arange(64, dtype=np.float32)}
POISON = {"w": np.full(64, 1e30, dtype=np.float32)}
SPEC = WireSpec.from_tree(GENUINE)
RUN = "t"


def hello(sender: int, recipient: int) -> bytes:
    return Header(
        FORMAT_VERSION, Kind.HELLO, 0, sender, recipient, 0, run_digest(RUN), b"\0" * 16,
        0, 0, 1, 0, 0, 0,
    ).pack()  # fmt: skip


def forged(tree, *, sender: int, recipient: int, round_: int) -> bytes:
    """A well-formed message of ``tree`` whose header names ``sender``."""
    payload = encode_payload(SPEC, tree)
    frames = payload.frames(
        run=run_digest(RUN), sender=sender, recipient=recipient, round=round_, kind=Kind.WIRE
    )
    return b"".join(frame_bytes(f) for f in frames)


def wait_for(condition, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def run():
    """Endpoints of nodes 0 and 1 and the credentials of all three (node 2: the attacker)."""
    addresses = [("127.0.0.1", p) for p in free_ports(3)]
    keys = credentials(3, RUN)
    eps = [TcpTransport(i, addresses, run_id=RUN, tls=keys[i], connect_timeout_s=5) for i in (0, 1)]
    eps[0].expect(Kind.WIRE, SPEC)
    yield eps, keys, addresses
    for e in eps:
        e.close()


def test_a_member_cannot_speak_as_another_node(run):
    (receiver, genuine), keys, addresses = run
    attacker = client_context(keys[2])  # node 2's own, valid certificate and key
    # 1. HELLO claiming node 1 on node 2's certificate: refused before any frame is read.
    with attacker.wrap_socket(
        socket.create_connection(addresses[0]), server_hostname="dfl-node-0"
    ) as s:
        s.sendall(hello(1, 0) + forged(POISON, sender=1, recipient=0, round_=0))
        assert wait_for(lambda: receiver.gate.stats.failed >= 1)
    # 2. An honest HELLO as node 2, then a frame whose header claims node 1.
    with attacker.wrap_socket(
        socket.create_connection(addresses[0]), server_hostname="dfl-node-0"
    ) as s:
        s.sendall(hello(2, 0) + forged(POISON, sender=1, recipient=0, round_=0))
        assert wait_for(lambda: receiver.inbox.stats.rejected >= 2)
        # 3. The genuine node 1 sends its message afterwards: it is the one delivered.
        genuine.send(0, 0, Kind.WIRE, encode_payload(SPEC, GENUINE))
        got = receiver.receive(0, [1], time.monotonic() + 10)
    assert got.missing == [] and list(got.messages) == [1]
    np.testing.assert_array_equal(SPEC.unflatten(got.messages[1])["w"], GENUINE["w"])
    assert receiver.inbox.stats.duplicates == 0  # the forgery did not take node 1's slot
    reasons = [r.reason for r in got.rejections]
    claim = "HELLO claims node 1 on a connection whose certificate names node 2"
    assert any(claim in r for r in reasons)
    assert any("sender 1 on the connection of node 2" in r for r in reasons)


def unverifying(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """``ctx`` that accepts any listener (so only the listener's checks are tested)."""
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def test_a_client_without_a_run_ca_certificate_cannot_connect(run):
    (receiver, _), _, addresses = run
    other_ca = credentials(3, RUN, ca=RunCA.generate(RUN))  # same run id and node ids
    clients = {
        "foreign-ca": unverifying(client_context(other_ca[1])),  # "dfl-node-1", other CA
        "no-certificate": unverifying(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)),
    }
    for name, ctx in clients.items():
        failed = receiver.gate.stats.failed
        raw = socket.create_connection(addresses[0])
        raw.settimeout(5)
        try:
            with ctx.wrap_socket(raw, server_hostname="dfl-node-0") as s:
                s.sendall(hello(1, 0) + forged(POISON, sender=1, recipient=0, round_=0))
                assert s.recv(1) == b"", name  # the listener hung up without a word
        except (ssl.SSLError, ConnectionError):
            pass  # or its alert arrived first
        assert wait_for(lambda f=failed: receiver.gate.stats.failed > f), name
    got = receiver.receive(0, [1], time.monotonic() + 0.3)
    assert got.messages == {} and receiver.gate.stats.authenticated == 0
    assert sum("TLS handshake failed" in r.reason for r in got.rejections) == 2


class FakeListener:
    """Listens on a port and records every plaintext byte it gets (TLS with ``ctx``, or raw)."""

    def __init__(self, ctx: ssl.SSLContext | None):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.stop = threading.Event()
        self.port = self.server.getsockname()[1]
        self.ctx = ctx
        self.received = b""
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(0.5)
            try:
                sock = conn if self.ctx is None else self.ctx.wrap_socket(conn, server_side=True)
                while data := sock.recv(65536):
                    self.received += data
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.server.close()


@pytest.mark.parametrize("fake", ["plain-tcp", "member-certificate", "foreign-ca"])
def test_the_connecting_side_refuses_a_fake_listener(fake, caplog):
    """Finding 3: a listener on node 2's port that cannot show node 2's run-CA certificate
    gets neither a HELLO nor a frame from node 0."""
    keys = credentials(3, RUN)
    other = credentials(3, RUN, ca=RunCA.generate(RUN))
    ctx = {
        "plain-tcp": None,
        "member-certificate": server_context(keys[1]),  # node 1's genuine certificate
        "foreign-ca": server_context(other[2]),  # names dfl-node-2, from another CA
    }[fake]
    listener = FakeListener(ctx)
    ports = free_ports(2)
    addresses = [("127.0.0.1", ports[0]), ("127.0.0.1", ports[1]), ("127.0.0.1", listener.port)]
    sender = TcpTransport(
        0, addresses, run_id=RUN, tls=keys[0], connect_timeout_s=2, handshake_timeout_s=1
    )
    try:
        with caplog.at_level(logging.WARNING, logger="dfl.transport.tcp"):
            sender.send(2, 0, Kind.WIRE, encode_payload(SPEC, GENUINE))
            assert wait_for(lambda: sender.undelivered >= 1)
    finally:
        sender.close()
        listener.close()
    assert listener.connections >= 1
    assert b"DFLW" not in listener.received  # no HELLO, no frame, not even a header
    if ctx is not None:
        assert listener.received == b""
    logged = " ".join(r.getMessage() for r in caplog.records)
    if fake == "plain-tcp":
        assert "connection handshake with node 2 failed" in logged
    else:
        assert "refuses the listener" in logged and "it is not node 2 of this run" in logged
