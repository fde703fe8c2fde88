"""Every experiment preset composes, runs two rounds, and writes finite metrics."""

from __future__ import annotations

import math

import pytest

from dfl.cli import instantiate_optimizer, to_config
from dfl.metrics import REQUIRED_KEYS, read_jsonl
from dfl.sim.runner import simulate
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
