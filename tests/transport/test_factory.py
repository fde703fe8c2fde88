"""One registry builds every transport: loopback, tcp, and any backend added as one entry."""

from __future__ import annotations

import dataclasses
import enum
import logging
import time

import jax.numpy as jnp
import pytest

from dfl.config.deploy_schema import FaultConfig, TransportConfig
from dfl.transport import Kind, WireSpec, encode_payload, factory
from dfl.transport.factory import (
    Backend,
    NetworkOptions,
    backend,
    make_network,
    make_transport,
    organise_keys,
    security,
)
from dfl.transport.loopback import LoopbackNetwork, LoopbackTransport
from dfl.transport.tcp import TcpTransport

OPTIONS = NetworkOptions(run_id="t", max_rounds_ahead=7, dropped_wait_s=0.5)
TREE = {"w": jnp.arange(12.0)}
SPEC = WireSpec.from_tree(TREE)


def test_names_and_errors():
    assert {"loopback", "tcp"} <= set(factory.names())
    assert backend("tcp").processes and not backend("loopback").processes

    class Name(enum.Enum):
        TCP = "tcp"

    assert backend(Name.TCP) is backend("tcp")
    with pytest.raises(ValueError, match=r"transport.name='udp'; expected one of \['loopback'"):
        backend("udp")


def test_loopback_is_in_process_only_and_carries_the_options():
    config = TransportConfig(name="loopback", faults=FaultConfig(drop=0.5))
    with pytest.raises(ValueError, match="runs every node in one process"):
        make_transport(config, 0, 3, OPTIONS)
    network = make_network(config, 3, OPTIONS, in_process=True)
    assert isinstance(network, LoopbackNetwork) and network.injector is not None
    endpoint = network.endpoint(1)
    assert isinstance(endpoint, LoopbackTransport)
    assert endpoint.inbox.max_rounds_ahead == 7 and endpoint.dropped_wait_s == 0.5
    endpoint.close()


def test_tcp_in_process_picks_free_ports_and_makes_the_run_keys(tmp_path):
    config = TransportConfig(name="tcp", base_port=0, connect_timeout_s=1.0)
    network = make_network(config, 2, OPTIONS, in_process=True)
    a, b = network.endpoint(0), network.endpoint(1)
    try:
        assert isinstance(a, TcpTransport) and isinstance(b, TcpTransport)
        assert a.secure and a.secret is None and a.tls is not None and b.tls is not None
        assert (a.tls.node_id, b.tls.node_id) == (0, 1)
        assert a.tls.ca_certificate == b.tls.ca_certificate  # one run CA
        assert a.port != b.port and a.run_id == "t" and a.faults is None  # no faults set
        b.expect(Kind.WIRE, SPEC)
        a.send(1, 0, Kind.WIRE, encode_payload(SPEC, TREE))
        assert list(b.receive(0, [0], time.monotonic() + 10).messages) == [0]
    finally:
        a.close()
        b.close()
    with pytest.raises(ValueError, match="base_port must be > 0"):
        make_transport(config, 0, 2, OPTIONS)  # a node process needs known addresses
    node = dataclasses.replace(config, base_port=29500)
    with pytest.raises(ValueError, match=r"needs its key bundle: transport\.bundle=PATH"):
        make_transport(node, 0, 2, OPTIONS)  # ... and its own key bundle
    keys = str(organise_keys(2, "t", tmp_path))  # what dfl.launch makes for its nodes
    assert keys == str(tmp_path / "keys") and organise_keys(2, "t", tmp_path) == tmp_path / "keys"
    assert (tmp_path / "keys" / "node-1.json").stat().st_mode & 0o777 == 0o600
    assert organise_keys(2, "u", tmp_path) == tmp_path / "keys-u"  # never another run's CA
    with pytest.raises(ValueError, match="is node 1's, not node 0's"):
        make_transport(dataclasses.replace(node, bundle=keys + "/node-1.json"), 0, 2, OPTIONS)
    other = dataclasses.replace(OPTIONS, run_id="other")
    with pytest.raises(ValueError, match="belongs to run 't', not to this run 'other'"):
        make_transport(dataclasses.replace(node, keys_dir=keys), 0, 2, other)
    with pytest.raises(ValueError, match=r"secret_file=.* is for transport\.insecure=true only"):
        make_network(dataclasses.replace(config, secret_file="s"), 2, OPTIONS, in_process=True)


def test_tcp_insecure_mode_is_explicit_warned_and_draws_a_secret(caplog):
    config = TransportConfig(name="tcp", base_port=0, connect_timeout_s=1.0, insecure=True)
    assert security(config) == "insecure" and security(TransportConfig(name="tcp")) == "tls"
    network = make_network(config, 2, OPTIONS, in_process=True)
    with caplog.at_level(logging.WARNING, logger="dfl.transport"):
        a, b = network.endpoint(0), network.endpoint(1)
    try:
        assert isinstance(a, TcpTransport) and isinstance(b, TcpTransport)
        assert a.secret is not None and a.secret == b.secret and not a.secure
        assert sum("INSECURE tcp" in r.getMessage() for r in caplog.records) == 2
    finally:
        a.close()
        b.close()


def test_a_new_backend_is_one_entry(monkeypatch):
    monkeypatch.setattr(factory, "_BACKENDS", dict(factory._BACKENDS))

    def open_fake(config, num_nodes, options, in_process):
        del config, options, in_process
        return LoopbackNetwork(num_nodes, run_id="fake")

    factory.register(Backend("fake", open=open_fake, processes=True))
    endpoint = make_transport(TransportConfig(name="fake"), 1, 2, OPTIONS)
    assert endpoint.run_id == "fake" and backend("fake").processes
    endpoint.close()
