"""The sparse path (graphs above ``SPARSE_ABOVE`` nodes) gives the dense path's numbers in O(E).

Every test builds the same schedule twice, once with the dense path forced
(``SPARSE_ABOVE`` huge) and once with the sparse one (``SPARSE_ABOVE = 0``), and
compares entry by entry: W, the mixer ``sim.gossip=auto`` picks and its data, the
spectral diagnostics, the mean out-degree. The memory test builds a 50,000-node ring
and asserts no ``N x N`` array was allocated (tracemalloc's peak stays far below it).
"""

from __future__ import annotations

import tracemalloc
import warnings

import jax
import numpy as np
import pytest

import dfl.topology.graph as graph_module
import dfl.topology.spectral as spectral_module
from dfl.algorithms.base import MixingRequirements, RequirementError
from dfl.config.topology_schema import MixingConfig, TopologyConfig
from dfl.gossip import choose_form, make_mixer
from dfl.sim.runner import mean_out_degree
from dfl.topology import build_schedule, diagnose
from dfl.topology.schedule import MixingSchedule, neighbours_of

TOPOLOGIES = [
    ("ring", {"n": 16}),
    ("ring", {"n": 2}),
    ("torus", {"n": 24}),
    ("exponential", {"n": 20}),
    ("exponential", {"n": 16, "directed": True}),
    ("path", {"n": 9}),
    ("grid", {"n": 12}),
    ("star", {"n": 9}),
    ("hypercube", {"n": 16}),
    ("one_peer_exponential", {"n": 12}),
]
RULES = ["auto", "metropolis_hastings", "max_degree", "uniform", "column_stochastic", "lazy"]


def build(name: str, params: dict, rule: str, *, sparse: bool, monkeypatch) -> MixingSchedule:
    """The schedule built on the sparse (or the dense) path."""
    monkeypatch.setattr(graph_module, "SPARSE_ABOVE", 0 if sparse else 10**9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_schedule(TopologyConfig(name, **params), MixingConfig(rule), seed=0)


def pairs(monkeypatch):
    """(dense, sparse) schedules for every topology and rule that applies to it."""
    out = []
    for name, params in TOPOLOGIES:
        for rule in RULES:
            try:
                dense = build(name, params, rule, sparse=False, monkeypatch=monkeypatch)
            except ValueError:  # e.g. Metropolis-Hastings on a directed graph
                continue
            sparse = build(name, params, rule, sparse=True, monkeypatch=monkeypatch)
            out.append((f"{name}{params}/{rule}", dense, sparse))
    return out


def test_sparse_w_equals_dense_entrywise(monkeypatch):
    cases = pairs(monkeypatch)
    assert len(cases) >= 45
    for what, dense, sparse in cases:
        assert not dense.sparse and sparse.sparse, what
        for t in dense.rounds():
            S = sparse.sparse_weights(t)
            assert S.shape == (dense.n, dense.n), what
            # bit-identical, not merely close: the diagonal sums are numpy's own
            np.testing.assert_array_equal(S.toarray(), dense.weights(t), err_msg=what)
            np.testing.assert_array_equal(sparse.weights(t), dense.weights(t), err_msg=what)
            np.testing.assert_array_equal(
                dense.sparse_weights(t).toarray(), dense.weights(t), err_msg=what
            )
            assert sparse.topology(t).num_edges == dense.topology(t).num_edges, what
            np.testing.assert_array_equal(
                sparse.topology(t).dense_adjacency(), dense.topology(t).adjacency, err_msg=what
            )
            assert mean_out_degree(S) == mean_out_degree(dense.weights(t)), what
        assert neighbours_of(sparse, 1) == neighbours_of(dense, 1), what


def test_metropolis_hastings_on_sparse_ring_by_hand(monkeypatch):
    s = build("ring", {"n": 5}, "metropolis_hastings", sparse=True, monkeypatch=monkeypatch)
    W = s.sparse_weights(0)
    assert W.nnz == 15  # 3 per row: the node and its two neighbours
    row = W[[2]].toarray()[0]
    np.testing.assert_array_equal(row, [0.0, 1 / 3, 1 - 2 / 3, 1 / 3, 0.0])


def test_sparse_path_picks_the_same_mixer_with_the_same_data(monkeypatch):
    for what, dense, sparse in pairs(monkeypatch):
        form = choose_form(dense)
        assert choose_form(sparse) == form, what
        a, b = make_mixer(dense), make_mixer(sparse)
        for t in dense.rounds():
            da, db = a.data(t), b.data(t)
            assert jax.tree.structure(da) == jax.tree.structure(db), what
            for x, y in zip(jax.tree.leaves(da), jax.tree.leaves(db), strict=True):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)
        for forced in ("sparse", "segment"):
            fa, fb = make_mixer(dense, form=forced), make_mixer(sparse, form=forced)
            for x, y in zip(jax.tree.leaves(fa.data(0)), jax.tree.leaves(fb.data(0)), strict=True):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)


