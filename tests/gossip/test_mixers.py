"""Every mixer form equals the dense product; data never recompiles; auto picks by structure."""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from dfl.config.topology_schema import MixingConfig, TopologyConfig
from dfl.gossip import DenseMixer, choose_form, make_mixer
from dfl.gossip.blocking import MAX_BLOCK, MIN_BLOCK, resolve_block
from dfl.topology import build_schedule
from dfl.topology.mixing import metropolis_hastings
from dfl.topology.schedule import GraphSchedule, MixingSchedule
from tests.topology.graphs import connected_graphs

CASES = [
    ("ring", "metropolis_hastings", {"n": 16}, "circulant"),
    ("exponential", "metropolis_hastings", {"n": 64}, "circulant"),
    ("exponential", "column_stochastic", {"n": 40, "directed": True}, "circulant"),
    ("one_peer_exponential", "graph_defined", {"n": 16}, "circulant"),
    ("one_peer_exponential", "graph_defined", {"n": 12}, "circulant"),
    ("base_k", "graph_defined", {"n": 12, "k": 1}, "permutation"),
    ("base_k", "graph_defined", {"n": 30, "k": 3}, "sparse"),
    ("random_matching", "graph_defined", {"n": 15}, "permutation"),
    ("torus", "metropolis_hastings", {"n": 36}, "sparse"),
    ("erdos_renyi", "uniform", {"n": 40, "p": 0.08}, "sparse"),
    ("complete", "uniform", {"n": 8}, "dense"),
    ("star", "column_stochastic", {"n": 9}, "dense"),
    ("star", "metropolis_hastings", {"n": 64}, "segment"),
]


def schedule(name, rule, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_schedule(TopologyConfig(name, **kw), MixingConfig(rule), seed=0)


def tree(n: int, seed: int = 0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return {
        "w": jax.random.normal(k1, (n, 5, 3)),
        "b": jax.random.normal(k2, (n,)),
        "h": jax.random.normal(k3, (n, 4)).astype(jnp.bfloat16),
    }


def expected(W: np.ndarray, t):
    return jax.tree.map(lambda x: np.tensordot(W, np.asarray(x, dtype=np.float64), axes=(1, 0)), t)


def assert_close(got, want):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        tol = 2e-2 if g.dtype == jnp.bfloat16 else 1e-5
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, rtol=tol, atol=tol)


@pytest.mark.parametrize(("name", "rule", "kw", "form"), CASES)
def test_auto_form_matches_dense_and_never_recompiles(name, rule, kw, form):
    s = schedule(name, rule, **kw)
    assert choose_form(s) == form
    mixer = make_mixer(s)
    assert mixer.form == form
    traces = []

    @jax.jit
    def step(x, data):
        traces.append(1)
        return mixer.apply(x, data)

    x = {"w": jax.random.normal(jax.random.key(0), (s.n, 3))}
    for t in range(5):
        assert_close(step(x, mixer.data(t)), expected(s.weights(t), x))
    assert len(traces) == 1


@pytest.mark.parametrize(("name", "kw"), [("ring", {"n": 16}), ("base_k", {"n": 12})])
def test_pytrees_and_dtypes_match_dense_mixer(name, kw):
    s = schedule(name, "metropolis_hastings" if name == "ring" else "graph_defined", **kw)
    fast, dense = make_mixer(s), DenseMixer(s)
    assert fast.form != "dense"
    x = tree(s.n)
    fast_apply, dense_apply = jax.jit(fast.apply), jax.jit(dense.apply)
    for t in range(2):
        got = fast_apply(x, fast.data(t))
        assert_close(got, expected(s.weights(t), x))
        ref = dense_apply(x, dense.data(t))
        assert_close(got, jax.tree.map(lambda r: np.asarray(r, dtype=np.float64), ref))
        for g, leaf in zip(jax.tree.leaves(got), jax.tree.leaves(x), strict=True):
            assert g.dtype == leaf.dtype and g.shape == leaf.shape


@pytest.mark.parametrize("form", ["dense", "sparse", "segment", "permutation", "circulant"])
def test_forced_forms_where_they_apply(form):
    s = schedule("one_peer_exponential", "graph_defined", n=8)
    mixer = make_mixer(s, form=form)
    x = {"w": jax.random.normal(jax.random.key(1), (8, 2))}
    apply = jax.jit(mixer.apply)
    for t in range(4):
        assert_close(apply(x, mixer.data(t)), expected(s.weights(t), x))


def test_wrong_forms_raise():
    with pytest.raises(ValueError, match="round 0 is not circulant"):
        make_mixer(schedule("torus", "metropolis_hastings", n=16), form="circulant")
    with pytest.raises(ValueError, match="node 0 hears 2 peers"):
        make_mixer(schedule("ring", "metropolis_hastings", n=8), form="permutation")
    with pytest.raises(ValueError, match="unknown mixer form 'fast'"):
        make_mixer(schedule("ring", "metropolis_hastings", n=8), form="fast")


@settings(deadline=None, max_examples=10)
@given(connected_graphs(min_n=3, max_n=9))
def test_sparse_equals_dense_on_random_graphs(g):
    s = MixingSchedule.build(GraphSchedule.static(g), metropolis_hastings, rule_name="mh")
    x = {"w": jnp.arange(g.n * 2, dtype=jnp.float32).reshape(g.n, 2)}
    for form in ("sparse", "segment"):
        mixer = make_mixer(s, form=form)
        assert_close(jax.jit(mixer.apply)(x, mixer.data(0)), expected(s.weights(0), x))


def test_jitted_gossip_reaches_the_mean():
    s = schedule("base_k", "graph_defined", n=7, k=1)
    mixer = make_mixer(s)
    x = {"v": jnp.arange(7.0)}
    step = jax.jit(mixer.apply)
    for t in range(s.period):
        x = step(x, mixer.data(t))
    np.testing.assert_allclose(x["v"], 3.0, atol=1e-5)


BLOCK_CASES = [
    ("ring", "metropolis_hastings", {"n": 16}, "circulant"),
    ("exponential", "uniform", {"n": 16, "directed": True}, "circulant"),
    ("one_peer_exponential", "graph_defined", {"n": 12}, "circulant"),
    ("base_k", "graph_defined", {"n": 12, "k": 1}, "permutation"),
    ("torus", "metropolis_hastings", {"n": 16}, "sparse"),
    ("star", "metropolis_hastings", {"n": 16}, "segment"),
    ("complete", "uniform", {"n": 8}, "dense"),
]


def block_tree(n: int):
    """Leaves that walk every branch of the blocked path with ``block`` 3 or 8."""
    k = jax.random.split(jax.random.key(7), 7)
    return {
        "deep": jax.random.normal(k[0], (n, 6, 5, 4)),  # loop over an outer axis too
        "prime": jax.random.normal(k[1], (n, 7, 3)),  # blocks of one row of 3 columns
        "tail": jax.random.normal(k[2], (n, 11, 2)),  # block 8: 2 blocks of 4 rows + 3 rows
        "outer_tail": jax.random.normal(k[3], (n, 3, 7, 2)),  # the same under an outer axis
        "half": jax.random.normal(k[4], (n, 12, 4)).astype(jnp.bfloat16),
        "vector": jax.random.normal(k[5], (n,)),  # one column: never blocked
        "short": jax.random.normal(k[6], (n, 9)),  # under two blocks (block 8): one pass
    }


@pytest.mark.parametrize("block", [3, 8])
@pytest.mark.parametrize(("name", "rule", "kw", "form"), BLOCK_CASES)
def test_blocked_forms_match_dense_in_place_and_never_recompile(name, rule, kw, form, block):
    s = schedule(name, rule, **kw)
    mixer = make_mixer(s, form=form, block=block)
    traces = []

    def apply(x, data):
        traces.append(1)
        return mixer.apply(x, data)

    step = jax.jit(apply, donate_argnums=(0,))
    for t in range(4):
        x = block_tree(s.n)
        want = expected(s.weights(t), x)
        got = step(x, mixer.data(t))
        assert_close(got, want)
        for g, leaf in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            assert g.shape == leaf.shape
    assert len(traces) == 1


def test_blocked_equals_unblocked_and_dense_mixer():
    s = schedule("one_peer_exponential", "graph_defined", n=16)
    x = block_tree(s.n)
    blocked, plain, dense = make_mixer(s, block=4), make_mixer(s, block=None), DenseMixer(s)
    for t in range(s.period):
        a = jax.jit(blocked.apply)(x, blocked.data(t))
        b = jax.jit(plain.apply)(x, plain.data(t))
        c = jax.jit(dense.apply)(x, dense.data(t))
        for u, v, w in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(c), strict=True):
            assert u.dtype == v.dtype == w.dtype
            tol = 2e-2 if u.dtype == jnp.bfloat16 else 1e-6
            np.testing.assert_allclose(np.float64(u), np.float64(v), rtol=tol, atol=tol)
            np.testing.assert_allclose(np.float64(u), np.float64(w), rtol=tol, atol=tol)


