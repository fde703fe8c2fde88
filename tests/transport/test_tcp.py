"""The tcp transport on 127.0.0.1: chunked messages, bad peers, dead peers (mutual TLS),
and the explicit insecure mode (plain TCP, optionally a shared secret)."""

from __future__ import annotations

import socket
import time

import jax.numpy as jnp
import numpy as np
import pytest

from dfl.transport import Kind, Transport, WireSpec, encode_payload, message_nbytes
from dfl.transport.auth import NONCE_NBYTES, SECRET_ENV, load_secret, proof
from dfl.transport.tcp import TcpTransport, addresses_from, free_ports, parse_address
from dfl.transport.wire import FORMAT_VERSION, Header, run_digest
from tests.transport.keys import credentials

TREE = {"w": jnp.arange(50_000, dtype=jnp.float32).reshape(500, 100), "b": jnp.ones(7)}
SPEC = WireSpec.from_tree(TREE)


@pytest.fixture
def nodes():
    addresses = [("127.0.0.1", p) for p in free_ports(3)]
    tls = credentials(3)
    eps = [
        TcpTransport(i, addresses, run_id="t", tls=tls[i], connect_timeout_s=5, chunk_bytes=40_000)
        for i in range(3)
    ]
    for e in eps:
        e.expect(Kind.WIRE, SPEC)
    yield eps
    for e in eps:
        e.close()


def test_chunked_round_trip_and_bytes(nodes):
    a, b, c = nodes
    assert isinstance(a, Transport)  # the runtime-checkable protocol
    payload = encode_payload(SPEC, TREE, chunk_bytes=40_000)
    assert len(payload.chunks) == 6
    for r in range(3):
        assert a.send(1, r, Kind.WIRE, payload) == message_nbytes(TREE, 40_000)
        c.send(1, r, Kind.WIRE, payload)
        got = b.receive(r, [0, 2], time.monotonic() + 10)
        assert got.missing == [] and got.rejections == []
        np.testing.assert_array_equal(SPEC.unflatten(got.messages[2])["w"], TREE["w"])


def hello(sender, recipient, run="t"):
    return Header(
        FORMAT_VERSION,
        Kind.HELLO,
        0,
        sender,
        recipient,
        0,
        run_digest(run),
        b"\0" * 16,
        0,
        0,
        1,
        0,
        0,
        0,
    ).pack()


def hung_up(s: socket.socket) -> bool:
    s.settimeout(5)
    try:
        return s.recv(10) == b""
    except ConnectionResetError:
        return True


def test_garbage_closes_only_that_connection(nodes):
    a, b, _ = nodes
    with socket.create_connection(b.addresses[1]) as s:
        s.sendall(hello(0, 1) + b"\x00" * 200)  # plain TCP to a TLS listener
        assert hung_up(s)
    with a.client_tls.wrap_socket(
        socket.create_connection(b.addresses[1]), server_hostname="dfl-node-1"
    ) as s:
        s.sendall(hello(0, 1, run="other"))  # node 0's own certificate, another run's HELLO
        assert hung_up(s)
    with a.client_tls.wrap_socket(
        socket.create_connection(b.addresses[1]), server_hostname="dfl-node-1"
    ) as s:
        s.sendall(hello(0, 1) + b"\x00" * 200)  # a valid handshake, then garbage
        assert hung_up(s)
    payload = encode_payload(SPEC, TREE, chunk_bytes=40_000)
    a.send(1, 0, Kind.WIRE, payload)
    got = b.receive(0, [0], time.monotonic() + 10)
    assert list(got.messages) == [0]
    reasons = " ".join(r.reason for r in got.rejections)
    assert "TLS handshake failed" in reasons and "wrong run id" in reasons
    assert "bad magic" in reasons


def test_dead_peer_loses_messages_without_blocking():
    addresses = [("127.0.0.1", p) for p in free_ports(2)]
    a = TcpTransport(0, addresses, run_id="t", tls=credentials(2)[0], connect_timeout_s=2.0)
    a.expect(Kind.WIRE, SPEC)
    start = time.monotonic()
    a.send(1, 0, Kind.WIRE, encode_payload(SPEC, TREE))
    assert time.monotonic() - start < 1.0  # queued, not blocking on the 2 s connect
    got = a.receive(0, [1], time.monotonic() + 0.5)
    assert got.missing == [1]
    a.close()
    assert a.undelivered == 1


