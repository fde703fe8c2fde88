"""Keys for tcp runs: ``dfl.launch`` makes the run CA and private bundles in the run
directory and gives each node the path of its own bundle only; insecure mode is explicit."""

from __future__ import annotations

import dataclasses

from dfl.config.deploy_schema import TransportConfig
from dfl.config.schema import Config
from dfl.config.topology_schema import TopologyConfig
from dfl.keys import NodeIdentity, RunCA
from dfl.launch import launch_env, node_children
from dfl.transport.auth import SECRET_ENV


def config(**transport) -> Config:
    return Config(topology=TopologyConfig(n=3), transport=TransportConfig(name="tcp", **transport))


def bundles(children) -> list[list[str]]:
    return [[a for a in c.args if a.startswith("transport.bundle=")] for c in children]


def test_the_launcher_makes_private_keys_and_gives_each_node_its_own_bundle(tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    cfg = config()
    children = node_children(cfg, ["transport.bundle=/elsewhere.json"], tmp_path, [], "run-1")
    keys = tmp_path / "keys"
    assert RunCA.load(keys).run_id == "run-1" and (keys / "ca.pem").exists()
    assert (keys / "ca.key").stat().st_mode & 0o777 == 0o600
    assert bundles(children) == [[f"transport.bundle={keys}/node-{i}.json"] for i in range(3)]
    for i in range(3):
        path = keys / f"node-{i}.json"
        assert path.stat().st_mode & 0o777 == 0o600
        ident = NodeIdentity.load(path)
        assert ident.node_id == i and ident.tls_certificate and ident.ca_certificate
    assert SECRET_ENV not in launch_env(cfg)  # TLS needs no shared secret
    before = NodeIdentity.load(keys / "node-0.json").key_pem()
    again = node_children(cfg, [], tmp_path, [], "run-1")  # a resumed launch: the same keys
    assert NodeIdentity.load(keys / "node-0.json").key_pem() == before
    assert bundles(again) == bundles(children)
    given = dataclasses.replace(cfg, transport=dataclasses.replace(cfg.transport, keys_dir="K"))
    assert bundles(node_children(given, [], tmp_path, [], "run-1")) == [
        [f"transport.bundle=K/node-{i}.json"] for i in range(3)
    ]


def test_insecure_mode_is_explicit_and_gets_a_drawn_secret(tmp_path, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    cfg = config(insecure=True)
    children = node_children(cfg, [], tmp_path, [], "run-1")
    assert bundles(children) == [[], [], []] and not (tmp_path / "keys").exists()
    assert len(launch_env(cfg)[SECRET_ENV]) == 64
