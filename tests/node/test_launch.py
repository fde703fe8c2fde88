"""Node processes over tcp (``python -m dfl.launch``): equivalence, SIGKILL and rejoin, stopping.

These start one Python process per node and are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfl.launch import child_env, launch_processes
from dfl.metrics import read_jsonl
from dfl.node import build_program, load_params, node_dir, params_path
from dfl.sim.runner import simulate
from tests.node.common import BASE, assert_close, compose_config, sim_params

pytestmark = pytest.mark.slow


def test_tcp_processes_equal_the_simulation(tmp_path):
    cfg, opt = compose_config()
    sim = simulate(cfg, opt)
    records = launch_processes(
        cfg, list(BASE), tmp_path, optimizer=opt, progress=False, timeout_s=900
    )
    program = build_program(sim.experiment)
    like = program.params(program.init(0))
    for i in range(cfg.topology.n):
        got = load_params(params_path(node_dir(tmp_path, i), cfg.rounds), like)
        assert_close(got, sim_params(sim, i))
    last, sim_last = records[-1], sim.records[-1]
    assert last["round"] == cfg.rounds and last["nodes_reporting"] == cfg.topology.n
    assert last["messages_missing"] == 0 and last["messages_rejected"] == 0
    assert last["test_accuracy_mean"] == pytest.approx(sim_last["test_accuracy_mean"], abs=1e-3)
    assert read_jsonl(tmp_path / "metrics.jsonl") == records


def test_sigkill_restart_rejoins_the_run(tmp_path):
    extra = [
        "rounds=30",
        "eval_every=10",
        "checkpoint.every=2",
        "node.deadline_s=2",
        "transport.faults.crash_node=1",
        "transport.faults.crash_round=6",
        "transport.faults.restart_after_s=1",
        # Failure detection off: with it, node 1's neighbours stop waiting for it the
        # moment its connections close, and finish the 24 rounds left before a new
        # process has started (tests/security/test_failure_detection.py tests that).
        "transport.down_after_missed=0",
    ]
    cfg, opt = compose_config(*extra)
    records = launch_processes(
        cfg, [*BASE, *extra], tmp_path, optimizer=opt, progress=False, timeout_s=900
    )
    summary = json.loads((tmp_path / "deployment.json").read_text())
    assert summary["restarts"]["1"] == 1
    last = records[-1]
    assert last["round"] == 30 and last["nodes_reporting"] == 4
    assert last["messages_missing"] >= 2  # node 1's neighbours lost it while it was down
    log = (node_dir(tmp_path, 1) / "node.log").read_text()
    assert "resumed from" in log
    # A new process takes seconds to start, its neighbours went on meanwhile
    # (2 s deadlines): it jumped to their round instead of replaying.
    assert "skipping to round" in log and last["rounds_skipped"] >= 1


def test_launch_cli_loopback(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfl.launch",
            *BASE,
            "transport=loopback",
            f"hydra.run.dir={tmp_path}",
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=os.getcwd(),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["round"] for r in records] == [10, 20]
    assert (tmp_path / "nodes" / "node_3" / "params" / "round_000020.npz").is_file()


def launch_until_running(tmp_path) -> subprocess.Popen:
    """``python -m dfl.launch`` of a (practically) endless tcp run, once every node trains."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dfl.launch",
            *BASE,
            "transport=tcp",
            "rounds=100000",
            "eval_every=100000",
            f"hydra.run.dir={tmp_path}",
        ],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    progress = [tmp_path / "nodes" / f"node_{i}" / "progress.json" for i in range(4)]
    deadline = time.monotonic() + 300
    while not all(p.exists() for p in progress):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    return proc


def assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ctrl_c_stops_every_node_process(tmp_path):
    proc = launch_until_running(tmp_path)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    pids = [int(p) for p in re.search(r"pids \[([\d, ]+)\]", out).group(1).split(",")]
    assert len(pids) == 4
    assert_gone(pids)


def test_a_failing_node_stops_every_other_node(tmp_path):
    proc = launch_until_running(tmp_path)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    nodes = [int(pid) for pid in children]
    assert len(nodes) == 4
    os.kill(nodes[1], signal.SIGKILL)  # an unplanned death: not a configured crash fault
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert re.search(r"node\(s\) \[\d\] exited with", out), out[-2000:]
    assert_gone(nodes)
