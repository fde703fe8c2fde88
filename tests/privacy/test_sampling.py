"""Poisson and fixed-size samplers, the padded size M, and the run's privacy plan."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dfl.config.privacy_schema import PrivacyConfig
from dfl.data.node_data import NodeData
from dfl.privacy import (
    fixed_node_batches,
    plan_privacy,
    poisson_batches,
    poisson_max_batch,
    poisson_node_batches,
    sample_rates,
)

MAX_N = 50


def node_data(counts=(50, 20, 35)) -> NodeData:
    """Row r of node i holds the value 1000·i + r (padding rows: −1), so draws are traceable."""
    n = len(counts)
    x = np.full((n, MAX_N, 1), -1.0, np.float32)
    for i, c in enumerate(counts):
        x[i, :c, 0] = 1000 * i + np.arange(c)
    y = np.where(x[..., 0] >= 0, 1, 0).astype(np.int32)
    return NodeData(jnp.asarray(x), jnp.asarray(y), jnp.asarray(counts, jnp.int32))


def test_poisson_rates_sizes_and_padding():
    data = node_data()
    q, steps, m = 0.2, 3000, 40
    out = poisson_node_batches(
        jax.random.key(0),
        data.x[1],
        data.y[1],
        data.counts[1],
        rate=q,
        max_batch=m,
        local_steps=steps,
    )
    assert out.x.shape == (steps, m, 1) and out.mask.shape == (steps, m)
    mask = np.asarray(out.mask, bool)
    rows = np.asarray(out.x[..., 0])
    assert np.all(rows[mask] >= 1000) and np.all(rows[mask] < 1020)  # real rows of node 1 only
    # No example twice in a batch.
    assert all(len(set(r[mk])) == mk.sum() for r, mk in zip(rows[:200], mask[:200], strict=True))
    # Batch size ~ Binomial(20, 0.2) and every row included with probability q.
    sizes = mask.sum(1)
    assert abs(sizes.mean() - 20 * q) < 4 * math.sqrt(20 * q * (1 - q) / steps)
    freq = np.array([(rows[mask] == 1000 + r).sum() for r in range(20)]) / steps
    assert np.all(np.abs(freq - q) < 5 * math.sqrt(q * (1 - q) / steps))
    assert (
        stats.chisquare(
            np.bincount(sizes, minlength=21), stats.binom.pmf(np.arange(21), 20, q) * steps
        ).pvalue
        > 1e-3
    )
    assert int(out.dropped.sum()) == 0


def test_truncation_is_counted():
    data = node_data()
    out = poisson_node_batches(
        jax.random.key(1),
        data.x[0],
        data.y[0],
        data.counts[0],
        rate=0.5,
        max_batch=5,
        local_steps=50,
    )
    assert np.all(np.asarray(out.mask).sum(1) == 5)
    assert int(out.dropped.min()) > 0  # Binomial(50, 0.5) ≫ 5


def test_max_batch_is_the_binomial_quantile():
    counts, rates = np.array([50, 20, 35]), np.array([0.2, 0.5, 0.1])
    m = poisson_max_batch(counts, rates, tail=1e-6)
    assert max(stats.binom.sf(m, n, q) for n, q in zip(counts, rates, strict=True)) <= 1e-6
    assert max(stats.binom.sf(m - 1, n, q) for n, q in zip(counts, rates, strict=True)) > 1e-6
    np.testing.assert_allclose(sample_rates([10, 40, 5], 8), [0.8, 0.2, 1.0])


def test_stacked_sampler_equals_per_node_fold_in():
    data = node_data()
    rates = jnp.asarray([0.1, 0.3, 0.2])
    key = jax.random.key(4)
    stacked = poisson_batches(key, data, rates=rates, max_batch=30, local_steps=2)
    for i in range(3):
        one = poisson_node_batches(
            jax.random.fold_in(key, i),
            data.x[i],
            data.y[i],
            data.counts[i],
            rate=rates[i],
            max_batch=30,
            local_steps=2,
        )
        for a, b in zip(one, stacked, strict=True):
            np.testing.assert_array_equal(a, b[i])


def test_fixed_size_without_replacement():
    data = node_data()
    out = fixed_node_batches(
        jax.random.key(2), data.x[2], data.y[2], data.counts[2], batch_size=10, local_steps=100
    )
    rows = np.asarray(out.x[..., 0])
    assert np.all(np.asarray(out.mask) == 1)
    assert all(len(set(r)) == 10 for r in rows)
    assert rows.min() >= 2000 and rows.max() < 2035
    small = fixed_node_batches(
        jax.random.key(2), data.x[1], data.y[1], data.counts[1], batch_size=30, local_steps=1
    )
    assert int(small.mask.sum()) == 20  # every real row once, the rest masked out


def test_plan_resolves_rates_sampler_and_epsilon_per_node():
    cfg = PrivacyConfig(enabled=True, noise_multiplier=1.1, delta=1e-5)
    data = node_data()
    plan = plan_privacy(cfg, counts=data.counts, batch_size=5, rounds=20, local_steps=2)
    assert plan.sample_rates == pytest.approx((0.1, 0.25, 5 / 35))
    batches = plan.sample(jax.random.key(0), data)
    assert batches.x.shape == (3, 2, plan.max_batch, 1)
    eps = plan.epsilons(20)
    assert eps[1] == max(eps) == plan.epsilon(20)  # the smallest node spends the most
    assert eps[0] < eps[2] < eps[1]
    assert plan.epsilons(10)[1] < eps[1]


def test_plan_calibrates_to_target_epsilon_for_the_worst_node():
    cfg = PrivacyConfig(enabled=True, target_epsilon=4.0, delta=1e-5)
    plan = plan_privacy(cfg, counts=[200, 50, 100], batch_size=10, rounds=30, local_steps=2)
    assert plan.epsilon(30) <= 4.0
    assert plan.epsilon(30) > 3.9


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sampling": "fixed", "accountant": "pld"}, r"sampling='fixed'.*accountant='pld'"),
        ({"sampling": "shuffle"}, "sampling='shuffle'"),
        ({"l2_clip": 0.0}, "privacy.l2_clip=0.0"),
        ({"delta": 1.0}, "privacy.delta"),
    ],
)
def test_plan_refuses_bad_configs(changes, match):
    cfg = PrivacyConfig(enabled=True, **changes)
    with pytest.raises(ValueError, match=match):
        plan_privacy(cfg, counts=[10, 10], batch_size=2, rounds=1, local_steps=1)
