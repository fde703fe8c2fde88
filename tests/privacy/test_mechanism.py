"""Clipping, the noise scale (KS tests), independence across nodes, message noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from dfl.algorithms.dsgd import dsgd
from dfl.algorithms.local import local_update
from dfl.privacy import (
    add_dp_noise,
    add_message_noise,
    clip_factors,
    dp_grad_fn,
    gaussian_like,
    per_example_grads,
    private_grad_fn,
)
from dfl.sim.round import make_round, node_keys


def linear_loss(params, batch):
    """Mean of ⟨w, x_e⟩ + b: example e's gradient is exactly (x_e, 1)."""
    x, y = batch
    return jnp.mean(x @ params["w"] + params["b"] + 0.0 * y)


def mlp_loss(params, batch):
    x, y = batch
    h = jnp.tanh(x @ params["w1"])
    logits = h @ params["w2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def test_clipped_sum_matches_hand_computation_and_honours_the_mask():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4)) * np.array([[0.1], [3.0], [0.5], [10.0], [1.0], [7.0]])
    mask = np.array([1, 1, 0, 1, 1, 0], np.float32)
    params = {"w": jnp.zeros(4), "b": jnp.zeros(())}
    clip = 2.0
    loss, g = jax.jit(dp_grad_fn(linear_loss, l2_clip=clip))(
        params,
        (jnp.asarray(x, jnp.float32), jnp.zeros(6, jnp.int32), jnp.asarray(mask)),
        jax.random.key(0),
    )
    per = np.concatenate([x, np.ones((6, 1))], axis=1)  # (x_e, 1)
    factor = np.minimum(1.0, clip / np.linalg.norm(per, axis=1))
    want = (per * (factor * mask)[:, None]).sum(0)
    np.testing.assert_allclose(np.append(g["w"], g["b"]), want, rtol=1e-5)
    assert float(loss) == pytest.approx(0.0)


def test_clipping_bounds_every_per_example_norm():
    rng = np.random.default_rng(1)
    params = {
        "w1": jnp.asarray(rng.normal(size=(5, 16)) * 3, jnp.float32),
        "w2": jnp.asarray(rng.normal(size=(16, 3)) * 3, jnp.float32),
    }
    x = jnp.asarray(rng.normal(size=(32, 5)) * 4, jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=32), jnp.int32)
    _, grads = jax.jit(per_example_grads, static_argnums=0)(mlp_loss, params, x, y)
    factors, norms = jax.jit(clip_factors, static_argnums=1)(grads, 0.5)
    assert float(norms.max()) > 0.5  # clipping is active
    np.testing.assert_array_less(np.asarray(factors * norms), 0.5 * (1 + 1e-5))
    # One example at a time: the clipped gradient itself has norm ≤ C.
    grad_fn = jax.jit(dp_grad_fn(mlp_loss, l2_clip=0.5))
    for e in range(4):
        _, g = grad_fn(params, (x[e : e + 1], y[e : e + 1]), jax.random.key(0))
        assert float(optax.tree.norm(g)) <= 0.5 * (1 + 1e-5)


