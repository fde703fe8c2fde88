"""One private Pilot network per run: the organiser creates it, the nodes join it.

The registry lists the members of a private network to its members (not those
of the backbone, network 0), so a run's nodes find each other by listing their
run's network. Creating one needs the registry's admin token and a registered
node id (the owner). The network's id and join token go into the run's bundle:
``DIR/networks/<run tag>.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
from pathlib import Path

from dfl.pilot import registry

NETWORKS_DIR = "networks"


def run_tag(run_id: str) -> str:
    """A short registry-safe name for ``run_id`` (lowercase hex; tags and network names)."""
    return hashlib.blake2b(run_id.encode(), digest_size=6).hexdigest()


@dataclasses.dataclass(frozen=True)
class RunNetwork:
    """A run's private network: its id, join token and name."""

    network_id: int
    token: str
    name: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self)))
        tmp.chmod(0o600)  # the join token admits a daemon to the run's network
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> RunNetwork:
        return cls(**json.loads(Path(path).read_text()))


def network_file(directory: str | Path, run_id: str) -> Path:
    """Where a cluster directory keeps the network of ``run_id``."""
    return Path(directory) / NETWORKS_DIR / f"{run_tag(run_id)}.json"


def create(
    registry_address: str, *, run_id: str, admin_token: str, owner_node_id: int
) -> RunNetwork:
    """Creates the private network of ``run_id`` (join rule: a fresh random token)."""
    name = f"dfl-{run_tag(run_id)}"
    token = secrets.token_urlsafe(24)
    network_id = registry.create_network(
        registry_address, name=name, token=token, admin_token=admin_token, node_id=owner_node_id
    )
    return RunNetwork(network_id, token, name)


def ensure(directory: str | Path, run_id: str) -> RunNetwork:
    """The network of ``run_id`` for the cluster in ``directory``: created (owner: daemon 0)
    and saved the first time, read back afterwards."""
    from dfl.pilot.cluster import Cluster

    path = network_file(directory, run_id)
    if path.exists():
        return RunNetwork.load(path)
    cluster = Cluster.load(directory)
    net = create(
        cluster.registry,
        run_id=run_id,
        admin_token=cluster.admin_token,
        owner_node_id=cluster.daemons[0].node_id,
    )
    net.save(path)
    return net
