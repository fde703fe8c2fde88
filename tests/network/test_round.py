"""The network round's sparse mask renormalises as the dense mixer does."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dfl.config import MixingConfig, TopologyConfig
from dfl.gossip import make_mixer
from dfl.gossip.dense import DenseMixer
from dfl.network.round import adjacency_of, mask_sparse
from dfl.topology import build_schedule


def test_sparse_mask_equals_dense_renormalize():
    schedule = build_schedule(
        TopologyConfig(name="erdos_renyi", n=12, p=0.4),
        MixingConfig(name="metropolis_hastings"),
        seed=0,
    )
    dense, sparse = DenseMixer(schedule), make_mixer(schedule, form="sparse")
    W = np.asarray(schedule.weights(0))
    delivered = jnp.asarray(np.random.default_rng(1).uniform(size=W.shape) < 0.6)
    x = {"a": jax.random.normal(jax.random.key(0), (12, 5))}
    want = dense.apply(x, dense.data(0), delivered=delivered)
    got = sparse.apply(x, mask_sparse(sparse.data(0), delivered))
    np.testing.assert_allclose(np.asarray(got["a"]), np.asarray(want["a"]), rtol=1e-5, atol=1e-6)
    off = (W != 0) & ~np.eye(12, dtype=bool)
    for data, form in ((dense.data(0), "dense"), (sparse.data(0), "sparse")):
        a = np.asarray(adjacency_of(form, data, 12)) & ~np.eye(12, dtype=bool)
        np.testing.assert_array_equal(a, off)
