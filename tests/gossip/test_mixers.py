"""Every mixer form equals the dense product; data never recompiles; auto picks by structure."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from dfl.config.topology_schema import MixingConfig, TopologyConfig
from dfl.gossip import DenseMixer, choose_form, make_mixer
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
