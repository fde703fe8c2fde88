"""Tests of prepare / from_config, the local test split and the DataConfig presets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from dfl.config.choices import Partition
from dfl.config.data_schema import DataConfig
from dfl.data import DATASET_NAMES, from_config, load_dataset, prepare, split_local_test

CONF = Path(__file__).resolve().parents[2] / "conf" / "data"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_prepare_iid(digits) -> None:
    fed = prepare(digits, num_nodes=8, scheme="iid", seed=0)
    assert fed.num_nodes == 8 and fed.feature_shape == (8, 8, 1) and fed.num_classes == 10
    assert sum(fed.summary["counts"]) == digits.y_train.size
    np.testing.assert_array_equal(fed.train.counts, fed.summary["counts"])
    assert fed.train.x.shape == (8, max(fed.summary["counts"]), 8, 8, 1)
    assert fed.local_test is None and fed.summary["local_test_counts"] is None
    assert fed.test_x.shape == digits.x_test.shape
    np.testing.assert_array_equal(
        fed.train.x[3, : fed.summary["counts"][3]], digits.x_train[fed.parts[3]]
    )


def test_split_local_test_exact() -> None:
    parts = [np.arange(10), np.array([20]), np.arange(30, 35)]
    tr, te = split_local_test(parts, 0.2, seed=0)
    assert [p.size for p in te] == [2, 0, 1] and [p.size for p in tr] == [8, 1, 4]
    for p, a, b in zip(parts, tr, te, strict=True):
        assert np.intersect1d(a, b).size == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([a, b])), p)
    with pytest.raises(ValueError, match=r"local_test_fraction must lie in \[0, 1\), found 1\.0"):
        split_local_test(parts, 1.0, seed=0)


def test_prepare_with_local_test(digits) -> None:
    fed = prepare(
        digits,
        num_nodes=4,
        scheme="dirichlet",
        seed=1,
        alpha=0.5,
        min_size=10,
        local_test_fraction=0.25,
    )
    assert fed.local_test is not None
    local = fed.summary["local_test_counts"]
    np.testing.assert_array_equal(fed.local_test.counts, local)
    assert sum(fed.summary["counts"]) + sum(local) == digits.y_train.size
    with pytest.raises(ValueError, match="natural partition needs per-sample groups"):
        prepare(digits, num_nodes=4, scheme="natural", seed=0)


def test_from_config_maps_fields(digits) -> None:
    cfg = DataConfig(name="digits", partition=Partition.shards, classes_per_node=3, seed=0)
    fed = from_config(cfg, num_nodes=5, seed=99)  # cfg.seed overrides the run seed
    direct = prepare(digits, num_nodes=5, scheme="shards", seed=0, classes_per_node=3)
    for a, b in zip(fed.parts, direct.parts, strict=True):
        np.testing.assert_array_equal(a, b)
    assert max(fed.summary["classes_per_node"]) <= 3
    syn = from_config(
        DataConfig(name="synthetic", partition=Partition.natural, samples_per_device=10),
        num_nodes=4,
        seed=0,
    )
    assert syn.num_nodes == 4 and syn.summary["counts"] == [8, 8, 8, 8]
    # a composed DictConfig works like the dataclass
    dcfg = OmegaConf.merge(
        OmegaConf.structured(DataConfig),
        {"name": "digits", "seed": 0, "partition": "shards", "classes_per_node": 3},
    )
    for a, b in zip(from_config(dcfg, num_nodes=5, seed=1).parts, direct.parts, strict=True):
        np.testing.assert_array_equal(a, b)


def test_yaml_presets_match_schema() -> None:
    fields = {f.name: f for f in dataclasses.fields(DataConfig)}
    names = set()
    for f in sorted(CONF.glob("*.yaml")):
        text = f.read_text()
        assert text.startswith("#"), f"{f.name} must start with a comment line"
        body = yaml.safe_load(text)
        assert set(body) <= set(fields), f"{f.name}: unknown keys {set(body) - set(fields)}"
        assert body["name"] == f.stem
        DataConfig(**body)
        OmegaConf.merge(OmegaConf.structured(DataConfig), body)  # types match the schema
        names.add(body["name"])
    assert names == set(DATASET_NAMES)
    for name, field in fields.items():
        assert field.default is not dataclasses.MISSING, name
        assert f"  {name}:" in DataConfig.__doc__, f"{name} undocumented"
