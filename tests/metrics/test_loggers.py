"""``logger=tensorboard|wandb``: the files they write hold exactly the records of metrics.jsonl.

The files are read back with readers written from the formats' specs
(``tests/metrics/log_files.py``, every checksum checked), never with the writers' code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfl.config.logger_schema import LoggerConfig, LoggerName
from dfl.metrics.loggers import open_logger, scalars
from dfl.metrics.writer import MetricsWriter, continue_metrics, read_jsonl
from tests.metrics.log_files import read_tensorboard, read_wandb

TENSORBOARD = LoggerConfig(name=LoggerName.tensorboard)
WANDB = LoggerConfig(name=LoggerName.wandb, project="dfl-test")


def fake_records(rounds=(2, 4, 6), shift: float = 0.0) -> list[dict]:
    """Records with every kind of value a real one has: floats, ints, lists, None, NaN."""
    return [
        {
            "round": r,
            "wall_time": 0.1 * r,
            "train_loss": 1.0 / r + shift,
            "test_accuracy_mean": 0.5 + 0.01 * r + shift,
            "test_accuracy_avg_model": None,
            "bytes_sent_per_node": 1000 * r,
            "epsilon_per_node": [1.0, 2.0],
            "consensus_distance": float("nan") if r == 4 else 1e-3 * r,
        }
        for r in rounds
    ]


def expected(workdir) -> dict[str, dict[int, float]]:
    """``{key: {round: value}}`` of the numeric scalars in ``workdir/metrics.jsonl``."""
    out: dict[str, dict[int, float]] = {}
    for record in read_jsonl(workdir / "metrics.jsonl"):
        for key, value in scalars(record).items():
            out.setdefault(key, {})[record["round"]] = value
    return out


def assert_same(got: dict[str, dict[int, float]], want: dict[str, dict[int, float]], cast):
    assert sorted(got) == sorted(want)
    for key in want:
        assert sorted(got[key]) == sorted(want[key]), key
        for step, value in want[key].items():
            if math.isnan(value):
                assert math.isnan(got[key][step]), (key, step)
            else:
                assert got[key][step] == cast(value), (key, step, got[key][step], value)


def test_scalars_keep_numbers_and_restore_non_finite_floats():
    got = scalars({"round": 4, "a": 1, "b": "nan", "c": "-inf", "d": True, "e": [1.0], "f": "x"})
    assert list(got) == ["a", "b", "c"]
    assert got["a"] == 1.0 and math.isnan(got["b"]) and got["c"] == -math.inf


def test_no_logger_opens_nothing(tmp_path):
    assert open_logger(None, tmp_path) is None
    assert open_logger(LoggerConfig(), tmp_path) is None
    with MetricsWriter(tmp_path) as writer:
        writer.write(fake_records()[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "metrics.jsonl"]


def test_an_unknown_logger_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"logger.name='mlflow'.*none, tensorboard, wandb"):
        open_logger(LoggerConfig(name="mlflow"), tmp_path)  # pyright: ignore[reportArgumentType]


def test_tensorboard_event_file_holds_the_metrics_jsonl_records(tmp_path):
    with MetricsWriter(tmp_path, logger=TENSORBOARD) as writer:
        for record in fake_records():
            writer.write(record)
    got = read_tensorboard(tmp_path / "tensorboard")
    want = expected(tmp_path)
    assert set(want) == {
        "wall_time",
        "train_loss",
        "test_accuracy_mean",
        "bytes_sent_per_node",
        "consensus_distance",
    }
    assert_same(got, want, np.float32)  # TensorBoard stores simple_value as float32
    assert got["train_loss"][4] == np.float32(0.25)


def test_a_resumed_run_hides_the_tensorboard_steps_metrics_jsonl_dropped(tmp_path):
    with MetricsWriter(tmp_path, logger=TENSORBOARD) as writer:
        for record in fake_records((2, 4, 6, 8)):
            writer.write(record)
    continue_metrics(tmp_path, 4)  # the checkpoint was at round 4: rounds 5.. run again
    with MetricsWriter(tmp_path, append=True, logger=TENSORBOARD) as writer:
        for record in fake_records((6, 8), shift=10.0):
            writer.write(record)
    got = read_tensorboard(tmp_path / "tensorboard")
    assert got["train_loss"] == {2: 0.5, 4: 0.25, 6: np.float32(1 / 6 + 10), 8: 10.125}
    assert_same(got, expected(tmp_path), np.float32)


def test_wandb_offline_run_holds_the_metrics_jsonl_records_and_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")  # offline all the same: the logger forces it
    (tmp_path / "config_resolved.yaml").write_text("seed: 3\ntopology:\n  n: 4\n")
    with MetricsWriter(tmp_path, logger=WANDB) as writer:
        for record in fake_records():
            writer.write(record)
    rows, config = read_wandb(tmp_path)
    got: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if not key.startswith("_"):
                got.setdefault(key, {})[row["_step"]] = float(value)
    assert_same(got, expected(tmp_path), float)  # JSON doubles: exact
    assert config["seed"] == 3 and config["topology"] == {"n": 4}
    assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 1


def test_the_simulations_records_reach_the_logger(tmp_path):
    from dfl.sim.runner import simulate
    from tests.node.common import compose_config

    cfg, opt = compose_config(
        "rounds=4", "eval_every=2", "logger=tensorboard", "sim.progress=false"
    )
    assert cfg.logger.name == "tensorboard"
    simulate(cfg, opt, workdir=tmp_path / "sim")
    sim = expected(tmp_path / "sim")
    assert sorted(sim["train_loss"]) == [2, 4]
    assert_same(read_tensorboard(tmp_path / "sim" / "tensorboard"), sim, np.float32)


@pytest.mark.slow  # ~10 s: four nodes compile their step and combine
def test_a_deployments_combined_records_reach_the_logger(tmp_path):
    from dfl.node import run_loopback
    from tests.node.common import compose_config

    cfg, opt = compose_config("rounds=4", "eval_every=2", "logger=wandb")
    run_loopback(cfg, opt, workdir=tmp_path / "deploy")
    deployed = expected(tmp_path / "deploy")
    assert sorted(deployed["bytes_received_per_node"]) == [2, 4]  # the combined records
    rows, _ = read_wandb(tmp_path / "deploy")
    got: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if not key.startswith("_"):
                got.setdefault(key, {})[row["_step"]] = float(value)
    assert_same(got, deployed, float)
    assert not list((tmp_path / "deploy" / "nodes").glob("*/wandb"))  # nodes' own: files only


def test_a_resumed_run_is_a_second_offline_wandb_run_of_the_same_id(tmp_path):
    with MetricsWriter(tmp_path, logger=WANDB) as writer:
        for record in fake_records((2, 4, 6)):
            writer.write(record)
    continue_metrics(tmp_path, 4)
    with MetricsWriter(tmp_path, append=True, logger=WANDB) as writer:
        writer.write(fake_records((6,), shift=10.0)[0])
    runs = sorted(tmp_path.glob("wandb/offline-run-*"))
    ids = {f.name for r in runs for f in r.glob("run-*.wandb")}  # run-ID.wandb
    assert len(runs) == 2 and len(ids) == 1, (runs, ids)
    rows, _ = read_wandb(tmp_path)  # W&B has no purge: the first attempt's round 6 stays
    assert [(r["_step"], r["train_loss"]) for r in rows] == [
        (2, 0.5),
        (4, 0.25),
        (6, 1 / 6),
        (6, 1 / 6 + 10.0),
    ]
