"""``sim.distributed=true`` for real: two local processes, two CPU devices each.

Each process runs ``python -m dfl.train`` with ``sim.shard_nodes=true``: the 8 nodes
are split over a 4-device mesh spanning both processes (CPU collectives through gloo,
JAX's CPU default), the coordinator listening on 127.0.0.1 only
(``sim.coordinator_bind_address``). Both processes save one orbax checkpoint together
(``checkpoint.dir`` shared, as on a cluster's shared file system); its parameters, read
back here as numpy arrays, equal those of the same run in one process on one device.
The processes run the README's multi-host command (``tests/readme.py``), with this
test's port and paths and a 4-round run appended.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.readme import commands

ROOT = Path(__file__).resolve().parents[2]
SMALL = ("rounds=4", "eval_every=2", "sim.progress=false", "checkpoint.every=4")
ONE_PROCESS = ("sim.", "checkpoint.dir=", "hydra.run.dir=")
"""The README command's arguments the one-process run leaves out."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], xla_flags: str, log: Path) -> subprocess.Popen:
    """``python -m dfl.train ARGS`` with ``XLA_FLAGS=xla_flags``, output to ``log``."""
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": xla_flags,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dfl.train", *args, *SMALL],
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 240) -> None:
    try:
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log.read_text()[-3000:]


def saved_params(checkpoint: Path) -> dict:
    """The saved state's arrays as numpy, whatever the devices it was saved from."""
    checkpointer = ocp.PyTreeCheckpointer()
    metadata = checkpointer.metadata(checkpoint).item_metadata
    assert metadata is not None, f"{checkpoint} has no array metadata"
    tree = metadata.tree
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(checkpoint, args=ocp.args.PyTreeRestore(restore_args=args))


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]


@pytest.mark.slow  # 60 s on 2 loaded cores: three processes compile and run
def test_two_processes_end_with_the_parameters_of_the_one_process_run(tmp_path):
    (readme,) = commands("multi-host")
    assert readme.module == "dfl.train"
    port = free_port()
    address = f"127.0.0.1:{port}"
    shared = tmp_path / "checkpoints"  # both processes write their shards here

    def process(i: int) -> list[str]:
        return [
            a.replace("127.0.0.1:1234", address)
            .replace("$PWD/ckpt", str(shared))
            .replace("outputs/process$I", str(tmp_path / f"p{i}"))
            .replace("$I", str(i))
            for a in readme.args
        ]

    single = [a for a in readme.args if not a.startswith(ONE_PROCESS)]
    logs = [tmp_path / f"process{i}.log" for i in (0, 1)] + [tmp_path / "single.log"]
    procs = [start(process(i), readme.env["XLA_FLAGS"], logs[i]) for i in (0, 1)]
    procs.append(start([*single, f"hydra.run.dir={tmp_path / 'single'}"], "", logs[2]))
    wait(procs, logs)

    coordinator = logs[0].read_text()
    assert f"Starting JAX distributed service on {address}" in coordinator  # not [::]
    assert "[Gloo] Rank" in coordinator  # the CPU collectives crossed the processes
    for i in (0, 1):
        meta = json.loads((tmp_path / f"p{i}" / "metadata.json").read_text())
        assert len(meta["jax_devices"]) == 4, meta["jax_devices"]  # one mesh over both processes

    two = saved_params(shared / "4" / "state")
    one = saved_params(tmp_path / "single" / "checkpoints" / "4" / "state")
    assert jax.tree.structure(two) == jax.tree.structure(one)
    for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one), strict=True):
        assert a.shape == b.shape and a.shape[0] == 8  # every node's rows, from both processes
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for i in (0, 1):  # every process reports the whole run, as the one process does
        ran, reference = records(tmp_path / f"p{i}"), records(tmp_path / "single")
        for got, want in zip(ran, reference, strict=True):
            assert got["round"] == want["round"]
            for key in ("train_loss", "test_accuracy_mean", "consensus_distance"):
                assert got[key] == pytest.approx(want[key], rel=1e-5), key
