"""Transports from the config: one registry of backends, one place that builds them.

A backend is one :class:`Backend` entry: how to open the network of a run's
nodes (:meth:`Network.endpoint` gives each node its transport) and whether
``dfl.launch`` runs its nodes as separate processes. Every caller that builds
transports goes through :func:`make_network` (all nodes of a run, e.g. in one
process) or :func:`make_transport` (one node process); adding a backend (e.g.
``pilot``) is one :func:`register` call::

    register(Backend("pilot", open=PilotNetwork, processes=True))

Backends get the ``transport`` config group and :class:`NetworkOptions` (what the
caller derives from the rest of the config: :func:`dfl.node.setup.transport_options`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Protocol

from dfl.config.deploy_schema import TransportConfig
from dfl.transport.auth import SECRET_ENV, load_secret, new_secret
from dfl.transport.base import FramedTransport
from dfl.transport.faults import FaultInjector
from dfl.transport.loopback import LoopbackNetwork
from dfl.transport.tcp import TcpTransport, addresses_from, free_ports
from dfl.transport.tls import TlsCredentials

log = logging.getLogger("dfl.transport")


@dataclasses.dataclass(frozen=True)
class NetworkOptions:
    """What every endpoint of a run shares beyond the ``transport`` config group.

    Attributes:
      run_id: the run's id (every frame carries its digest).
      max_rounds_ahead: the inbox's window of future rounds.
      dropped_wait_s: how long a message the run's own fault injector loses is
        awaited (:class:`~dfl.transport.base.FramedTransport`); ``None``: like any other.
      neighbours: ``neighbours(node)``: the nodes ``node`` sends to or hears from
        over one schedule period, for backends that set up trust per peer
        (``pilot``); ``None``: every node of the run.
      workdir: the run directory, where an organising backend keeps what it makes
        (``pilot``: the run CA and key bundles); ``None``: a temporary directory.
    """

    run_id: str
    max_rounds_ahead: int = 1024
    dropped_wait_s: float | None = None
    neighbours: Callable[[int], Collection[int]] | None = None
    workdir: str | None = None


class Network(Protocol):
    """The endpoints of one run's nodes on one backend."""

    @property
    def injector(self) -> FaultInjector | None:
        """The fault injector of the run's messages (``None``: none)."""
        ...

    def endpoint(self, node: int, /) -> FramedTransport:
        """Node ``node``'s transport (a new one after a crash)."""
        ...


Opener = Callable[[TransportConfig, int, NetworkOptions, bool], Network]
"""``open(config, num_nodes, options, in_process) -> Network``."""


@dataclasses.dataclass(frozen=True)
class Backend:
    """One transport backend.

    Attributes:
      name: its ``transport.name``.
      open: ``open(config, num_nodes, options, in_process)``: the run's network;
        ``in_process``: every node lives in this process (else only the node
        that asks for its endpoint). Raises ``ValueError`` for a config it cannot serve.
      processes: ``dfl.launch`` runs one ``python -m dfl.node`` process per node
        (else all nodes in its own process).
    """

    name: str
    open: Opener
    processes: bool


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Adds (or replaces) the backend of ``backend.name``."""
    _BACKENDS[backend.name] = backend


def names() -> list[str]:
    """The registered backends' names."""
    return sorted(_BACKENDS)


def backend(name: Any) -> Backend:
    """The backend of ``transport.name`` (a string or a string-valued Enum).

    Raises:
      ValueError: naming the unknown value and the known ones.
    """
    key = str(getattr(name, "value", name))
    found = _BACKENDS.get(key)
    if found is None:
        raise ValueError(f"transport.name={key!r}; expected one of {names()}")
    return found


def make_network(
    config: TransportConfig, num_nodes: int, options: NetworkOptions, *, in_process: bool
) -> Network:
    """The network of a run's ``num_nodes`` nodes on the backend ``config.name``."""
    return backend(config.name).open(config, num_nodes, options, in_process)


