"""Killing the launcher (issue 13, finding 9): SIGTERM/SIGHUP stop the nodes like Ctrl-C,
SIGKILL leaves no orphan (parent-death signal), ``python -m dfl.collect`` combines the rest.

Each test starts a 3-node tcp deployment (one Python process per node): ``slow``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfl.launch import child_env
from dfl.metrics import read_jsonl
from dfl.sim.runner import simulate
from tests.node.common import BASE, compose_config

pytestmark = pytest.mark.slow

N = 3
EVAL_EVERY = 2
OVERRIDES = [
    *(o for o in BASE if not o.startswith(("topology.n=", "rounds=", "eval_every="))),
    f"topology.n={N}",
    f"eval_every={EVAL_EVERY}",
    "node.deadline_s=60",
]


def progress(run_dir: Path) -> list[int]:
    """Rounds each node has completed (0 before its first ``progress.json``)."""
    import json

    out = []
    for i in range(N):
        try:
            out.append(
                int(json.loads((run_dir / f"nodes/node_{i}/progress.json").read_text())["round"])
            )
        except (OSError, ValueError, KeyError):
            out.append(0)
    return out


def launch_until(run_dir: Path, rounds: int) -> tuple[subprocess.Popen, list[int]]:
    """A practically endless tcp launch, once every node completed ``rounds``; its node PIDs."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dfl.launch",
            *OVERRIDES,
            "transport=tcp",
            "rounds=100000",
            f"hydra.run.dir={run_dir}",
        ],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while min(progress(run_dir)) < rounds:
        assert proc.poll() is None, "the launcher exited early"
        assert time.monotonic() < deadline, f"nodes did not reach round {rounds}"
        time.sleep(0.2)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    pids = [int(p) for p in children]
    assert len(pids) == N
    return proc, pids


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie counts as gone: it no longer runs anything)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def assert_gone_within(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], f"node processes {pids} outlived their launcher"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_every_node(tmp_path, sig):
    proc, pids = launch_until(tmp_path, 1)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 130  # the Ctrl-C path: "interrupted", nodes stopped
    assert_gone_within(pids, 5)


def test_sigkill_of_the_launcher_kills_the_nodes_then_collect_combines(tmp_path):
    proc, pids = launch_until(tmp_path, 2 * EVAL_EVERY)
    proc.kill()
    proc.wait(timeout=10)
    assert_gone_within(pids, 10)
    assert not (tmp_path / "metrics.jsonl").exists()  # nobody combined the run

    out = subprocess.run(
        [sys.executable, "-m", "dfl.collect", str(tmp_path)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert (tmp_path / "metadata.json").is_file() and (tmp_path / "deployment.json").is_file()
    finished = min(progress(tmp_path))  # every node completed these rounds
    complete = [r for r in records if r["round"] <= finished]
    assert [r["round"] for r in complete] == list(range(EVAL_EVERY, finished + 1, EVAL_EVERY))
    assert all(r["nodes_reporting"] == N for r in complete)
    # The same rounds of the simulation (synchronous D-SGD: the same parameters).
    last = complete[-1]["round"]
    cfg, opt = compose_config(f"topology.n={N}", f"rounds={last}", f"eval_every={EVAL_EVERY}")
    sim = {r["round"]: r for r in simulate(cfg, opt).records}
    for r in complete:
        assert r["test_accuracy_mean"] == pytest.approx(
            sim[r["round"]]["test_accuracy_mean"], abs=1e-3
        )
        assert r["consensus_distance"] == pytest.approx(
            sim[r["round"]]["consensus_distance"], rel=1e-3, abs=1e-5
        )
        assert r["messages_missing"] == 0 and r["messages_rejected"] == 0
