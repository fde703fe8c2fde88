"""Sweep jobs get directories named by their overrides; a run never overwrites another config's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from dfl.config.store import MAX_DIRNAME, run_dirname
from dfl.rundir import check_run_dir
from tests.conftest import compose_config


def resolved(overrides: list[str]) -> dict:
    """The composed config as ``dfl.train`` hands it to the check."""
    return OmegaConf.to_container(compose_config(overrides), resolve=True, enum_to_str=True)


TINY = [
    "topology.n=4",
    "rounds=1",
    "eval_every=1",
    "model=logreg",
    "sim.progress=false",
    "hydra/job_logging=disabled",
]


def test_dirname_is_the_overrides():
    assert run_dirname("algorithm=choco,seed=1") == "algorithm=choco,seed=1"
    assert run_dirname("") == "default"
    assert run_dirname("data.path=/x/y") == "data.path=%2Fx%2Fy"


def test_long_dirname_is_shortened_with_a_hash_and_stays_distinct():
    a, b = "x=" + "a" * 300 + ",seed=0", "x=" + "a" * 300 + ",seed=1"
    na, nb = run_dirname(a), run_dirname(b)
    assert len(na) == len(nb) == MAX_DIRNAME
    assert na != nb and na.startswith("x=aaa")
    assert run_dirname(a) == na  # deterministic
    assert len(run_dirname("y" * MAX_DIRNAME)) == MAX_DIRNAME  # at the limit: kept whole
    assert run_dirname("y" * MAX_DIRNAME) == "y" * MAX_DIRNAME


def finished_run(workdir: Path, overrides: list[str]) -> None:
    cfg = compose_config(overrides)
    (workdir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (workdir / "metrics.jsonl").write_text('{"round": 1}\n')


def test_run_dir_of_another_config_is_refused(tmp_path):
    check_run_dir(tmp_path, resolved(["seed=1"]))  # empty directory: fine
    finished_run(tmp_path, ["seed=0"])
    check_run_dir(tmp_path, resolved(["seed=0"]))  # same config: allowed
    with pytest.raises(ValueError, match=r"another config \(seed: 0 -> 1\)"):
        check_run_dir(tmp_path, resolved(["seed=1"]))
    with pytest.raises(ValueError, match=r"algorithm\.name: dsgd -> choco"):
        check_run_dir(tmp_path, resolved(["algorithm=choco"]))


def test_unfinished_run_dir_is_reused(tmp_path):
    finished_run(tmp_path, ["seed=0"])
    (tmp_path / "metrics.jsonl").unlink()  # it never wrote a record
    check_run_dir(tmp_path, resolved(["seed=1"]))


def train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    root = str(Path(__file__).resolve().parents[2])  # this checkout's dfl, not an installed one
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "dfl.train", *args, *TINY],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_two_seed_sweep_keeps_both_runs_and_a_changed_config_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    out = train("-m", f"hydra.sweep.dir={sweep}", "seed=0,1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    # Hydra's override_dirname: the job's overrides sorted, no job number.
    name = "eval_every=1,model=logreg,rounds=1,seed={},sim.progress=False,topology.n=4"
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == [name.format(0), name.format(1)]
    for seed in (0, 1):
        saved = OmegaConf.load(sweep / name.format(seed) / "config_resolved.yaml")
        assert saved.seed == seed
        records = [json.loads(x) for x in (sweep / name.format(seed) / "metrics.jsonl").open()]
        assert [r["round"] for r in records] == [1]
    meta = json.loads((sweep / name.format(0) / "metadata.json").read_text())
    assert meta["mixing"] == "metropolis_hastings"  # the ring's natural rule, recorded

    first = sweep / name.format(0)
    before = (first / "metrics.jsonl").read_bytes()
    out = train(f"hydra.run.dir='{first}'", "seed=5", cwd=tmp_path)  # quoted: '=' and ','
    assert out.returncode == 2
    assert "dfl: error: output directory" in out.stderr and "seed: 0 -> 5" in out.stderr
    assert (first / "metrics.jsonl").read_bytes() == before


def test_a_calibrated_sigma_is_the_same_config(tmp_path):
    """A ``dp_sgd_eps`` run saves its calibrated σ over the composed one: still its config."""
    config = resolved(["privacy=dp_sgd_eps"])
    saved = json.loads(json.dumps(config))
    saved["privacy"]["noise_multiplier"] = 0.7321
    (tmp_path / "config_resolved.yaml").write_text(yaml.safe_dump(saved))
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    check_run_dir(tmp_path, config)  # the same run: allowed
    with pytest.raises(ValueError, match=r"privacy\.target_epsilon"):
        check_run_dir(tmp_path, resolved(["privacy=dp_sgd_eps", "privacy.target_epsilon=2.0"]))
    plain = resolved(["privacy=dp_sgd"])
    saved_plain = json.loads(json.dumps(plain))
    saved_plain["privacy"]["noise_multiplier"] = 0.7321
    (tmp_path / "config_resolved.yaml").write_text(yaml.safe_dump(saved_plain))
    with pytest.raises(ValueError, match=r"privacy\.noise_multiplier"):
        check_run_dir(tmp_path, plain)  # without a target, sigma is the config's own value


def test_a_key_added_since_the_run_is_the_same_config_at_its_default(tmp_path):
    """A run saved by an older dfl lacks keys added since (e.g. ``sim.scan``, the
    ``network`` group): it is still the same config while the new run leaves them at
    their defaults, and another config once one of them moves."""
    config = resolved(TINY)
    saved = json.loads(json.dumps(config))
    del saved["sim"]["scan"]
    del saved["network"]
    (tmp_path / "config_resolved.yaml").write_text(yaml.safe_dump(saved))
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    check_run_dir(tmp_path, config)  # the same run: allowed
    with pytest.raises(ValueError, match=r"sim\.scan: <absent> -> False"):
        check_run_dir(tmp_path, resolved([*TINY, "sim.scan=false"]))
    with pytest.raises(ValueError, match=r"network\.drop: <absent> -> 0\.1"):
        check_run_dir(tmp_path, resolved([*TINY, "network=lossy", "network.drop=0.1"]))