def test_per_example_vmap_inside_node_vmap():
    rng = np.random.default_rng(2)
    n, m = 3, 8
    params = {
        "w1": jnp.asarray(rng.normal(size=(n, 5, 16)), jnp.float32),
        "w2": jnp.asarray(rng.normal(size=(n, 16, 3)), jnp.float32),
    }
    x = jnp.asarray(rng.normal(size=(n, m, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=(n, m)), jnp.int32)
    mask = jnp.asarray(rng.integers(0, 2, size=(n, m)), jnp.float32)
    grad_fn = jax.jit(dp_grad_fn(mlp_loss, l2_clip=0.3))
    _, batched = jax.jit(jax.vmap(grad_fn, in_axes=(0, 0, None)))(
        params, (x, y, mask), jax.random.key(0)
    )
    for i in range(n):
        p_i = {k: v[i] for k, v in params.items()}
        _, g = grad_fn(p_i, (x[i], y[i], mask[i]), jax.random.key(0))
        np.testing.assert_allclose(g["w1"], batched["w1"][i], rtol=1e-4, atol=1e-6)


SIGMA, CLIP, BATCH, D = 1.3, 0.7, 16.0, 20000


def test_noise_scale_ks_accepts_sigma_and_rejects_wrong_ones():
    """(Σ clipped + N(0, σ²C²)) / B on a zero sum is N(0, (σC/B)²), and nothing else."""
    noise = add_dp_noise(SIGMA, CLIP, BATCH, jax.random.key(5))
    zeros = {"a": jnp.zeros(D // 2), "b": jnp.zeros((D // 4, 2))}
    out, state = jax.jit(noise.update)(zeros, noise.init(zeros))
    samples = np.concatenate([np.ravel(v) for v in jax.tree.leaves(out)])
    std = SIGMA * CLIP / BATCH
    assert stats.kstest(samples, "norm", args=(0, std)).pvalue > 0.01
    assert stats.kstest(samples, "norm", args=(0, 0.8 * std)).pvalue < 1e-6
    assert stats.kstest(samples, "norm", args=(0, 1.25 * std)).pvalue < 1e-6
    # A second step draws fresh noise.
    again, state = noise.update(zeros, state)
    assert int(state.count) == 2
    assert not np.allclose(again["a"], out["a"])


def test_nodes_draw_independent_noise_through_the_algorithm():
    """D-SGD with the private grad_fn, a flat loss and W = I: each node's update is its
    own noise. vmapped nodes must get independent N(0, (σC/B)²) draws."""
    n, d = 4, 5000
    flat = lambda params, batch: 0.0 * jnp.sum(params["x"]) + 0.0 * jnp.sum(batch[0])  # noqa: E731
    grad_fn = private_grad_fn(flat, l2_clip=CLIP, noise_multiplier=SIGMA, expected_batch_size=BATCH)
    algo = dsgd(local_update(optax.sgd(1.0), grad_fn))
    state = jax.vmap(algo.init)({"x": jnp.zeros((n, d))}, node_keys(jax.random.key(0), n))
    batches = (jnp.zeros((n, 1, 3, 2)), jnp.zeros((n, 1, 3), jnp.int32), jnp.ones((n, 1, 3)))
    state, _ = jax.jit(make_round(algo, None))(state, batches, None, jax.random.key(9))
    updates = -np.asarray(state.params["x"], np.float64)
    std = SIGMA * CLIP / BATCH
    for i in range(n):
        assert stats.kstest(updates[i], "norm", args=(0, std)).pvalue > 0.001
    corr = np.corrcoef(updates)
    off = corr[~np.eye(n, dtype=bool)]
    assert np.all(np.abs(off) < 4 / np.sqrt(d))  # uncorrelated (not one shared draw)


def test_message_noise():
    msg = {"w": jnp.ones((200, 50))}
    assert add_message_noise(msg, jax.random.key(0), 0.0) is msg
    noisy = add_message_noise(msg, jax.random.key(0), 0.3)
    residual = np.ravel(noisy["w"] - 1.0)
    assert stats.kstest(residual, "norm", args=(0, 0.3)).pvalue > 0.01
    assert stats.kstest(residual, "norm", args=(0, 0.24)).pvalue < 1e-6
    other = add_message_noise(msg, jax.random.key(1), 0.3)
    assert not np.allclose(other["w"], noisy["w"])
    with pytest.raises(ValueError, match="before compressing"):
        add_message_noise({"levels": jnp.zeros(4, jnp.int8)}, jax.random.key(0), 0.1)


def test_gaussian_like_draws_every_leaf_apart_in_its_dtype():
    tree = {"a": jnp.zeros(4000), "b": jnp.zeros(4000), "h": jnp.zeros((50, 40), jnp.bfloat16)}
    key = jax.random.key(3)
    noise = gaussian_like(tree, key, 0.5)
    first = 0.5 * jax.random.normal(jax.random.fold_in(key, 0), (4000,))  # leaf "a"
    np.testing.assert_array_equal(noise["a"], first)  # the stream runs have always drawn
    assert jax.tree.map(lambda x: (x.shape, x.dtype), noise) == jax.tree.map(
        lambda x: (x.shape, x.dtype), tree
    )
    a, b = np.asarray(noise["a"]), np.asarray(noise["b"])
    corr = np.mean((a - a.mean()) * (b - b.mean())) / (a.std() * b.std())
    assert abs(corr) < 4 / np.sqrt(a.size)  # not one draw reused per leaf
    for leaf in (a, b, np.asarray(noise["h"], np.float32).ravel()):
        assert stats.kstest(leaf, "norm", args=(0, 0.5)).pvalue > 0.001
