"""Tests of dfl.data.partition: coverage, sizes, skew, shards, natural groups, errors."""

from __future__ import annotations

import numpy as np
import pytest

from dfl.data import partition, partition_summary

LABELS = np.repeat(np.arange(10), 60)  # 600 samples, 60 per class
COVERING = ["iid", "dirichlet", "shards"]


def _check_cover(parts: list[np.ndarray], n: int) -> None:
    allidx = np.concatenate(parts)
    assert allidx.size == n  # disjoint and ...
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))  # ... covering


@pytest.mark.parametrize("scheme", COVERING)
def test_disjoint_and_covering(scheme: str) -> None:
    parts = partition(LABELS, 7, scheme, seed=0, alpha=0.5, classes_per_node=2)
    assert len(parts) == 7
    _check_cover(parts, LABELS.size)
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)  # sorted, no duplicates


def test_iid_sizes_exact() -> None:
    parts = partition(np.zeros(10, dtype=int), 3, "iid", seed=1)
    assert sorted(p.size for p in parts) == [3, 3, 4]
    parts = partition(LABELS, 7, "iid", seed=1)
    sizes = [p.size for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 600


@pytest.mark.parametrize("scheme", COVERING)
def test_deterministic_and_seed_dependent(scheme: str) -> None:
    a = partition(LABELS, 5, scheme, seed=3)
    b = partition(LABELS, 5, scheme, seed=3)
    c = partition(LABELS, 5, scheme, seed=4)
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert any(not np.array_equal(pa, pc) for pa, pc in zip(a, c, strict=True))


def _mean_max_class_fraction(parts: list[np.ndarray]) -> float:
    hist = np.array(partition_summary(parts, LABELS, 10)["class_counts"], dtype=float)
    return float(np.mean(hist.max(axis=1) / hist.sum(axis=1)))


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    skewed = np.mean(
        [
            _mean_max_class_fraction(partition(LABELS, 10, "dirichlet", seed=s, alpha=0.05))
            for s in range(3)
        ]
    )
    flat = np.mean(
        [
            _mean_max_class_fraction(partition(LABELS, 10, "dirichlet", seed=s, alpha=1000.0))
            for s in range(3)
        ]
    )
    # IID would give about 0.1 + noise; one class per node gives 1.
    assert skewed > 0.6
    assert flat < 0.2


def test_dirichlet_min_size_respected_and_error_when_impossible() -> None:
    parts = partition(LABELS, 10, "dirichlet", seed=0, alpha=0.3, min_size=20)
    assert min(p.size for p in parts) >= 20
    labels = np.repeat([0, 1], 50)
    with pytest.raises(ValueError, match=r"alpha=0.01.*min_size=19.*in 5 draws"):
        partition(labels, 5, "dirichlet", seed=0, alpha=0.01, min_size=19, max_tries=5)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        partition(labels, 5, "dirichlet", seed=0, alpha=0.0)


@pytest.mark.parametrize("cpn", [1, 2, 3])
def test_shards_at_most_classes_per_node(cpn: int) -> None:
    parts = partition(LABELS, 10, "shards", seed=0, classes_per_node=cpn)
    summary = partition_summary(parts, LABELS, 10)
    assert max(summary["classes_per_node"]) <= cpn
    _check_cover(parts, LABELS.size)


def test_shards_exact_small_case() -> None:
    # 4 classes of 5: 4 nodes x 1 shard -> each node holds exactly one whole class.
    labels = np.repeat(np.arange(4), 5)
    parts = partition(labels, 4, "shards", seed=7, classes_per_node=1)
    classes = sorted(int(np.unique(labels[p]).item()) for p in parts)
    assert classes == [0, 1, 2, 3]
    assert [p.size for p in parts] == [5, 5, 5, 5]
    # Sizes 10 and 2, 3 shards: class 0 gets two shards of 5, class 1 one of 2.
    labels = np.array([0] * 10 + [1] * 2)
    parts = partition(labels, 3, "shards", seed=0, classes_per_node=1)
    assert sorted(p.size for p in parts) == [2, 5, 5]
    assert all(np.unique(labels[p]).size == 1 for p in parts)


def test_shards_too_few_shards_for_classes() -> None:
    with pytest.raises(ValueError, match=r"num_nodes \* classes_per_node >= 10"):
        partition(LABELS, 4, "shards", seed=0, classes_per_node=2)


def test_natural_groups() -> None:
    labels = np.array([0, 1, 0, 1, 0])
    groups = np.array([2, 0, 1, 0, 2])
    parts = partition(labels, 3, "natural", seed=0, groups=groups)
    assert [p.tolist() for p in parts] == [[1, 3], [2], [0, 4]]
    with pytest.raises(ValueError, match="found 3 groups for num_nodes=4"):
        partition(labels, 4, "natural", seed=0, groups=groups)
    with pytest.raises(ValueError, match="groups=None"):
        partition(labels, 3, "natural", seed=0)


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown partition scheme 'bogus'.*'iid'"):
        partition(LABELS, 3, "bogus", seed=0)
    with pytest.raises(ValueError, match="cannot give 11 nodes"):
        partition(np.zeros(10, dtype=int), 11, "iid", seed=0)
    with pytest.raises(ValueError, match="num_nodes must be a positive integer, found 0"):
        partition(LABELS, 0, "iid", seed=0)


def test_partition_summary_exact() -> None:
    s = partition_summary([np.array([0, 1]), np.array([2])], np.array([0, 1, 1]), 3)
    assert s["counts"] == [2, 1]
    assert s["class_counts"] == [[1, 1, 0], [0, 1, 0]]
    assert s["classes_per_node"] == [2, 1]
    assert (s["min"], s["max"], s["mean"]) == (1, 2, 1.5)
