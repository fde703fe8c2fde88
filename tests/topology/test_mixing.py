"""Mixing rules: properties over random graphs (hypothesis) and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from dfl.topology import static
from dfl.topology.mixing import (
    RULES,
    column_stochastic,
    graph_defined,
    lazy,
    make_rule,
    max_degree,
    metropolis_hastings,
    uniform,
)
from tests.topology.graphs import connected_graphs, strongly_connected_digraphs

SETTINGS = settings(deadline=None, max_examples=25)


def second_eigenvalue(W: np.ndarray) -> float:
    n = W.shape[0]
    return float(np.max(np.abs(np.linalg.eigvals(W - np.ones((n, n)) / n))))


@SETTINGS
@given(connected_graphs())
def test_symmetric_rules_on_random_graphs(g):
    for rule in (metropolis_hastings, max_degree, make_rule("lazy", beta=0.3)):
        W = rule(g)
        assert (W >= 0).all()
        np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(W, W.T, atol=1e-12)
        assert not (W[~g.adjacency & ~np.eye(g.n, dtype=bool)]).any()
        assert second_eigenvalue(W) < 1 - 1e-9


@SETTINGS
@given(connected_graphs())
def test_uniform_is_row_stochastic(g):
    W = uniform(g)
    assert (W >= 0).all()
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
    if len(set(g.degree.tolist())) == 1:
        np.testing.assert_allclose(W, W.T, atol=1e-12)
    # row stochastic with positive diagonal on a connected graph: consensus (|λ|=1 simple).
    lam = np.sort(np.abs(np.linalg.eigvals(W)))
    assert lam[-2] < 1 - 1e-9


@SETTINGS
@given(strongly_connected_digraphs())
def test_column_stochastic_on_digraphs(g):
    W = column_stochastic(g)
    assert (W >= 0).all()
    np.testing.assert_allclose(W.sum(axis=0), 1.0, atol=1e-12)
    for j in range(g.n):
        np.testing.assert_allclose(W[g.out_neighbours(j), j], 1 / (1 + g.out_degree[j]))
    lam = np.sort(np.abs(np.linalg.eigvals(W)))
    assert lam[-2] < 1 - 1e-9
    np.testing.assert_allclose(uniform(g).sum(axis=1), 1.0, atol=1e-12)


def test_lazy_spectrum():
    W = metropolis_hastings(static.ring(8))
    beta = 0.25
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(lazy(W, beta))),
        np.sort(beta + (1 - beta) * np.linalg.eigvalsh(W)),
        atol=1e-12,
    )


@pytest.mark.parametrize("rule", ["metropolis_hastings", "max_degree"])
def test_undirected_rules_refuse_directed_graph(rule):
    g = static.exponential(8, directed=True)
    with pytest.raises(ValueError, match=rf"{rule}.*needs an undirected graph.*directed"):
        RULES[rule](g)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="defines none"):
        graph_defined(static.ring(4))
    with pytest.raises(ValueError, match=r"beta=1\.5"):
        make_rule("lazy", beta=1.5)
    with pytest.raises(ValueError, match="unknown base rule 'nope'"):
        make_rule("lazy", base="nope")
    with pytest.raises(ValueError, match="unknown mixing rule 'mh'"):
        make_rule("mh")
