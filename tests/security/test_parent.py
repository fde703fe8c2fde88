"""A node process checks that its launcher is still there and asks to die with it."""

from __future__ import annotations

import os
import subprocess
import sys

from dfl.launch import child_env

CALL = "from dfl.node.parent import die_with_launcher as d; import os; d(os.environ); print('ran')"


def run_with(pid: str | None) -> subprocess.CompletedProcess:
    env = child_env()
    env.pop("DFL_LAUNCHER_PID", None)
    if pid is not None:
        env["DFL_LAUNCHER_PID"] = pid
    return subprocess.run(
        [sys.executable, "-c", CALL], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_node_whose_launcher_is_gone_exits_at_once():
    out = run_with(str(2**22 + 7))  # not its parent: the launcher died before it started
    assert out.returncode == 1 and "is gone" in out.stderr and "ran" not in out.stdout


def test_a_node_under_its_launcher_or_alone_runs_on():
    assert run_with(str(os.getpid())).stdout.strip() == "ran"  # this test is its parent
    assert run_with(None).stdout.strip() == "ran"
