"""Offline nodes keep their state: the mixer's in-loop select equals a select after the round."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dfl.algorithms import build_algorithm, local_update, value_and_grad
from dfl.config import MixingConfig, TopologyConfig
from dfl.gossip import make_mixer
from dfl.gossip.blocking import mix_rows
from dfl.network.round import combine_keeping, keep_where, mask_sparse, passthrough
from dfl.sim.round import make_round, node_keys
from dfl.topology import build_schedule

N = 8


def loss(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


@pytest.mark.parametrize("block", [None, 4, 8])
def test_mix_rows_keep_is_a_select_of_old_rows(block):
    x = jax.random.normal(jax.random.key(0), (N, 5, 7))  # blocks of 4 along 7: a partial one
    old = jax.random.normal(jax.random.key(1), (N, 5, 7))
    online = jnp.asarray([True, False, True, True, False, False, True, True])

    def mix(v):
        return 0.5 * v + 0.25 * jnp.roll(v, 1, axis=0) + 0.25 * jnp.roll(v, -1, axis=0)

    want = jnp.where(online[:, None, None], mix_rows(x, mix, block), old)
    got = mix_rows(x, mix, block, keep=(online, old))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_passthrough_finds_the_mixed_leaves_combine_keeps():
    atc = build_algorithm("dsgd", local_update(optax.sgd(0.1), value_and_grad(loss)))
    cta = build_algorithm("dsgd", local_update(optax.sgd(0.1), value_and_grad(loss)), order="cta")
    params = {"b": jnp.zeros(2), "w": jnp.zeros((3, 2))}
    state = atc.init(params, jax.random.key(0))
    assert passthrough(atc.combine, state, params) == {0: 0, 1: 1}  # params["b"], ["w"]
    assert passthrough(cta.combine, cta.init(params, jax.random.key(0)), params) == {}


@pytest.mark.parametrize(
    ("name", "options"),
    [("dsgd", {}), ("dsgd", {"order": "cta"}), ("dsgdm", {}), ("dsgd_ef", {})],
)
def test_combine_keeping_equals_keep_where_after_the_round(name, options):
    local = local_update(optax.sgd(0.05, momentum=0.9), value_and_grad(loss))
    algorithm = build_algorithm(name, local, **options)
    schedule = build_schedule(
        TopologyConfig(name="erdos_renyi", n=N, p=0.5),
        MixingConfig(name="metropolis_hastings"),
        seed=0,
    )
    mixer = make_mixer(schedule, form="sparse", block=4)
    params = {"b": jnp.zeros(2), "w": jax.random.normal(jax.random.key(3), (3, 2))}
    state = jax.vmap(algorithm.init, in_axes=(None, 0))(params, node_keys(jax.random.key(1), N))
    kx, ky = jax.random.split(jax.random.key(2))
    batches = (jax.random.normal(kx, (N, 2, 4, 3)), jax.random.normal(ky, (N, 2, 4, 2)))
    rng = np.random.default_rng(0)
    base = jax.jit(make_round(algorithm, mixer))
    fused = jax.jit(lambda s, b, d, k, on: combine_keeping(algorithm, mixer, s, b, d, k, on))
    for t in range(3):
        online = jnp.asarray(rng.uniform(size=N) < 0.6)
        delivered = jnp.asarray(rng.uniform(size=(N, N)) < 0.7) & online[:, None] & online[None]
        data = mask_sparse(mixer.data(t), delivered)
        key = jax.random.key(10 + t)
        new, info = base(state, batches, data, key)
        want = keep_where(online, new, state)
        got, got_info = fused(state, batches, data, key, online)
        jax.tree.map(
            lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), got, want
        )
        np.testing.assert_array_equal(np.asarray(got_info["loss"]), np.asarray(info["loss"]))
        assert not np.array_equal(
            np.asarray(jax.tree.leaves(want)[-1]), np.asarray(jax.tree.leaves(state)[-1])
        )
        state = want
