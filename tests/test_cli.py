"""``python -m dfl.train`` behaves as Hydra users expect (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TINY = ["data=digits", "model=logreg", "topology.n=4", "rounds=2", "eval_every=1"]


def dfl_train(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dfl.train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_groups(tmp_path):
    out = dfl_train("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for group in ("topology", "mixing", "algorithm", "model", "data", "optimizer"):
        assert group in out.stdout


def test_cfg_job_prints_the_composed_config(tmp_path):
    out = dfl_train("+experiment=ring_dsgd_digits", "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "rounds: 200" in out.stdout and "name: ring" in out.stdout


def test_sweep_writes_one_run_per_combination(tmp_path):
    out = dfl_train(
        "-m",
        *TINY,
        "topology=ring,complete",
        "mixing=uniform",
        "seed=0,1",
        "hydra.sweep.dir=sweep",
        "sim.progress=false",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/metrics.jsonl"))
    assert len(runs) == 4
    for run in runs:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["round"] for line in lines] == [1, 2]
        assert (run / "config_resolved.yaml").exists()


def test_config_mistake_is_a_message_not_a_traceback(tmp_path):
    out = dfl_train(*TINY, "algorithm=fedavg", cwd=tmp_path)
    assert out.returncode == 2
    assert "dfl: error:" in out.stderr and "fedavg" in out.stderr
    assert "Traceback" not in out.stderr


def test_configs_are_found_in_the_installed_wheel_layout(tmp_path, repo_root):
    """A non-editable install puts conf/ inside the package (hatch force-include)."""
    import shutil

    site = tmp_path / "site"
    shutil.copytree(repo_root / "dfl", site / "dfl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(repo_root / "conf", site / "dfl" / "conf")
    out = subprocess.run(
        [sys.executable, "-m", "dfl.train", "+experiment=ring_dsgd_digits", "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert out.returncode == 0, out.stderr
    assert "rounds: 200" in out.stdout
    pyproject = (repo_root / "pyproject.toml").read_text()
    assert '"conf" = "dfl/conf"' in pyproject  # what puts it there in the wheel


def test_resume_alone_continues_the_run_in_its_own_directory(tmp_path):
    first = dfl_train(
        *TINY, "model=mlp", "model.hidden=[8]", "checkpoint.every=1", "hydra.run.dir=run",
        "sim.progress=false", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    run = tmp_path / "run"
    # the default model (mlp 256) would not fit the saved (8-wide) checkpoint
    more = dfl_train("+resume=run", "rounds=4", "hydra.run.dir=again", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == [1, 2, 3, 4]
    assert not (tmp_path / "again" / "metrics.jsonl").exists()
    assert f"outputs: {run.resolve()}" in more.stdout
    assert len((run / "resumes.jsonl").read_text().splitlines()) == 1
    rows = [line.split("│")[1].strip() for line in more.stdout.splitlines() if line[:1] == "│"]
    assert rows == ["1", "2", "3", "4"]  # the summary shows the whole run


def test_resume_refuses_a_different_seed_naming_both_values(tmp_path):
    first = dfl_train(*TINY, "checkpoint.every=1", "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = dfl_train("+resume=run", "seed=3", "rounds=4", "hydra.run.dir=again", cwd=tmp_path)
    assert out.returncode == 2
    assert "dfl: error:" in out.stderr and "seed=3 (the run has seed=0)" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_string_learning_rate_is_one_line_naming_the_key(tmp_path):
    out = dfl_train(*TINY, "optimizer.learning_rate=abc", cwd=tmp_path)
    assert out.returncode == 2
    assert "dfl: error: optimizer.learning_rate='abc' is not a number" in out.stderr
    assert "Traceback" not in out.stderr


def test_multi_host_settings_missing_a_process_id_are_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "dfl.train", *TINY, "sim.distributed=true"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_NUM_PROCESSES": "2"},
    )
    assert out.returncode == 2
    assert "dfl: error:" in out.stderr and "sim.process_id" in out.stderr
    assert "Traceback" not in out.stderr


def test_node_help_and_log_are_named_dfl_node(tmp_path):
    from dfl.node.__main__ import with_job_name

    out = subprocess.run(
        [sys.executable, "-m", "dfl.node", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("dfl.node is powered by Hydra")
    assert "__main__" not in out.stdout
    assert with_job_name(["x", "a=1"]) == ["x", "a=1", "hydra.job.name=dfl.node"]
    assert with_job_name(["x", "hydra.job.name=mine"]) == ["x", "hydra.job.name=mine"]


def test_calibrated_sigma_is_in_the_summary_and_the_resolved_config(tmp_path):
    import yaml

    out = dfl_train(*TINY, "privacy=dp_sgd_eps", "hydra.run.dir=run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "failed to converge" not in out.stderr
    sigma = json.loads((tmp_path / "run" / "metadata.json").read_text())["privacy"][
        "noise_multiplier"
    ]
    resolved = yaml.safe_load((tmp_path / "run" / "config_resolved.yaml").read_text())
    assert resolved["privacy"]["noise_multiplier"] == sigma != 1.0  # 1.0: the uncalibrated default
    assert f"σ = {sigma:.4f}" in out.stdout and "ε = 8" in out.stdout
