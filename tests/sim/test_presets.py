"""Every experiment preset composes, runs two rounds, and writes finite metrics; every
combination its sweep lists composes and builds."""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
import pytest
import yaml
from omegaconf import OmegaConf

from dfl.algorithms import build_algorithm, local_update, value_and_grad
from dfl.cli import instantiate_optimizer, to_config
from dfl.config.store import conf_dir
from dfl.experiment import algorithm_options, validate_config
from dfl.metrics import REQUIRED_KEYS, read_jsonl
from dfl.sim.runner import simulate
from dfl.topology import build_schedule, check_requirements
from tests.conftest import EXPERIMENTS, compose_config


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_preset_runs_two_rounds(experiment, tmp_path):
    cfg = compose_config([f"+experiment={experiment}", "rounds=2", "eval_every=1"])
    result = simulate(to_config(cfg), instantiate_optimizer(cfg), workdir=tmp_path, progress=False)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["round"] for r in records] == [1, 2]
    assert records == result.records
    for record in records:
        for key in REQUIRED_KEYS:
            assert key in record, key
            assert math.isfinite(record[key]), (key, record[key])
    assert records[-1]["bytes_sent_per_node"] > 0
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert set(REQUIRED_KEYS) <= set(header)
    assert (tmp_path / "metadata.json").exists()


def sweep_combinations(experiment: str) -> list[list[str]]:
    """Every override list the preset's ``hydra.sweeper.params`` expands to (one if none).

    The ``seed`` axis is left out: a seed changes no choice that composes or builds, and
    every study sweeps three, which would triple the cases.
    """
    preset = yaml.safe_load((conf_dir() / "experiment" / f"{experiment}.yaml").read_text())
    params = ((preset.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    axes = [
        [f"{key}={value}" for value in str(values).split(",")]
        for key, values in params.items()
        if key != "seed"
    ]
    return [list(c) for c in itertools.product(*axes)]


COMBINATIONS = [
    (experiment, combination)
    for experiment in EXPERIMENTS
    for combination in sweep_combinations(experiment)
]


def test_sweeps_are_parsed():
    combos = {e: [c for x, c in COMBINATIONS if x == e] for e in EXPERIMENTS}
    assert len(combos["study_algorithms"]) == 6 * 2
    assert ["algorithm=choco", "compression=sign"] in combos["study_compression"]
    assert len(combos["study_privacy"]) == 4 and combos["ring_dsgd_digits"] == [[]]


@pytest.mark.parametrize(("experiment", "combination"), COMBINATIONS, ids=str)
def test_every_sweep_combination_composes_and_builds(experiment, combination):
    """The preset with each combination its sweep lists: schema, algorithm, compressor, W."""
    cfg = compose_config([f"+experiment={experiment}", *combination])
    config = to_config(cfg)
    validate_config(config)
    local = local_update(instantiate_optimizer(cfg), value_and_grad(lambda p, b: jnp.zeros(())))
    algorithm = build_algorithm(config.algorithm.name, local, **algorithm_options(config))
    schedule = build_schedule(
        config.topology, config.mixing, seed=config.seed, requirements=algorithm.requirements
    )
    check_requirements(schedule, algorithm.requirements, algorithm.name)
    for override in combination:
        key, value = override.split("=")
        if key in ("algorithm", "compression", "topology", "byzantine"):
            # The option's own name (topology=exponential_directed is an ``exponential``).
            option = yaml.safe_load((conf_dir() / key / f"{value}.yaml").read_text())
            assert getattr(config, key).name == option["name"]
        else:
            assert str(OmegaConf.select(cfg, key)) == value
