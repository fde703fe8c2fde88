"""Pure pieces of the Pilot backend (no daemon): neighbours, addresses, the bound send,
and ending a namespace's init process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dfl.pilot.endpoint import neighbours_of
from dfl.pilot.membership import node_of_address, node_tag
from dfl.topology import build_schedule
from tests.node.common import compose_config


def test_ring_neighbours_exclude_the_opposite_node():
    cfg, _ = compose_config()  # a ring of 4
    schedule = build_schedule(cfg.topology, cfg.mixing, seed=cfg.seed)
    assert [sorted(neighbours_of(schedule, i)) for i in range(4)] == [
        [1, 3],
        [0, 2],
        [1, 3],
        [0, 2],
    ]


def test_time_varying_neighbours_are_the_union_over_one_period():
    cfg, _ = compose_config("topology=one_peer_exponential", "topology.n=8", "mixing=uniform")
    schedule = build_schedule(cfg.topology, cfg.mixing, seed=cfg.seed)
    assert schedule.period == 3  # peers 2^0, 2^1, 2^2 ahead, one per round
    # node 0 sends to 1, 2, 4 and hears from 7, 6, 4 over the period
    assert sorted(neighbours_of(schedule, 0)) == [1, 2, 4, 6, 7]


def test_pilot_addresses_name_their_node():
    assert node_of_address("0:0000.0000.0002") == 2
    assert node_of_address("1:0001.0001.00FF") == 0x100FF
    with pytest.raises(ValueError, match="not a Pilot address"):
        node_of_address("127.0.0.1:9000")
    assert node_tag(3) == "dfl-node-3"


@pytest.mark.parametrize("handled", [True, False])
def test_a_namespace_init_ends_on_sigterm_only_with_the_handler(handled):
    """Python as PID 1 of ``unshare --pid`` ignores SIGTERM unless ``exit_on_termination`` ran."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and util-linux unshare")
    setup = "from dfl.pilot.netns import exit_on_termination; exit_on_termination(); " * handled
    code = f"{setup}import time; print('ready', flush=True); time.sleep(30)"
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        os.kill(int(children[0]), signal.SIGTERM)
        try:
            status = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        assert status == (128 + signal.SIGTERM if handled else None)
    finally:
        proc.kill()
        proc.wait()