def test_addresses():
    assert parse_address("10.0.0.1:80") == ("10.0.0.1", 80)
    assert addresses_from(2, base_port=100) == [("127.0.0.1", 100), ("127.0.0.1", 101)]
    with pytest.raises(ValueError, match="lists 1 nodes"):
        addresses_from(2, addresses=["h:1"])
    with pytest.raises(ValueError, match="host:port"):
        parse_address("nope")


def pair(secrets, handshake_timeout_s=5.0):
    """Two insecure tcp endpoints with the given secrets (node 0 sends to node 1)."""
    addresses = [("127.0.0.1", p) for p in free_ports(2)]
    eps = [
        TcpTransport(
            i,
            addresses,
            run_id="t",
            connect_timeout_s=5,
            secret=s,
            handshake_timeout_s=handshake_timeout_s,
        )
        for i, s in enumerate(secrets)
    ]
    for e in eps:
        e.expect(Kind.WIRE, SPEC)
    return eps


@pytest.mark.parametrize(
    ("secrets", "delivered", "reason"),
    [
        ((b"s3cret", b"s3cret"), True, None),
        ((b"guess", b"s3cret"), False, "failed the authentication"),
        ((None, b"s3cret"), False, "failed the authentication"),
        ((b"s3cret", None), False, None),  # the sender waits for a challenge in vain
    ],
    ids=["same-secret", "wrong-secret", "sender-without", "receiver-without"],
)
def test_insecure_mode_shared_secret_gates_connections(secrets, delivered, reason):
    a, b = pair(secrets, handshake_timeout_s=1.0)
    try:
        a.send(1, 0, Kind.WIRE, encode_payload(SPEC, TREE))
        got = b.receive(0, [0], time.monotonic() + (10 if delivered else 3))
        assert (got.missing == []) is delivered
        if delivered:
            np.testing.assert_array_equal(SPEC.unflatten(got.messages[0])["w"], TREE["w"])
        if reason is not None:
            assert any(reason in r.reason for r in got.rejections)
    finally:
        a.close()
        b.close()


def test_a_replayed_handshake_is_refused():
    a, b = pair([b"s3cret", b"s3cret"])
    try:
        with socket.create_connection(b.addresses[1]) as s:
            s.sendall(hello(0, 1))
            s.settimeout(5)
            nonce = s.recv(NONCE_NBYTES, socket.MSG_WAITALL)
            # An answer to another nonce (e.g. recorded from an earlier connection).
            s.sendall(proof(b"s3cret", run_digest("t"), 0, 1, bytes(NONCE_NBYTES)))
            assert len(nonce) == NONCE_NBYTES and hung_up(s)
        got = b.receive(0, [0], time.monotonic() + 1)
        assert any("failed the authentication" in r.reason for r in got.rejections)
    finally:
        a.close()
        b.close()


def test_load_secret_reads_the_file_then_the_environment(tmp_path):
    path = tmp_path / "secret"
    path.write_text("  abc\n")
    assert load_secret(str(path), environ={}) == b"abc"
    assert load_secret("", environ={SECRET_ENV: "xyz"}) == b"xyz"
    assert load_secret("", environ={}) is None
    with pytest.raises(ValueError, match=r"secret_file=.*missing"):
        load_secret(str(tmp_path / "missing"), environ={})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        load_secret(str(tmp_path / "empty"), environ={})


def test_bad_gate_limits_name_the_value():
    addresses = [("127.0.0.1", p) for p in free_ports(2)]
    with pytest.raises(ValueError, match=r"transport\.max_pending must be >= 1, found 0"):
        TcpTransport(0, addresses, run_id="t", tls=credentials(2)[0], max_pending=0)
    with pytest.raises(ValueError, match="handshake_timeout_s must be > 0, found 0"):
        TcpTransport(0, addresses, run_id="t", tls=credentials(2)[0], handshake_timeout_s=0)
    with pytest.raises(ValueError, match="TLS credentials of node 1"):
        TcpTransport(0, addresses, run_id="t", tls=credentials(2)[1])
    # The port is free again after each refusal.
    TcpTransport(0, addresses, run_id="t", tls=credentials(2)[0]).close()
