"""Tests of NodeData stacking and the fold_in batch samplers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.data import (
    NodeData,
    node_slice,
    sample_batches,
    sample_node_batches,
    stack_partitions,
)

SENTINEL = -1.0


def _node_data() -> tuple[NodeData, list[np.ndarray], np.ndarray]:
    n = 11
    x = (np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)) + 1.0  # rows >= 1
    y = np.arange(n, dtype=np.int32) % 4
    parts = [np.array([3]), np.array([0, 5, 9]), np.array([1, 2, 4, 6, 7, 8, 10])]
    return stack_partitions(x, y, parts, pad_value=SENTINEL), parts, x


def test_stack_partitions_exact() -> None:
    nd, _, x = _node_data()
    assert nd.x.shape == (3, 7, 3) and nd.y.shape == (3, 7) and nd.counts.shape == (3,)
    assert nd.x.dtype == jnp.float32 and nd.y.dtype == jnp.int32 and nd.counts.dtype == jnp.int32
    np.testing.assert_array_equal(nd.counts, [1, 3, 7])
    np.testing.assert_array_equal(nd.x[1, :3], x[[0, 5, 9]])
    np.testing.assert_array_equal(nd.x[1, 3:], SENTINEL)
    np.testing.assert_array_equal(nd.y[1], [0, 1, 1, 0, 0, 0, 0])
    one = node_slice(nd, 1)
    assert one.x.shape == (7, 3) and int(one.counts) == 3
    with pytest.raises(ValueError, match=r"node id must lie in \[0, 3\), found 3"):
        node_slice(nd, 3)


def test_sample_batches_equals_per_node_sampler_with_fold_in() -> None:
    nd, _, _ = _node_data()
    key = jax.random.key(42)
    xb, yb = sample_batches(key, nd, batch_size=5, local_steps=4)
    assert xb.shape == (3, 4, 5, 3) and yb.shape == (3, 4, 5)
    for i in range(3):
        mine = node_slice(nd, i)
        xi, yi = sample_node_batches(jax.random.fold_in(key, i), *mine, batch_size=5, local_steps=4)
        np.testing.assert_array_equal(xb[i], xi)
        np.testing.assert_array_equal(yb[i], yi)
        # the un-jitted per-node path with a Python int count gives the same draw
        xj, _ = sample_node_batches.__wrapped__(
            jax.random.fold_in(key, i),
            mine.x,
            mine.y,
            int(mine.counts),
            batch_size=5,
            local_steps=4,
        )
        np.testing.assert_array_equal(xb[i], xj)


def test_padding_never_sampled_and_rows_are_own() -> None:
    nd, parts, x = _node_data()
    xb, _ = sample_batches(jax.random.key(0), nd, batch_size=64, local_steps=50)
    assert not np.any(np.asarray(xb) == SENTINEL)
    for i, p in enumerate(parts):
        drawn = np.unique(np.asarray(xb[i, ..., 0]))
        assert set(drawn.tolist()) <= set(x[p, 0].tolist())
    # the single-row node only ever sees its row
    np.testing.assert_array_equal(xb[0], np.broadcast_to(x[3], (50, 64, 3)))
    # the 7-row node sees all of its rows, roughly uniformly (3,200 draws, p = 1/7)
    _, freq = np.unique(np.asarray(xb[2, ..., 0]), return_counts=True)
    assert freq.size == 7
    assert np.all(np.abs(freq / freq.sum() - 1 / 7) < 0.03)


def test_keys_matter() -> None:
    nd, _, _ = _node_data()
    a = sample_batches(jax.random.key(0), nd, batch_size=8, local_steps=2)[1]
    b = sample_batches(jax.random.key(0), nd, batch_size=8, local_steps=2)[1]
    c = sample_batches(jax.random.key(1), nd, batch_size=8, local_steps=2)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[2], c[2])
    # nodes with the same data still draw different batches (fold_in by node id)
    same = stack_partitions(
        np.arange(20, dtype=np.float32)[:, None], np.zeros(20), [np.arange(10), np.arange(10)]
    )
    xs, _ = sample_batches(jax.random.key(0), same, batch_size=8, local_steps=2)
    assert not np.array_equal(xs[0], xs[1])
