"""Every workflow of the README has a command block that runs here, as written.

The blocks are marked ``<!-- test: NAME -->`` (:mod:`tests.readme`); each test runs
the block's commands with small-run overrides appended and checks what they wrote.
The multi-host block runs in ``tests/sim/test_two_processes.py``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.readme import Command, blocks, commands

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = {
    "run",
    "loggers",
    "sweep-local",
    "sweep-slurm",
    "sweep-optuna",
    "report",
    "resume",
    "multi-host",
    "deploy",
}
SMALL = ("topology.n=4", "rounds=2", "eval_every=1", "sim.progress=false")
"""Appended to a command (Hydra keeps a key's last value): a 2-round run of 4 nodes."""


def run(command: Command, *extra: str, cwd: Path, timeout: float = 300) -> str:
    """Runs ``command`` with ``extra`` arguments in ``cwd``; returns its output."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, **command.env, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-m", command.module, *command.args, *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"{command}: {out.stdout[-1500:]}\n{out.stderr[-3000:]}"
    return out.stdout


def rounds(run_dir: Path) -> list[int]:
    return [json.loads(line)["round"] for line in (run_dir / "metrics.jsonl").open()]


def test_every_workflow_has_one_tested_block():
    assert set(blocks()) == WORKFLOWS


def test_run(tmp_path):
    (command,) = commands("run")
    assert command.module == "dfl.train"
    run(command, *SMALL, "hydra.run.dir=out", cwd=tmp_path)
    assert rounds(tmp_path / "out") == [1, 2]
    saved = yaml.safe_load((tmp_path / "out" / "config_resolved.yaml").read_text())
    assert saved["seed"] == 1  # the README's own override


def test_report(tmp_path):
    from tests.test_report import write_multirun

    write_multirun(tmp_path / "multirun" / "topologies")
    (command,) = commands("report")
    run(command, cwd=tmp_path)
    with (tmp_path / "report" / "topologies" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["topology.name"] for r in rows) == ["complete", "ring"]
    assert [int(r["seeds"]) for r in rows] == [3, 3]
    assert (tmp_path / "report" / "topologies" / "accuracy_vs_round.png").stat().st_size > 0


def test_sweep_slurm_composes_the_submitit_launcher():
    """No cluster here: the command's config must name submitit's SLURM launcher and keys."""
    from hydra import compose, initialize_config_dir

    from dfl.config.store import conf_dir, register

    (command,) = commands("sweep-slurm")
    overrides = [a for a in command.args if a != "-m"]
    register()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert (
        launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 60)
    assert cfg.hydra.sweep.dir == "experiments/compression_privacy/runs/compression"  # preset


@pytest.mark.slow
def test_loggers(tmp_path):
    from tests.metrics.log_files import read_tensorboard, read_wandb

    tensorboard, wandb = commands("loggers")
    run(tensorboard, *SMALL, "hydra.run.dir=tb", cwd=tmp_path)
    run(wandb, *SMALL, "hydra.run.dir=wb", cwd=tmp_path)
    losses = {
        name: [json.loads(x)["train_loss"] for x in (tmp_path / name / "metrics.jsonl").open()]
        for name in ("tb", "wb")
    }
    logged = read_tensorboard(tmp_path / "tb" / "tensorboard")["train_loss"]
    assert logged == pytest.approx(dict(enumerate(losses["tb"], start=1)), rel=1e-6)
    rows, config = read_wandb(tmp_path / "wb")
    assert [r["train_loss"] for r in rows] == losses["wb"]
    assert config["logger"]["name"] == "wandb"


@pytest.mark.slow
def test_sweep_local(tmp_path):
    (command,) = commands("sweep-local")
    out = run(command, *SMALL, "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert "sweep: 4 jobs: 4 ran, 0 skipped" in out
    assert len(list((tmp_path / "sweep").glob("*/metrics.jsonl"))) == 4


@pytest.mark.slow
def test_sweep_optuna(tmp_path):
    (command,) = commands("sweep-optuna")
    out = run(command, *SMALL, "hydra.sweeper.n_trials=2", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert "sweep: 2 jobs: 2 ran, 0 skipped" in out
    assert "best_value" in yaml.safe_load(
        (tmp_path / "sweep" / "optimization_results.yaml").read_text()
    )


@pytest.mark.slow
def test_resume(tmp_path):
    first, resume = commands("resume")
    run(first, *SMALL, "checkpoint.every=1", cwd=tmp_path)
    assert rounds(tmp_path / "outputs" / "long") == [1, 2]
    run(resume, "rounds=4", "sim.progress=false", cwd=tmp_path)
    assert rounds(tmp_path / "outputs" / "long") == [1, 2, 3, 4]
    assert (tmp_path / "outputs" / "long" / "resumes.jsonl").exists()


@pytest.mark.slow
def test_deploy(tmp_path):
    for i, command in enumerate(commands("deploy")):
        assert command.module == "dfl.launch"
        run(command, *SMALL, f"hydra.run.dir=deploy{i}", cwd=tmp_path)
        assert rounds(tmp_path / f"deploy{i}") == [1, 2]
