"""One registry builds every transport: loopback, tcp, and any backend added as one entry."""

from __future__ import annotations

import enum

import pytest

from dfl.config.deploy_schema import FaultConfig, TransportConfig
from dfl.transport import factory
from dfl.transport.factory import Backend, NetworkOptions, backend, make_network, make_transport
from dfl.transport.loopback import LoopbackNetwork, LoopbackTransport
from dfl.transport.tcp import TcpTransport

OPTIONS = NetworkOptions(run_id="t", max_rounds_ahead=7, dropped_wait_s=0.5)


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


def test_tcp_in_process_picks_free_ports_and_draws_a_secret():
    config = TransportConfig(name="tcp", base_port=0, connect_timeout_s=1.0)
    network = make_network(config, 2, OPTIONS, in_process=True)
    a, b = network.endpoint(0), network.endpoint(1)
    try:
        assert isinstance(a, TcpTransport) and isinstance(b, TcpTransport)
        assert a.secret is not None and a.secret == b.secret
        assert a.port != b.port and a.run_id == "t" and a.faults is None  # no faults set
    finally:
        a.close()
        b.close()
    with pytest.raises(ValueError, match="base_port must be > 0"):
        make_transport(config, 0, 2, OPTIONS)  # a node process needs known addresses


def test_a_new_backend_is_one_entry(monkeypatch):
    monkeypatch.setattr(factory, "_BACKENDS", dict(factory._BACKENDS))

    def open_fake(config, num_nodes, options, in_process):
        del config, options, in_process
        return LoopbackNetwork(num_nodes, run_id="fake")

    factory.register(Backend("fake", open=open_fake, processes=True))
    endpoint = make_transport(TransportConfig(name="fake"), 1, 2, OPTIONS)
    assert endpoint.run_id == "fake" and backend("fake").processes
    endpoint.close()
