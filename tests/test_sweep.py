"""Sweeps resume (finished jobs are skipped), survive failed jobs and report them (dfl.sweep)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from dfl.sweep import (
    SINGLE_THREAD_XLA,
    STATUS_FILE,
    finished_accuracy,
    job_threads,
    summarize,
)
from tests.config.test_rundir import TINY, finished_run, resolved, train

TINY_DIRNAME = ["eval_every=1", "model=logreg", "rounds=1", "sim.progress=False", "topology.n=4"]


def job_dir(sweep: Path, *overrides: str) -> Path:
    """A TINY job's directory: Hydra's override_dirname (overrides sorted, no job number)."""
    return sweep / ",".join(sorted([*TINY_DIRNAME, *overrides]))


def status(job_dir: Path) -> dict:
    return json.loads((job_dir / STATUS_FILE).read_text())


def write_run(workdir: Path, config: dict, rounds_done: list[int]) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    lines = [json.dumps({"round": r, "test_accuracy_mean": r / 10}) for r in rounds_done]
    (workdir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))


def test_finished_means_same_config_and_last_round_recorded(tmp_path):
    config = resolved(["rounds=3"])
    write_run(tmp_path, config, [1, 2, 3])
    assert finished_accuracy(tmp_path, config) == pytest.approx(0.3)
    assert finished_accuracy(tmp_path, resolved(["rounds=3", "seed=1"])) is None  # other config
    write_run(tmp_path, config, [1, 2])  # interrupted after round 2
    assert finished_accuracy(tmp_path, config) is None
    write_run(tmp_path, config, [])  # started, no record yet
    assert finished_accuracy(tmp_path, config) is None
    write_run(tmp_path, config, [1, 2, 3])
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"round": 4, "test_acc')  # cut off mid-record
    assert finished_accuracy(tmp_path, config) is None
    assert finished_accuracy(tmp_path / "missing", config) is None


def test_joblib_jobs_share_the_cores():
    assert job_threads(-1, 16) == 1  # joblib's default: one job per core
    assert job_threads(2, 16) == 8
    assert job_threads(4, 2) == 1  # more jobs than cores: still one each
    assert job_threads(-2, 16) == 1  # all cores but one: 15 jobs
    assert job_threads(-16, 16) == 16  # one job
    with pytest.raises(ValueError, match="n_jobs must not be 0"):
        job_threads(0, 16)


def test_summary_counts_and_lists_each_failure():
    statuses = {
        Path("s/a"): {"status": "ran"},
        Path("s/b"): {"status": "skipped"},
        Path("s/c"): {"status": "skipped"},
        Path("s/d"): {"status": "failed", "error": "ValueError: bad\nsecond line"},
    }
    assert summarize(statuses) == [
        "sweep: 4 jobs: 1 ran, 2 skipped (finished before, same config), 1 failed",
        "failed: s/d: ValueError: bad second line",
    ]


def test_rerun_skips_finished_jobs_and_runs_the_missing_one(tmp_path):
    sweep = tmp_path / "sweep"
    jobs = [job_dir(sweep, f"seed={s}") for s in (0, 1, 2)]
    out = train("-m", f"hydra.sweep.dir={sweep}", "seed=0,1,2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sweep: 3 jobs: 3 ran, 0 skipped" in out.stdout
    assert [status(j)["status"] for j in jobs] == ["ran"] * 3
    before = {j: (j / "metrics.jsonl").stat().st_mtime_ns for j in jobs}
    accuracy = {j: status(j)["final_accuracy"] for j in jobs}

    (jobs[1] / "metrics.jsonl").unlink()  # one job's results are lost (or it was interrupted)
    out = train("-m", f"hydra.sweep.dir={sweep}", "seed=0,1,2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sweep: 3 jobs: 1 ran, 2 skipped" in out.stdout
    assert [status(j)["status"] for j in jobs] == ["skipped", "ran", "skipped"]
    for j in (jobs[0], jobs[2]):  # untouched, and the skip returns the saved accuracy
        assert (j / "metrics.jsonl").stat().st_mtime_ns == before[j]
        assert status(j)["final_accuracy"] == accuracy[j]
    records = [json.loads(x) for x in (jobs[1] / "metrics.jsonl").open()]
    assert [r["round"] for r in records] == [1]
    assert status(jobs[1])["final_accuracy"] == pytest.approx(accuracy[jobs[1]])  # same seed


def test_failed_and_refused_jobs_do_not_stop_the_sweep_and_are_listed(tmp_path):
    sweep = tmp_path / "sweep"
    bad = job_dir(sweep, "optimizer._target_=optax.nosuch", "seed=0")
    good = job_dir(sweep, "optimizer._target_=optax.sgd", "seed=0")
    taken = job_dir(sweep, "optimizer._target_=optax.sgd", "seed=1")
    taken.mkdir(parents=True)
    finished_run(taken, [*TINY, "seed=7"])  # a finished run of another config in a job's directory
    out = train(
        "-m",
        f"hydra.sweep.dir={sweep}",
        "optimizer._target_=optax.nosuch,optax.sgd",  # the first job raises
        "seed=0,1",
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "sweep: 4 jobs: 1 ran, 0 skipped (finished before, same config), 3 failed" in out.stdout
    assert f"failed: {bad}: InstantiationException: Error locating target 'optax.nosuch'" in (
        out.stdout
    )
    assert f"failed: {taken}: ValueError: output directory" in out.stdout
    assert "seed: 7 -> 1" in status(taken)["error"]
    assert "dfl: error: 3 of 4 sweep jobs failed" in out.stderr
    assert status(good)["status"] == "ran"  # ran after the failure
    assert [json.loads(x)["round"] for x in (good / "metrics.jsonl").open()] == [1]
    assert (taken / "metrics.jsonl").read_text() == '{"round": 1}\n'  # not overwritten


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_joblib_runs_two_jobs_each_on_its_share_of_the_cores(tmp_path):
    sweep = tmp_path / "sweep"
    out = train(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
        "seed=0,1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Joblib.Parallel(n_jobs=2" in out.stdout
    assert "sweep: 2 jobs: 2 ran, 0 skipped" in out.stdout
    share = len(os.sched_getaffinity(0)) // 2
    for seed in (0, 1):
        record = status(job_dir(sweep, f"seed={seed}"))
        assert record["status"] == "ran"
        assert record["cpus"] == share
        assert (SINGLE_THREAD_XLA in record["xla_flags"]) == (share == 1)


def test_optuna_preset_maximizes_the_returned_final_accuracy(tmp_path):
    sweep = tmp_path / "sweep"
    out = train(
        "-m",
        "+experiment=optuna_choco_digits",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "setup plugin alembic" not in out.stdout
    assert "sweep: 2 jobs: 2 ran, 0 skipped" in out.stdout
    trials = {}
    for path in sweep.glob(f"*/{STATUS_FILE}"):
        saved = yaml.safe_load((path.parent / "config_resolved.yaml").read_text())
        key = (saved["optimizer"]["learning_rate"], saved["algorithm"]["gamma"])
        records = [json.loads(x) for x in (path.parent / "metrics.jsonl").open()]
        assert json.loads(path.read_text())["final_accuracy"] == records[-1]["test_accuracy_mean"]
        trials[key] = records[-1]["test_accuracy_mean"]
    assert len(trials) == 2
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = max(trials, key=lambda k: trials[k])
    assert result["best_value"] == pytest.approx(trials[best])
    assert (
        result["best_params"]["optimizer.learning_rate"],
        result["best_params"]["algorithm.gamma"],
    ) == best


@pytest.mark.slow
def test_submitit_jobs_report_failures_back_to_the_sweep(tmp_path):
    """The SLURM launcher's machinery, run locally: jobs in their own processes via submitit."""
    sweep = tmp_path / "sweep"
    out = train(
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep}",
        "optimizer._target_=optax.nosuch,optax.sgd",
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "sweep: 2 jobs: 1 ran, 0 skipped (finished before, same config), 1 failed" in out.stdout
    bad = job_dir(sweep, "optimizer._target_=optax.nosuch")
    assert f"failed: {bad}: InstantiationException" in out.stdout
    assert status(job_dir(sweep, "optimizer._target_=optax.sgd"))["status"] == "ran"