def make_transport(
    config: TransportConfig, node: int, num_nodes: int, options: NetworkOptions
) -> FramedTransport:
    """The transport of one node in its own process (``python -m dfl.node``)."""
    return make_network(config, num_nodes, options, in_process=False).endpoint(node)


# -- the built-in backends ------------------------------------------------------------


def open_loopback(
    config: TransportConfig, num_nodes: int, options: NetworkOptions, in_process: bool
) -> LoopbackNetwork:
    """Every node in this process, frames over queues."""
    if not in_process:
        raise ValueError(
            "transport=loopback runs every node in one process: use "
            "`python -m dfl.launch transport=loopback`, or transport=tcp for a node process"
        )
    return LoopbackNetwork(
        num_nodes,
        run_id=options.run_id,
        faults=config.faults,
        max_rounds_ahead=options.max_rounds_ahead,
        max_message_bytes=config.max_message_bytes,
        dropped_wait_s=options.dropped_wait_s,
    )


def security(config: TransportConfig) -> str | None:
    """How ``config``'s tcp connections are secured, for the run's metadata: ``"tls"``
    (mutual TLS 1.3 with run-CA certificates) or ``"insecure"``; ``None`` off tcp."""
    if str(getattr(config.name, "value", config.name)) != "tcp":
        return None
    return "insecure" if config.insecure else "tls"


def bundle_path(config: TransportConfig, node: int) -> Path:
    """Node ``node``'s key bundle: ``transport.bundle``, else ``keys_dir/node-<i>.json``.

    Raises:
      ValueError: if neither is set.
    """
    if config.bundle:
        return Path(config.bundle).expanduser()
    if config.keys_dir:
        return Path(config.keys_dir).expanduser() / f"node-{node}.json"
    raise ValueError(
        f"transport=tcp: node {node} needs its key bundle: transport.bundle=PATH (its "
        "node-<i>.json from `python -m dfl.keys init`) or transport.keys_dir=DIR; or "
        "transport.insecure=true for unauthenticated plain TCP"
    )


def load_credentials(config: TransportConfig, node: int, run_id: str) -> TlsCredentials:
    """Node ``node``'s TLS credentials, read from its own bundle only.

    Raises:
      ValueError: no bundle configured; a bundle that cannot be read, is readable by
        others than its owner, or is another node's or run's.
    """
    from dfl.keys.ca import NodeIdentity

    path = bundle_path(config, node)
    try:
        identity = NodeIdentity.load(path)
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"node {node}'s key bundle {path} cannot be used: {e}") from None
    if identity.node_id != node:
        raise ValueError(f"transport.bundle={path} is node {identity.node_id}'s, not node {node}'s")
    if identity.run_id != run_id:
        raise ValueError(
            f"transport.bundle={path} belongs to run {identity.run_id!r}, not to this run "
            f"{run_id!r} (set transport.run_id={identity.run_id}, or make the keys with "
            f"`python -m dfl.keys init --run-id {run_id}`)"
        )
    return TlsCredentials.from_identity(identity)


def run_credentials(num_nodes: int, run_id: str) -> list[TlsCredentials]:
    """Every node's TLS credentials from a fresh run CA held in memory (nothing on disk)."""
    from dfl.keys.ca import RunCA

    ca = RunCA.generate(run_id)
    return [TlsCredentials.from_identity(ca.issue(i)) for i in range(num_nodes)]


def organise_keys(num_nodes: int, run_id: str, workdir: str | Path | None) -> Path:
    """A run CA and bundles for ``run_id``: ``workdir/keys`` (reused if it holds this run's
    CA, else ``workdir/keys-<run id>``), or a temporary directory without ``workdir``."""
    from dfl.keys.ca import CA_FILE, RunCA, init

    if workdir is None:
        base = Path(tempfile.mkdtemp(prefix="dfl-keys-"))
    else:
        base = Path(workdir) / "keys"
        if (base / CA_FILE).exists() and RunCA.load(base).run_id != run_id:
            base = Path(workdir) / f"keys-{run_id}"
    if not (base / CA_FILE).exists():
        init(num_nodes, base, run_id)
    return base


