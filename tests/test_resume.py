"""``+resume=RUN_DIR``: the saved config, what may change, and one directory per run."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dfl.config.store import conf_dir, register
from dfl.metrics import MetricsWriter, read_jsonl
from dfl.metrics.writer import continue_metrics
from dfl.resume import (
    find_run_dir,
    merge_overrides,
    record_resume,
    resume_config,
    resume_hint,
)

ORIGINAL = ["+experiment=ring_dsgd_digits", "topology.n=8", "model.hidden=[16]", "rounds=6"]


@pytest.fixture
def run_dir(tmp_path):
    """A finished run's directory as Hydra leaves it, with one (fake) checkpoint."""
    register()
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints" / "6").mkdir(parents=True)
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        cfg = compose("config", overrides=ORIGINAL)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(ORIGINAL), run / ".hydra" / "overrides.yaml")
    return run


def resumed(run_dir, *given):
    """``resume_config`` as ``python -m dfl.train +resume=RUN_DIR *given`` calls it."""
    overrides = [f"+resume={run_dir}", *given]
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        cfg = compose("config", overrides=overrides)
        return resume_config(cfg, overrides)


def test_resume_alone_takes_the_runs_saved_config(run_dir):
    r = resumed(run_dir)
    assert r.run_dir == run_dir.resolve()
    assert r.cfg.topology.n == 8 and list(r.cfg.model.hidden) == [16] and r.cfg.rounds == 6
    assert r.cfg.algorithm.name == "dsgd" and r.cfg.resume == str(run_dir)
    assert r.overrides == [*ORIGINAL, f"+resume={run_dir}"]  # what node processes get


def test_more_rounds_and_runner_switches_are_allowed(run_dir):
    r = resumed(run_dir, "rounds=10", "eval_every=5", "sim.progress=false")
    assert (r.cfg.rounds, r.cfg.eval_every, r.cfg.sim.progress) == (10, 5, False)
    assert r.cfg.topology.n == 8


@pytest.mark.parametrize(
    "override, named",
    [
        ("seed=1", "seed=1 (the run has seed=0)"),
        ("topology=complete", "topology.name='complete' (the run has topology.name='ring')"),
        ("topology.n=16", "topology.n=16 (the run has topology.n=8)"),
        ("model.hidden=[64]", "model.hidden=[64] (the run has model.hidden=[16])"),
        (
            "optimizer.learning_rate=0.5",
            "optimizer.learning_rate=0.5 (the run has optimizer.learning_rate=0.1)",
        ),
    ],
)
def test_a_change_of_the_runs_math_is_refused_naming_both_values(run_dir, override, named):
    with pytest.raises(ValueError, match="would change the run") as e:
        resumed(run_dir, override)
    assert named in str(e.value)


def test_a_checkpoint_directory_without_a_saved_config_resumes_as_given(tmp_path):
    (tmp_path / "ck" / "3").mkdir(parents=True)
    assert find_run_dir(tmp_path / "ck") is None
    r = resumed(tmp_path / "ck", "seed=5")
    assert r.run_dir is None and r.cfg.seed == 5


def test_resume_without_a_checkpoint_fails_naming_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        resumed(tmp_path)


def test_find_run_dir_from_its_checkpoints(run_dir):
    assert find_run_dir(run_dir / "checkpoints") == run_dir.resolve()


def test_given_overrides_replace_saved_ones_of_the_same_key():
    saved = ["+experiment=a", "rounds=6", "+resume=old"]
    assert merge_overrides(saved, ["rounds=9", "+resume=new"]) == [
        "+experiment=a",
        "rounds=9",
        "+resume=new",
    ]


def test_record_resume_updates_the_run_and_logs_it(run_dir, tmp_path):
    r = resumed(run_dir, "rounds=10")
    record_resume(r, tmp_path / "elsewhere")
    assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").rounds == 10
    assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").resume is None
    assert "rounds=10" in list(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    (entry,) = read_jsonl(run_dir / "resumes.jsonl")
    assert entry["invoked_in"] == str(tmp_path / "elsewhere")
    # resuming again alone now continues with the extended config
    assert resumed(run_dir).cfg.rounds == 10


def test_continue_metrics_drops_the_rounds_that_will_run_again(tmp_path):
    with MetricsWriter(tmp_path) as w:
        for r in (2, 4, 6):
            w.write({"round": r, "x": [r]})
    continue_metrics(tmp_path, 4)
    assert [r["round"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [2, 4]
    csv = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv == ["round,x", "2,[2]", "4,[4]"]
    assert json.loads(csv[1].split(",", 1)[1]) == [2]


def test_resume_hint():
    assert resume_hint("dfl.launch", "/r", 5) == "continue it with: python -m dfl.launch +resume=/r"
    assert "checkpoint.every=0" in resume_hint("dfl.train", "/r", 0)