@pytest.mark.parametrize(
    ("name", "rule", "kw"),
    [
        ("exponential", "uniform", {"n": 16, "directed": True}),
        ("one_peer_exponential", "graph_defined", {"n": 16}),
    ],
)
def test_blocked_mixing_after_an_update_writes_in_place(name, rule, kw):
    """Like a round: mixing ``p - lr g`` with ``p`` donated needs no copy of the leaf."""
    s = schedule(name, rule, **kw)
    mixer = make_mixer(s, block=64)
    p = {"w": jnp.ones((16, 40, 32)), "b": jnp.ones((16, 32))}

    def update_and_mix(p, g, data):
        return mixer.apply(jax.tree.map(lambda a, b: a - 0.1 * b, p, g), data)

    hlo = (
        jax.jit(update_and_mix, donate_argnums=(0,)).lower(p, p, mixer.data(0)).compile().as_text()
    )
    assert " while(" in hlo
    assert not re.search(r"f32\[16,40,32\]\{[0-9,]*\} copy\(", hlo)


def test_resolve_block():
    assert resolve_block(None, 256, jnp.float32) is None
    assert resolve_block(16, 256, jnp.float32) == 16
    with pytest.raises(ValueError, match="positive number of columns"):
        resolve_block(0, 256, jnp.float32)
    if jax.default_backend() == "cpu" and jax.device_count() == 1:
        assert resolve_block("auto", 256, jnp.float32) == 1024  # [256, 1024] f32 = 1 MiB
        assert resolve_block("auto", 1024, jnp.float32) == 256
        assert resolve_block("auto", 2, jnp.float32) == MAX_BLOCK
        assert resolve_block("auto", 1 << 16, jnp.float32) == MIN_BLOCK
    else:
        assert resolve_block("auto", 256, jnp.float32) is None
