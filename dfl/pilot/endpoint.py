"""A node's Pilot transport from ``cfg.transport`` (``transport=pilot``).

Where each piece comes from: the daemon's socket and inbox, and the registry,
from ``transport.pilot_socket`` / ``pilot_inbox`` / ``registry`` or else from
``transport.cluster_dir`` (``python -m dfl.pilot up``); the run's network from
``transport.network_file`` or the cluster directory; the node's key bundle from
``transport.keys_dir``. The config names the run, never the peers: they are
found in the run's network.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from dfl.keys.ca import NodeIdentity, node_file
from dfl.pilot.network import RunNetwork, network_file
from dfl.topology.schedule import neighbours_of
from dfl.transport.faults import FaultInjector

__all__ = ["PilotNetwork", "from_config", "neighbours_of", "resolve"]


def resolve(t: Any, node: int, run_id: str) -> tuple[str, Path, str, RunNetwork]:
    """``(socket, inbox, registry, network)`` of node ``node`` from ``cfg.transport``.

    Raises:
      ValueError: if neither explicit fields nor ``cluster_dir`` say where the daemon is.
    """
    socket_path, inbox, registry = t.pilot_socket, t.pilot_inbox, t.registry
    if t.cluster_dir:
        from dfl.pilot.cluster import Cluster

        c = Cluster.load(t.cluster_dir)
        if node >= len(c.daemons):
            raise ValueError(
                f"transport.cluster_dir={t.cluster_dir} has {len(c.daemons)} daemons; "
                f"node {node} needs one of its own"
            )
        d = c.daemons[node]
        socket_path = socket_path or d.socket
        inbox = inbox or str(d.inbox)
        registry = registry or c.registry
    if not (socket_path and inbox and registry):
        raise ValueError(
            "transport=pilot needs transport.cluster_dir, or transport.pilot_socket, "
            "transport.pilot_inbox and transport.registry"
        )
    path = Path(t.network_file) if t.network_file else None
    if path is None and t.cluster_dir:
        path = network_file(t.cluster_dir, run_id)
    if path is None or not path.exists():
        raise FileNotFoundError(
            f"no network for run {run_id!r} ({path}): the organiser creates it with "
            "`python -m dfl.pilot network create --dir D --run RUN_ID` (set transport.run_id)"
        )
    return socket_path, Path(inbox), registry, RunNetwork.load(path)


def from_config(
    t: Any,
    node: int,
    num_nodes: int,
    *,
    run_id: str,
    neighbours: Collection[int],
    max_rounds_ahead: int,
    faults: FaultInjector | None = None,
    keys_dir: str | Path | None = None,
) -> Any:
    """Node ``node``'s Pilot transport (``t`` is ``cfg.transport``)."""
    from dfl.transport.pilot import PilotTransport

    keys = keys_dir or t.keys_dir
    if not keys:
        raise ValueError("transport=pilot needs transport.keys_dir (python -m dfl.keys init)")
    socket_path, inbox, registry, network = resolve(t, node, run_id)
    return PilotTransport(
        node,
        num_nodes,
        run_id=run_id,
        socket_path=socket_path,
        inbox_dir=inbox,
        registry=registry,
        network=network,
        identity=NodeIdentity.load(node_file(keys, node)),
        neighbours=neighbours,
        chunk_bytes=t.chunk_bytes,
        revoke_after_rejected=t.revoke_after_rejected,
        send_timeout_s=t.send_timeout_s,
        max_rounds_ahead=max_rounds_ahead,
        max_message_bytes=t.max_message_bytes,
        faults=faults,
    )


class PilotNetwork:
    """The Pilot endpoints of a run's nodes (the shape of a transport backend's network).

    In one process (``in_process``: ``run_in_process``, tests) this is also the
    run's organiser: it creates the run's network in ``transport.cluster_dir`` and,
    without ``transport.keys_dir``, the run CA and key bundles (in ``workdir/keys``,
    else a temporary directory). A node process uses what the organiser made.

    Args:
      config: ``cfg.transport``.
      num_nodes: nodes of the run.
      options: has ``run_id`` and ``max_rounds_ahead``.
      in_process: every node lives in this process.
      neighbours: ``neighbours(node)``: whom ``node`` trusts and hears
        (:func:`neighbours_of` the schedule); ``None``: every node of the run.
      workdir: where the organiser keeps generated keys.
    """

    def __init__(
        self,
        config: Any,
        num_nodes: int,
        options: Any,
        in_process: bool,
        *,
        neighbours: Any = None,
        workdir: str | Path | None = None,
    ):
        self.config = config
        self.num_nodes = num_nodes
        self.run_id = str(options.run_id)
        self.max_rounds_ahead = int(options.max_rounds_ahead)
        self.neighbours = neighbours
        self.keys_dir: str | Path = config.keys_dir
        self._injector = FaultInjector(config.faults, num_nodes)
        if in_process:
            self._organise(workdir)

    def _organise(self, workdir: str | Path | None) -> None:
        import tempfile

        from dfl.keys.ca import CA_FILE, RunCA, init
        from dfl.pilot import network

        if self.config.cluster_dir and not self.config.network_file:
            network.ensure(self.config.cluster_dir, self.run_id)
        if not self.keys_dir:
            base = Path(workdir) / "keys" if workdir is not None else None
            if base is None:
                base = Path(tempfile.mkdtemp(prefix="dfl-keys-"))
            if not (base / CA_FILE).exists():
                init(self.num_nodes, base, self.run_id)
            self.keys_dir = base
        ca = RunCA.load(Path(self.keys_dir)) if (Path(self.keys_dir) / CA_FILE).exists() else None
        if ca is not None and ca.run_id != self.run_id:
            raise ValueError(
                f"transport.keys_dir={self.keys_dir} holds the CA of run {ca.run_id!r}, "
                f"not of this run {self.run_id!r}"
            )

    @property
    def injector(self) -> FaultInjector:
        """The fault injector every endpoint applies to its sent messages."""
        return self._injector

    def endpoint(self, node: int) -> Any:
        """Node ``node``'s transport (joins the run's network now)."""
        peers = range(self.num_nodes) if self.neighbours is None else self.neighbours(node)
        return from_config(
            self.config,
            node,
            self.num_nodes,
            run_id=self.run_id,
            neighbours=peers,
            max_rounds_ahead=self.max_rounds_ahead,
            faults=self._injector,
            keys_dir=self.keys_dir,
        )
