"""What every rule owes the exchange form: undelivered slots never leak, no edges is fine,
hubs need no padding, and new edge lists of the same size never recompile."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.robust import (
    adaptive_tau,
    clipped_gossip,
    dissensus,
    dissensus_view,
    edges_of,
    init_detector,
    krum,
    krum_pairs,
    median,
    received_stats,
    reverse_edges,
    trimmed_mean,
    update_detector,
)
from dfl.topology.mixing import metropolis_hastings
from dfl.topology.static import star
from tests.robust import reference as ref
from tests.robust.reference import random_case


def rules(dst, weight, n, src=None):
    pairs = krum_pairs(dst, n)
    src = np.zeros_like(dst) if src is None else src
    byz = np.arange(n) < 2
    rev = reverse_edges(dst, src)
    return {
        "clipped_gossip": lambda x, m, ok: clipped_gossip(
            x,
            m,
            dst,
            weight,
            tau=adaptive_tau(x, m, dst, weight, delta=0.2, delivered=ok),
            delivered=ok,
        ),
        "trimmed_mean": lambda x, m, ok: trimmed_mean(x, m, dst, b=1, delivered=ok),
        "median": lambda x, m, ok: median(x, m, dst, delivered=ok),
        "krum": lambda x, m, ok: krum(x, m, dst, pairs, b=1, delivered=ok),
        "stats": lambda x, m, ok: received_stats(m, dst, n, mask=ok).mean,
        "dissensus": lambda x, m, ok: dissensus(
            *dissensus_view(m, dst, src, weight, byz, rev, delivered_prev=ok), epsilon=1.0
        ),
    }


@pytest.mark.parametrize(
    "rule", ["clipped_gossip", "trimmed_mean", "median", "krum", "stats", "dissensus"]
)
def test_undelivered_slots_never_leak(rule):
    _, dst, src, weight, X, M, delivered = random_case(3, n=9, p=0.6, drop=0.3)
    f = rules(dst, weight, 9, src)[rule]
    clean = f(X, M, delivered)
    garbage = np.where(delivered[:, None], M, np.nan).astype(np.float32)
    np.testing.assert_allclose(f(X, garbage, delivered), clean, rtol=1e-6)
    assert np.isfinite(np.asarray(clean)).all()


def test_no_edges_keeps_every_model():
    own = jnp.arange(6.0).reshape(3, 2)
    m, dst = jnp.zeros((0, 2)), jnp.zeros((0,), jnp.int32)
    np.testing.assert_array_equal(clipped_gossip(own, m, dst, jnp.zeros(0), tau=1.0), own)
    np.testing.assert_array_equal(trimmed_mean(own, m, dst, b=1), own)
    np.testing.assert_array_equal(median(own, m, dst), own)
    np.testing.assert_array_equal(krum(own, m, dst, krum_pairs(np.zeros(0), 3), b=0), own)
    assert update_detector(init_detector(0, window=2), own, m, dst).flagged.shape == (0,)


def test_a_hub_matches_the_reference_without_padding():
    W = metropolis_hastings(star(40))  # hub in-degree 39, leaves 1
    dst, _, _, _ = edges_of(W)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    M = rng.normal(size=(len(dst), 3)).astype(np.float32)
    ok = np.ones(len(dst), bool)
    np.testing.assert_allclose(
        trimmed_mean(X, M, dst, b=5), ref.bridge_t(X, dst, M, ok, 5), atol=1e-5
    )
    np.testing.assert_allclose(median(X, M, dst), ref.bridge_m(X, dst, M, ok), atol=1e-6)
    got = krum(X, M, dst, krum_pairs(dst, 40), b=3)
    np.testing.assert_allclose(got, ref.krum(X, dst, M, ok, 3), atol=1e-6)


def test_new_edge_lists_of_the_same_size_never_recompile():
    traces = []

    @jax.jit
    def step(x, m, dst, pairs, ok):
        traces.append(1)
        return (
            trimmed_mean(x, m, dst, b=1, delivered=ok),
            median(x, m, dst, delivered=ok),
            krum(x, m, dst, pairs, b=1, delivered=ok),
        )

    cases = [random_case(s, n=8, p=0.5) for s in range(3)]
    size = max(len(c[1]) for c in cases)
    pair_size = 8 * 9 * 9
    for _, dst, _, _, X, M, _ in cases:
        pad = size - len(dst)  # pad slots: undelivered edges into node 0
        d = np.concatenate([dst, np.zeros(pad, np.int32)])
        m = np.concatenate([M, np.zeros((pad, M.shape[1]), np.float32)])
        ok = np.arange(size) < len(dst)
        got = step(X, m, d, krum_pairs(d, 8, size=pair_size), ok)
        np.testing.assert_allclose(got[0], ref.bridge_t(X, d, m, ok, 1), atol=1e-5)
        np.testing.assert_allclose(got[1], ref.bridge_m(X, d, m, ok), atol=1e-6)
        np.testing.assert_allclose(got[2], ref.krum(X, d, m, ok, 1), atol=1e-5)
    assert len(traces) == 1
