"""``transport=pilot`` on real daemons and a real rendezvous (each test in its own namespace)."""

from __future__ import annotations

import json

import pytest

from tests.pilot.isolated import check, run_isolated


def test_ring_of_4_over_pilot_equals_loopback_bit_for_bit(rendezvous):
    """D-SGD, and dsgd_ef with top_k: parameters, records and the simulation's bytes."""
    out = check(
        run_isolated(
            "ring_equivalence",
            "",
            "algorithm=dsgd_ef compression=top_k",
            rendezvous=rendezvous,
            timeout=240,
        )
    )
    cases = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [c["case"] for c in cases] == [[], ["algorithm=dsgd_ef", "compression=top_k"]]
    # top_k sends fewer bytes than the dense model (same rounds, same ring).
    assert 0 < cases[1]["bytes"] < cases[0]["bytes"]


def test_membership_outsiders_forgers_and_revocation(rendezvous):
    out = check(run_isolated("membership", rendezvous=rendezvous, timeout=120))
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    # Pilot itself still delivered (and acked) the revoked peer's frames: dfl refused them.
    assert summary["acked_after_revocation"] is True


@pytest.mark.slow
def test_launch_over_a_pilot_cluster_equals_the_simulation(rendezvous):
    """The README's commands: ``dfl.pilot up``, ``dfl.launch ... transport=pilot``, ``down``."""
    out = check(run_isolated("launch", rendezvous=rendezvous, timeout=600))
    assert out.rstrip().endswith("ok")


@pytest.mark.slow
def test_launch_without_a_cluster_runs_its_own(rendezvous):
    out = check(run_isolated("launch", "own", rendezvous=rendezvous, timeout=600))
    assert out.rstrip().endswith("ok")


def _crossing(rendezvous, mb: int) -> dict:
    out = check(run_isolated("large_model", str(mb), rendezvous=rendezvous, timeout=300))
    return json.loads(next(line for line in out.splitlines() if line.startswith("{")))


def test_a_chunked_20_mb_model_crosses_intact(rendezvous):
    summary = _crossing(rendezvous, 20)
    assert summary["frames"] == 3  # 20,000,000 bytes + 56 in chunks of 8 MiB


@pytest.mark.slow
def test_a_100_mb_model_crosses_intact(rendezvous):
    summary = _crossing(rendezvous, 100)
    assert summary["frames"] == 12


@pytest.mark.slow
def test_a_daemon_killed_mid_run_rejoins_after_its_restart(rendezvous):
    out = check(run_isolated("daemon_killed", rendezvous=rendezvous, timeout=300))
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert summary["missing"][-1] > 0  # the downtime was felt, and only the downtime


@pytest.mark.slow
def test_the_readme_multi_host_commands_on_loopback(rendezvous):
    """``dfl.keys init``, ``dfl.pilot network create --registry``, and ``dfl.node`` with
    explicit daemon paths (no cluster directory): the simulation's parameters."""
    out = check(run_isolated("multihost_commands", rendezvous=rendezvous, timeout=600))
    assert out.rstrip().endswith("ok")


def test_blocking_a_peer_revokes_its_pilot_trust_only_with_revoke(rendezvous):
    """``block(1, revoke=True)``: trust withdrawn, 1's frames refused; ``block(2)``: refused
    by dfl, trust kept; node 3's messages still arrive (``scenarios/block_revoke.py``)."""
    out = check(run_isolated("block_revoke", rendezvous=rendezvous, timeout=120))
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    # The revoked peer's one frame: refused by dfl if Pilot still delivered it, else lost
    # to a dial timeout at the sender; never both, never neither.
    assert summary["node1_undelivered"] + summary["node1_frames_refused_by_dfl"] == 1
    assert summary["node2_reason"] == "node 2 is not an in-neighbour of node 0 at round 1"
