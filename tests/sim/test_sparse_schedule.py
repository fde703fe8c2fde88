"""A run on the sparse topology path (``SPARSE_ABOVE`` exceeded) has the dense path's records."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import dfl.topology.graph as graph_module
from dfl.cli import instantiate_optimizer, to_config
from dfl.sim.runner import simulate
from tests.conftest import compose_config

TINY = ["data=digits", "model=logreg", "topology.n=6", "rounds=4", "eval_every=2"]


def run(overrides: list[str], *, sparse: bool, monkeypatch):
    monkeypatch.setattr(graph_module, "SPARSE_ABOVE", 0 if sparse else 10**9)
    cfg = compose_config(TINY + overrides)
    return simulate(to_config(cfg), instantiate_optimizer(cfg), progress=False)


@pytest.mark.parametrize(
    "overrides", [["topology=ring"], ["topology=torus"], ["topology=exponential"]]
)
def test_sparse_path_gives_identical_records_and_state(overrides, monkeypatch):
    dense = run(overrides, sparse=False, monkeypatch=monkeypatch)
    sparse = run(overrides, sparse=True, monkeypatch=monkeypatch)
    assert not dense.experiment.schedule.sparse and sparse.experiment.schedule.sparse
    strip = lambda rs: [{k: v for k, v in r.items() if "time" not in k} for r in rs]  # noqa: E731
    assert strip(sparse.records) == strip(dense.records)
    for x, y in zip(jax.tree.leaves(dense.state), jax.tree.leaves(sparse.state), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
