"""Tests of Synthetic(α, β)."""

from __future__ import annotations

import numpy as np
import pytest

from dfl.data import load_dataset, partition, partition_summary, prepare


def test_shapes_groups_and_split_sizes() -> None:
    ds = load_dataset("synthetic", seed=0, num_devices=5, samples_per_device=50)
    assert ds.feature_shape == (60,) and ds.num_classes == 10
    assert ds.x_train.shape == (200, 60) and ds.x_test.shape == (50, 60)
    assert ds.train_groups is not None
    np.testing.assert_array_equal(np.bincount(ds.train_groups), [40] * 5)
    again = load_dataset("synthetic", seed=0, num_devices=5, samples_per_device=50)
    other = load_dataset("synthetic", seed=1, num_devices=5, samples_per_device=50)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    assert not np.array_equal(ds.x_train, other.x_train)


def test_lognormal_sizes_at_least_50() -> None:
    ds = load_dataset("synthetic", seed=3, num_devices=8)
    sizes = np.bincount(ds.train_groups, minlength=8)
    # every device has >= 50 samples, of which round(0.2 n) <= 0.2 n + 0.5 are held out
    assert sizes.min() >= 40
    assert sizes.max() > sizes.min()  # sizes vary


def test_feature_covariance_is_j_pow_minus_1_2() -> None:
    ds = load_dataset(
        "synthetic", seed=0, num_devices=1, samples_per_device=4000, test_fraction=0.1
    )
    var = ds.x_train.var(axis=0)
    expected = np.arange(1, 61, dtype=float) ** -1.2
    np.testing.assert_allclose(var, expected, rtol=0.15)


def test_natural_split_is_non_iid() -> None:
    ds = load_dataset("synthetic", seed=0, num_devices=10, samples_per_device=200)

    def mean_tv(parts: list[np.ndarray]) -> float:
        hist = np.array(partition_summary(parts, ds.y_train, 10)["class_counts"], float)
        p = hist / hist.sum(axis=1, keepdims=True)
        glob = np.bincount(ds.y_train, minlength=10) / ds.y_train.size
        return float(np.mean(0.5 * np.abs(p - glob).sum(axis=1)))

    natural = partition(ds.y_train, 10, "natural", seed=0, groups=ds.train_groups)
    iid = partition(ds.y_train, 10, "iid", seed=0)
    assert mean_tv(natural) > 0.4
    assert mean_tv(iid) < 0.15


def test_natural_needs_matching_devices_and_groups() -> None:
    ds = load_dataset("synthetic", seed=0, num_devices=3, samples_per_device=20)
    fed = prepare(ds, num_nodes=3, scheme="natural", seed=0)
    assert fed.summary["counts"] == [16, 16, 16]
    with pytest.raises(ValueError, match="found 3 groups for num_nodes=4"):
        prepare(ds, num_nodes=4, scheme="natural", seed=0)
    with pytest.raises(ValueError, match="alpha and beta must be >= 0"):
        load_dataset("synthetic", seed=0, alpha=-1.0)