@pytest.mark.parametrize("matrix_free", [False, True])
def test_sparse_diagnostics_match_dense(monkeypatch, matrix_free):
    if matrix_free:  # eigsh / eigs instead of the dense eigenvalues
        monkeypatch.setattr(spectral_module, "DENSE_SPECTRUM_UPTO", 0)
    for what, dense, sparse in pairs(monkeypatch):
        a, b = diagnose(dense), diagnose(sparse)
        assert a.keys() == b.keys(), what
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-9), (what, key)
            else:
                assert b[key] == value, (what, key)


def test_matrix_free_slem_of_a_large_ring_is_the_closed_form(monkeypatch):
    # Metropolis-Hastings on a ring: W = I/3 + (P + Pᵀ)/3, eigenvalues 1/3 + 2/3 cos(2πk/n),
    # so the SLEM is the k = 1 one (n even: k = n/2 gives |1/3 - 2/3| = 1/3, smaller).
    n = 3000
    s = build("ring", {"n": n}, "metropolis_hastings", sparse=True, monkeypatch=monkeypatch)
    info = diagnose(s)
    assert info["slem"] == pytest.approx(1 / 3 + 2 / 3 * np.cos(2 * np.pi / n), abs=1e-9)
    assert info["edges"] == n and info["connected"] and info["symmetric"]


def test_requirements_check_on_sparse_w(monkeypatch):
    s = build("ring", {"n": 12}, "metropolis_hastings", sparse=True, monkeypatch=monkeypatch)
    W = s.sparse_weights(0)
    MixingRequirements(stochastic="doubly", symmetric=True).check(
        W, time_varying=False, algorithm="x"
    )
    # smallest eigenvalue of MH on an even ring: 1/3 - 2/3 = -1/3
    with pytest.raises(RequirementError, match=r"smallest is -0\.3333"):
        MixingRequirements(min_eigenvalue=0.0).check(W, time_varying=False, algorithm="x")
    # push-sum weights on a path: column sums 1, row 0 sums to 1/2 + 1/3
    push = build("path", {"n": 5}, "column_stochastic", sparse=True, monkeypatch=monkeypatch)
    with pytest.raises(RequirementError, match=r"row sums of 1 \(row 0 sums to 0\.833333\)"):
        MixingRequirements(stochastic="row").check(
            push.sparse_weights(0), time_varying=False, algorithm="x"
        )


def test_sparse_validation_names_the_bad_entry(monkeypatch):
    import scipy.sparse

    from dfl.topology import ring, validate_matrix

    monkeypatch.setattr(graph_module, "SPARSE_ABOVE", 0)
    g = ring(6)
    assert g.sparse
    dense = np.eye(6)
    dense[0, 3] = dense[0, 0] = 0.5
    W = scipy.sparse.csr_array(dense)
    with pytest.raises(ValueError, match=r"W\[0, 3\]=0.5 but node 0 does not hear node 3"):
        validate_matrix(W, name="w", topology=g)
    with pytest.raises(ValueError, match="non-negative"):
        validate_matrix(scipy.sparse.csr_array(-np.eye(6)), name="w", topology=g)


def test_a_50000_node_ring_builds_without_an_n_by_n_array():
    # Above SPARSE_ABOVE the default path is sparse. One float64 N x N W would be
    # 20 GB and a bool adjacency 2.5 GB; the whole build (graph, rule, validation,
    # mixer choice and data) must stay under 64 MiB of Python-allocated memory
    # (numpy allocations are traced by tracemalloc).
    n = 50_000
    tracemalloc.start()
    try:
        schedule = build_schedule(TopologyConfig("ring", n=n), MixingConfig("auto"), seed=0)
        mixer = make_mixer(schedule)
        mixer.data(0)
        degree = mean_out_degree(schedule.stored(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert schedule.sparse and schedule.sparse_weights(0).nnz == 3 * n
    assert mixer.form == "circulant" and degree == 2.0
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
