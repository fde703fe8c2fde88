"""Soak (issue 13): 4 tcp nodes × 200 rounds while one authenticated member floods
junk at its full rate and an outsider opens connections in a bounded loop.

Node 3 (a member: it holds its own run-CA certificate and key) opens a second connection
to node 0, authenticated as itself, and floods it with frames of a round past
every window, with now and then a garbage header (node 0 drops that connection;
node 3 reconnects). An outsider opens 300 connections to node 1, each sending
garbage or nothing. Bounded: RSS grows < 50 MB, the logs < 5 MB; no honest
message goes missing and every node ends with the attack-free run's parameters.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import numpy as np
import pytest

from dfl.experiment import build_experiment
from dfl.node import build_program, run_in_process
from dfl.node.setup import run_id
from dfl.transport import Kind, encode_payload, run_digest
from dfl.transport.factory import TcpNetwork
from dfl.transport.tls import TlsCredentials, client_context
from dfl.transport.wire import FORMAT_VERSION, Header, frame_bytes
from tests.node.common import assert_equal, compose_config, node_params
from tests.transport.forge import reheader

pytestmark = pytest.mark.slow

ROUNDS = 200


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class LogBytes(logging.Handler):
    """Counts the bytes the ``dfl`` loggers would write."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.nbytes = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.nbytes += len(self.format(record)) + 1


def authenticated(address, keys: TlsCredentials, run: bytes, sender: int, recipient: int):
    """A mutual-TLS connection to ``recipient`` on ``sender``'s own certificate, HELLO sent."""
    raw = socket.create_connection(address, timeout=10)
    s = client_context(keys).wrap_socket(raw, server_hostname=f"dfl-node-{recipient}")
    hello = Header(
        FORMAT_VERSION, Kind.HELLO, 0, sender, recipient, 0, run, b"\0" * 16, 0, 0, 1, 0, 0, 0
    )
    s.sendall(hello.pack())
    return s


def test_flood_and_connection_loop_change_nothing(monkeypatch):
    cfg, opt = compose_config(
        f"rounds={ROUNDS}", "eval_every=50", "transport.name=tcp", "transport.base_port=0"
    )
    program = build_program(build_experiment(cfg, opt))
    free = run_in_process(cfg, program=program)

    networks: list[TcpNetwork] = []
    original = TcpNetwork.endpoint

    def endpoint(self, node):
        if self not in networks:
            networks.append(self)
        return original(self, node)

    monkeypatch.setattr(TcpNetwork, "endpoint", endpoint)
    run = run_digest(run_id(cfg))
    spec = program.spec
    zeros = [np.zeros(s, d) for s, d in zip(spec.shapes, spec.dtypes, strict=True)]
    genuine = frame_bytes(
        encode_payload(spec, spec.unflatten(zeros)).frames(
            run=run, sender=3, recipient=0, round=0, kind=Kind.WIRE
        )[0]
    )
    junk = reheader(genuine, round=10**9)  # past every window: it settles nothing
    stop = threading.Event()
    sent = {"frames": 0, "connections": 0}

    def flood() -> None:
        while not networks and not stop.is_set():
            time.sleep(0.01)
        net = networks[0]
        keys = net._credentials[3]  # node 3's own credentials (the run's in-memory CA)
        while not stop.is_set():
            try:
                s = authenticated(net.addresses[0], keys, run, 3, 0)
                for i in range(20_000):
                    if stop.is_set():
                        break
                    s.sendall(junk if i < 19_999 else b"\xff" * 96)  # then a garbage header
                    sent["frames"] += 1
                s.close()
            except OSError:
                time.sleep(0.05)

    def outsider() -> None:
        while not networks and not stop.is_set():
            time.sleep(0.01)
        for i in range(300):
            if stop.is_set():
                break
            try:
                with socket.create_connection(networks[0].addresses[1], timeout=2) as s:
                    if i % 2:
                        s.sendall(os.urandom(96))
                sent["connections"] += 1
            except OSError:
                pass
            time.sleep(0.02)

    counter = LogBytes()
    logging.getLogger("dfl").addHandler(counter)
    before = rss_bytes()
    threads = [threading.Thread(target=f, daemon=True) for f in (flood, outsider)]
    for t in threads:
        t.start()
    try:
        attacked = run_in_process(cfg, program=program)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        logging.getLogger("dfl").removeHandler(counter)
    grown = rss_bytes() - before
    print(f"soak: {sent}, RSS +{grown / 2**20:.1f} MiB, logs {counter.nbytes} bytes")
    assert sent["frames"] > 10_000 and sent["connections"] > 50, sent
    assert grown < 50 << 20, grown
    assert counter.nbytes < 5 << 20, counter.nbytes
    last = attacked.records[-1]
    assert last["round"] == ROUNDS and last["messages_missing"] == 0, last
    assert last["bytes_rejected"] > 0
    for i in range(4):
        assert_equal(node_params(attacked, i), node_params(free, i))
