"""``python -m dfl.launch`` / ``dfl.node`` as a user meets them: Ctrl-C, resume, bad addresses."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from dfl.config.deploy_schema import TransportConfig
from dfl.config.schema import Config
from dfl.node.addresses import check_addresses

TINY = ["data=digits", "model=logreg", "topology.n=4", "sim.progress=false"]


def dfl(module: str, *args: str, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_ctrl_c_stops_the_launch_with_one_line_saying_how_to_resume(tmp_path):
    args = [*TINY, "transport=loopback", "rounds=100000", "eval_every=50000"]
    args += ["checkpoint.every=2", "hydra.run.dir=run"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dfl.launch", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ckpt = tmp_path / "run" / "nodes" / "node_0" / "checkpoints" / "4"
        end = time.monotonic() + 240
        while not ckpt.exists() and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.2)
        assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("dfl:")]
    run = (tmp_path / "run").resolve()
    assert line == (
        "dfl: interrupted: every node was stopped; continue it with: "
        f"python -m dfl.launch +resume={run}; combine it so far: python -m dfl.collect {run}"
    )


@pytest.mark.slow
def test_launcher_resume_continues_the_runs_metrics(tmp_path):
    args = [*TINY, "transport=loopback", "eval_every=2", "checkpoint.every=2"]
    first = dfl("dfl.launch", *args, "rounds=4", "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    more = dfl("dfl.launch", "+resume=run", "rounds=8", "hydra.run.dir=again", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [2, 4, 6, 8]
    assert all(r["nodes_reporting"] == 4 for r in records)
    assert not (tmp_path / "again" / "metrics.jsonl").exists()


def test_an_unresolvable_host_names_the_entry():
    cfg = Config(
        transport=TransportConfig(name="tcp", addresses=["127.0.0.1:1", "nohost.invalid:2"])
    )
    with pytest.raises(ValueError, match=r"transport.addresses\[1\]='nohost.invalid:2'"):
        check_addresses(cfg)
    check_addresses(Config(transport=TransportConfig(name="tcp", addresses=["localhost:3"])))


def test_an_unresolvable_host_is_one_error_line_from_dfl_node(tmp_path):
    addresses = (
        "transport.addresses=[127.0.0.1:29991,nohost.invalid:29992,127.0.0.1:29993,127.0.0.1:29994]"
    )
    out = dfl("dfl.node", *TINY, "transport=tcp", "node.id=0", addresses, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "dfl: error: transport.addresses[1]='nohost.invalid:29992'" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_deployment_progress_bar_shows_loss_and_accuracy(tmp_path):
    args = [*TINY, "transport=loopback", "rounds=4", "eval_every=2", "hydra.run.dir=run"]
    out = dfl("dfl.launch", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (bar,) = [x for x in (out.stdout + out.stderr).splitlines() if x.startswith("round 4/4")]
    assert re.search(r"loss \d\.\d{4} acc 0\.\d{4}", bar), bar
