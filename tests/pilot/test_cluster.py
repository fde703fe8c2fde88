"""``python -m dfl.pilot up/down`` on real daemons and a real rendezvous, and its refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dfl.pilot import netns
from dfl.pilot.cluster import find_rendezvous
from tests.pilot.isolated import check, run_isolated


def test_up_network_create_down_in_a_loopback_namespace(rendezvous):
    out = check(run_isolated("cluster_up_down", rendezvous=rendezvous, timeout=60))
    assert out.rstrip().endswith("ok")


def test_up_refuses_a_namespace_with_other_interfaces(tmp_path):
    dev = tmp_path / "dev"
    dev.write_text(
        "Inter-|   Receive\n face |bytes\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        "  eth0: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"
    )
    assert netns.interfaces(dev) == ["lo", "eth0"]
    with pytest.raises(RuntimeError, match=r"\['eth0'\].*unshare --net"):
        netns.require_loopback_only(dev)
    dev.write_text("Inter-|\n face |\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
    netns.require_loopback_only(dev)


def test_up_command_refuses_outside_a_namespace(tmp_path):
    if netns.interfaces() == ["lo"]:
        pytest.skip("this process already runs in a loopback-only namespace")
    out = subprocess.run(
        [sys.executable, "-m", "dfl.pilot", "up", "--nodes", "1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert "refusing to start Pilot daemons" in out.stderr and "unshare --net" in out.stderr
    assert not (tmp_path / "cluster.json").exists()


def test_rendezvous_is_found_by_config_then_env_then_path(tmp_path, monkeypatch):
    exe = tmp_path / "rv"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("DFL_PILOT_RENDEZVOUS", "/nonexistent/rendezvous")
    assert find_rendezvous(str(exe)) == str(exe)
    with pytest.raises(FileNotFoundError, match="not executable"):
        find_rendezvous()
    monkeypatch.delenv("DFL_PILOT_RENDEZVOUS")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="go install"):
        find_rendezvous()
    (tmp_path / "rendezvous").write_text("#!/bin/sh\n")
    (tmp_path / "rendezvous").chmod(0o755)
    assert find_rendezvous() == str(tmp_path / "rendezvous")
