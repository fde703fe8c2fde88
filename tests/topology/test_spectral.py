"""Spectral diagnostics: closed forms, exact-averaging schedules, gossip rate, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dfl.config.topology_schema import MixingConfig, TopologyConfig
from dfl.topology import build_schedule
from dfl.topology.spectral import diagnose, gossip_errors, plot_diagnostics


def schedule(name, rule="metropolis_hastings", **kw):
    return build_schedule(TopologyConfig(name, **kw), MixingConfig(rule), seed=0)


def test_ring_diagnostics_closed_form():
    n = 16
    d = diagnose(schedule("ring", n=n))
    json.dumps(d)
    assert d["n"] == n and d["edges"] == n and d["degree_min"] == d["degree_max"] == 2
    assert d["connected"] and d["symmetric"] and d["row_stochastic"] and d["column_stochastic"]
    assert not d["directed"] and not d["time_varying"] and d["period"] == 1
    expected = 1 / 3 + 2 / 3 * np.cos(2 * np.pi / n)
    assert d["slem"] == pytest.approx(expected, abs=1e-12)
    assert d["spectral_gap"] == pytest.approx(1 - expected, abs=1e-12)
    assert isinstance(d["slem"], float) and isinstance(d["edges"], int)


def test_complete_uniform_has_zero_slem():
    d = diagnose(schedule("complete", "uniform", n=8))
    assert d["slem"] == pytest.approx(0.0, abs=1e-12) and d["spectral_gap"] == pytest.approx(1)


@pytest.mark.parametrize(
    ("name", "kw"), [("one_peer_exponential", {"n": 16}), ("base_k", {"n": 12, "k": 2})]
)
def test_exact_averaging_product_slem(name, kw):
    d = diagnose(schedule(name, "graph_defined", **kw))
    json.dumps(d)
    assert d["time_varying"] and d["period"] >= 2
    assert d["product_slem"] < 1e-10 and d["slem"] > 0.3
    assert d["connected"] and d["degree_max"] <= kw.get("k", 1)


def test_random_matching_expected_contraction():
    s = schedule("random_matching", "graph_defined", n=16)
    d = diagnose(s, samples=64)
    json.dumps(d)
    assert d["period"] is None and d["time_varying"]
    # a perfect matching halves the disagreement energy on average: rho^2 ~ 1/2 + 1/(2(n-1)).
    assert d["product_slem"] == pytest.approx(np.sqrt(0.5 + 0.5 / 15), rel=0.1)
    errs = gossip_errors(s, 60)
    assert errs[-1] < 1e-3


def test_gossip_converges_at_predicted_rate():
    for name, kw in [("ring", {"n": 12}), ("torus", {"n": 16}), ("hypercube", {"n": 16})]:
        s = schedule(name, **kw)
        rate = diagnose(s)["slem"]
        t = int(np.log(1e-8) / np.log(rate))
        errs = gossip_errors(s, t, seed=1)
        assert (errs <= rate ** np.arange(t + 1) + 1e-12).all(), name
        # the asymptotic rate is attained (generic start vector)
        observed = (errs[t] / errs[t - 10]) ** (1 / 10)
        assert observed == pytest.approx(rate, rel=2e-2), name


def test_directed_push_sum_diagnostics():
    d = diagnose(schedule("exponential", "column_stochastic", n=6, directed=True))
    assert d["directed"] and d["column_stochastic"] and d["edges"] == 6 * 3


def test_plot_diagnostics(tmp_path):
    for name, rule, kw in [
        ("ring", "metropolis_hastings", {"n": 8}),
        ("base_k", "graph_defined", {"n": 6}),
        ("random_matching", "graph_defined", {"n": 8}),
    ]:
        out = tmp_path / f"{name}.png"
        plot_diagnostics(schedule(name, rule, **kw), out, rounds=20)
        assert out.stat().st_size > 1000
