"""build_schedule from configs, every shipped YAML, validation errors and requirements."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from dfl.algorithms.base import MixingRequirements
from dfl.config.topology_schema import MixingConfig, TopologyConfig
from dfl.topology import build_schedule, check_requirements, validate_matrix
from dfl.topology.static import ring

CONF = Path(__file__).resolve().parents[2] / "conf"


def load(group: str, name: str):
    cls = TopologyConfig if group == "topology" else MixingConfig
    return cls(**yaml.safe_load((CONF / group / f"{name}.yaml").read_text()))


def test_default_is_ring16_mh():
    s = build_schedule(TopologyConfig(), MixingConfig(), seed=0)
    assert (s.n, s.period, s.time_varying, s.directed) == (16, 1, False, False)
    W = s.weights(0)
    assert W.dtype == np.float64 and W.shape == (16, 16)
    np.testing.assert_allclose(W[0, [15, 0, 1]], 1 / 3)
    assert s.weights(7) is W and s.topology(3).name == "ring"
    assert s.name == "ring/metropolis_hastings"


def test_complete_uniform_exact_j():
    s = build_schedule(TopologyConfig("complete", n=7), MixingConfig("uniform"), seed=0)
    assert np.array_equal(s.weights(0), np.full((7, 7), 1 / 7))


PAIRS = {
    "one_peer_exponential": "graph_defined",
    "base_k": "graph_defined",
    "random_matching": "graph_defined",
    "exponential_directed": "column_stochastic",
}


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "topology").glob("*.yaml")))
def test_every_topology_yaml_builds(name, tmp_path):
    cfg = load("topology", name)
    if name == "edge_list":
        (tmp_path / "g.txt").write_text("0 1\n1 2\n2 0  # triangle\n2,3\n")
        cfg.path = str(tmp_path / "g.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = build_schedule(cfg, load("mixing", PAIRS.get(name, "metropolis_hastings")), seed=0)
    for t in range(3):
        W = s.weights(t)
        assert W.shape == (s.n, s.n)
        assert np.allclose(W.sum(1), 1) or np.allclose(W.sum(0), 1)
    assert s.time_varying == (s.period != 1)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "mixing").glob("*.yaml")))
def test_every_mixing_yaml_builds(name):
    topo = "base_k" if name == "graph_defined" else "torus"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = build_schedule(TopologyConfig(topo, n=12), load("mixing", name), seed=0)
    assert s.weights(0).min() >= 0


def test_not_doubly_stochastic_warns():
    with pytest.warns(UserWarning, match="row stochastic but not doubly"):
        build_schedule(TopologyConfig("star", n=5), MixingConfig("uniform"), seed=0)


def test_overriding_graph_weights_warns():
    with pytest.warns(UserWarning, match="defines its own weights"):
        build_schedule(TopologyConfig("base_k", n=6), MixingConfig("metropolis_hastings"), seed=0)


def test_config_errors():
    with pytest.raises(ValueError, match="unknown topology 'rign'"):
        build_schedule(TopologyConfig("rign"), MixingConfig(), seed=0)
    with pytest.raises(ValueError, match="power of 2, found n=12"):
        build_schedule(TopologyConfig("hypercube", n=12), MixingConfig(), seed=0)
    with pytest.raises(ValueError, match="rows=5, cols=5"):
        build_schedule(TopologyConfig("torus", n=16, rows=5, cols=5), MixingConfig(), seed=0)
    with pytest.raises(ValueError, match="needs an undirected graph"):
        build_schedule(
            TopologyConfig("exponential", directed=True),
            MixingConfig("metropolis_hastings"),
            seed=0,
        )


def test_edge_list(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text("# two triangles\n0 1\n1 2\n2 0\n3 4\n4 5\n5 3\n")
    with pytest.raises(ValueError, match="not connected: 2 components"):
        build_schedule(TopologyConfig("edge_list", n=0, path=str(f)), MixingConfig(), seed=0)
    f.write_text("0 1\n1 x\n")
    with pytest.raises(ValueError, match="line 2: expected two integer node ids"):
        build_schedule(TopologyConfig("edge_list", n=0, path=str(f)), MixingConfig(), seed=0)
    f.write_text("0 1\n1 2\n2 0\n")
    with pytest.raises(ValueError, match="names node 2 but n=2"):
        build_schedule(TopologyConfig("edge_list", n=2, path=str(f)), MixingConfig(), seed=0)
    with pytest.raises(ValueError, match="cannot read"):
        build_schedule(
            TopologyConfig("edge_list", path=str(tmp_path / "missing")), MixingConfig(), seed=0
        )
    s = build_schedule(
        TopologyConfig("edge_list", n=0, path=str(f), directed=True),
        MixingConfig("column_stochastic"),
        seed=0,
    )
    assert s.directed and s.weights(0)[1, 0] == 0.5  # 0 -> 1: node 1 hears node 0


def test_validate_matrix_errors():
    g = ring(4)
    W = np.full((4, 4), 0.25)
    with pytest.raises(ValueError, match=r"node 0 does not hear node 2"):
        validate_matrix(W, name="x", topology=g)
    W = np.eye(4)
    W[0, 0], W[0, 1] = 1.5, -0.5
    with pytest.raises(ValueError, match=r"non-negative weights, found W\[0, 1\]=-0.5"):
        validate_matrix(W, name="x")
    with pytest.raises(ValueError, match="row or column sums of 1, found row 0 summing to 2"):
        validate_matrix(np.eye(4) * np.array([2, 1, 1, 1]), name="x")
    with pytest.raises(ValueError, match="square"):
        validate_matrix(np.ones((2, 3)) / 3, name="x")


def test_check_requirements():
    mh = build_schedule(TopologyConfig(), MixingConfig(), seed=0)
    check_requirements(mh, MixingRequirements("doubly", symmetric=True), "dsgd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        push = build_schedule(
            TopologyConfig("star", n=5),
            MixingConfig("column_stochastic"),
            seed=0,
        )
    check_requirements(push, MixingRequirements("column"), "push_sum")
    with pytest.raises(ValueError, match="'dsgd' requires row sums of 1"):
        check_requirements(push, MixingRequirements("row"), "dsgd")
    tv = build_schedule(TopologyConfig("random_matching", n=8), MixingConfig(), seed=0)
    with pytest.raises(ValueError, match="a static mixing matrix"):
        check_requirements(tv, MixingRequirements(time_varying=False), "gt")


@pytest.mark.parametrize(
    ("topology", "stochastic", "rule"),
    [
        (TopologyConfig("ring", n=8), "row", "metropolis_hastings"),
        (TopologyConfig("base_k", n=12), "row", "graph_defined"),
        (TopologyConfig("one_peer_exponential", n=16), "row", "graph_defined"),
        (TopologyConfig("random_matching", n=8), "doubly", "graph_defined"),
        (TopologyConfig("exponential", n=16, directed=True), "row", "uniform"),
        (TopologyConfig("exponential", n=16, directed=True), "column", "column_stochastic"),
        (TopologyConfig("exponential", n=16, directed=False), "column", "metropolis_hastings"),
    ],
)
def test_default_mixing_is_the_natural_rule(topology, stochastic, rule):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the natural rule never replaces a graph's own weights
        s = build_schedule(
            topology, MixingConfig(), seed=0, requirements=MixingRequirements(stochastic)
        )
    assert s.rule_name == rule
    assert s.name == f"{s.graphs.name}/{rule}"


def test_default_mixing_keeps_base_k_exact_and_an_override_still_applies():
    exact = build_schedule(TopologyConfig("base_k", n=12), MixingConfig(), seed=0)
    assert exact.matrices is not None
    P = np.linalg.multi_dot([*exact.matrices[::-1], np.eye(12)])
    np.testing.assert_allclose(P, np.full((12, 12), 1 / 12), atol=1e-12)  # exact averaging
    with pytest.warns(UserWarning, match="defines its own weights"):
        mh = build_schedule(
            TopologyConfig("base_k", n=12), MixingConfig("metropolis_hastings"), seed=0
        )
    assert mh.rule_name == "metropolis_hastings" and mh.matrices is not None
    P = np.linalg.multi_dot([*mh.matrices[::-1], np.eye(12)])
    assert np.abs(P - 1 / 12).max() > 0.01


def test_lazy_wraps_the_natural_rule():
    with pytest.warns(UserWarning, match="defines its own weights"):  # lazy changes them
        s = build_schedule(TopologyConfig("base_k", n=6), MixingConfig("lazy", beta=0.5), seed=0)
    assert s.rule_name == "lazy(graph_defined, beta=0.5)"
    own = s.topology(0).weights
    assert own is not None
    np.testing.assert_allclose(s.weights(0), 0.5 * np.eye(6) + 0.5 * own)


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_nodes_is_an_error(n):
    with pytest.raises(ValueError, match=rf"expected topology.n >= 2 .*found topology.n={n}"):
        build_schedule(TopologyConfig("ring", n=n), MixingConfig(), seed=0)


@pytest.mark.parametrize(("name", "flat"), [("grid", "path"), ("torus", "ring")])
def test_grid_with_a_prime_n_is_an_error_unless_the_shape_is_given(name, flat):
    with pytest.raises(
        ValueError, match=rf"n=7 is prime, so the only shape is 1x7, which is a {flat}"
    ):
        build_schedule(TopologyConfig(name, n=7), MixingConfig(), seed=0)
    s = build_schedule(TopologyConfig(name, n=7, rows=1, cols=7), MixingConfig(), seed=0)
    assert s.topology(0).name == f"{name}(1x7)"
    assert build_schedule(TopologyConfig(name, n=8), MixingConfig(), seed=0).topology(0).name == (
        f"{name}(2x4)"
    )