class TcpNetwork:
    """Tcp endpoints of a run's nodes.

    By default every connection is mutual TLS 1.3 with per-node certificates from
    the run CA: a node process reads only its own bundle (``transport.bundle``,
    else ``transport.keys_dir/node-<i>.json``); in one process (``in_process``)
    without either, a run CA made now in memory issues every node's credentials.
    With ``transport.insecure=true`` connections are plain TCP, gated at most by a
    shared secret (drawn now in one process unless one is configured); every
    endpoint then warns. In one process nodes listen on free
    ports unless ``transport.addresses`` or ``transport.base_port`` name theirs.

    Raises:
      ValueError: ``transport.secret_file`` without ``transport.insecure=true``.
    """

    def __init__(
        self, config: TransportConfig, num_nodes: int, options: NetworkOptions, in_process: bool
    ):
        self.config = config
        self.options = options
        self.addresses = self._addresses(config, num_nodes, in_process)
        self.secret: bytes | None = None
        self._credentials: list[TlsCredentials] = []
        if config.insecure:
            self.secret = load_secret(config.secret_file)
            if self.secret is None and in_process:
                self.secret = new_secret().encode()
        elif config.secret_file:
            raise ValueError(
                f"transport.secret_file={config.secret_file!r} is for transport.insecure=true "
                "only; tcp uses TLS with the run's key bundles by default"
            )
        elif in_process and not config.keys_dir and not config.bundle:
            self._credentials = run_credentials(num_nodes, options.run_id)
        self._injector = FaultInjector(config.faults, num_nodes)

    @staticmethod
    def _addresses(
        config: TransportConfig, num_nodes: int, in_process: bool
    ) -> Sequence[tuple[str, int]]:
        if in_process and not config.addresses and config.base_port <= 0:
            return [(config.host, p) for p in free_ports(num_nodes, config.host)]
        return addresses_from(
            num_nodes, addresses=config.addresses, host=config.host, base_port=config.base_port
        )

    @property
    def injector(self) -> FaultInjector:
        """The fault injector every endpoint applies to its sent messages."""
        return self._injector

    def endpoint(self, node: int) -> TcpTransport:
        """Node ``node``'s endpoint (it starts listening now)."""
        t = self.config
        tls = None
        if t.insecure:
            log.warning(
                "node %d: INSECURE tcp (transport.insecure=true): connections are not "
                "encrypted and not bound to node identities (%s); never use this outside "
                "a trusted test network",
                node,
                "a shared secret proves membership only: any holder can speak as any node"
                if self.secret is not None
                else f"no shared secret either: set transport.secret_file or ${SECRET_ENV}",
            )
        elif self._credentials:
            tls = self._credentials[node]
        else:
            tls = load_credentials(t, node, self.options.run_id)
        return TcpTransport(
            node,
            self.addresses,
            run_id=self.options.run_id,
            tls=tls,
            connect_timeout_s=t.connect_timeout_s,
            chunk_bytes=t.chunk_bytes,
            max_rounds_ahead=self.options.max_rounds_ahead,
            max_message_bytes=t.max_message_bytes,
            faults=self._injector,
            dropped_wait_s=self.options.dropped_wait_s,
            secret=self.secret,
            max_pending=t.max_pending,
            handshake_timeout_s=t.handshake_timeout_s,
        )


def open_pilot(
    config: TransportConfig, num_nodes: int, options: NetworkOptions, in_process: bool
) -> Network:
    """Each node's own Pilot daemon (:mod:`dfl.pilot`; needs the ``pilot`` extra)."""
    from dfl.pilot.endpoint import PilotNetwork

    return PilotNetwork(
        config,
        num_nodes,
        options,
        in_process,
        neighbours=options.neighbours,
        workdir=options.workdir,
    )


register(Backend("loopback", open=open_loopback, processes=False))
register(Backend("tcp", open=TcpNetwork, processes=True))
register(Backend("pilot", open=open_pilot, processes=True))
