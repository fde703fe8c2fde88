"""The simulation runner: bytes, determinism, gossip forms and config errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from dfl.checkpoint import Checkpointer
from dfl.cli import instantiate_optimizer, to_config
from dfl.experiment import build_experiment, init_node_state, init_state
from dfl.sim import runner
from dfl.sim.runner import simulate
from tests.conftest import compose_config

HEADER = 96  # bytes of one wire frame header (dfl.transport.wire)
TINY = ["data=digits", "model=logreg", "topology.n=4", "rounds=4", "eval_every=2"]


def run(overrides, **kw):
    cfg = compose_config(TINY + overrides)
    return simulate(to_config(cfg), instantiate_optimizer(cfg), progress=False, **kw)


def test_bytes_sent_counts_dense_params_per_out_neighbour():
    result = run(["topology=ring"])
    params = 64 * 10 + 10  # logreg on digits: 8·8 inputs, 10 classes
    per_round = (params * 4 + HEADER) * 2  # float32 + one frame header, two ring neighbours
    assert [r["bytes_sent_per_node"] for r in result.records] == [2 * per_round, 4 * per_round]


def test_complete_graph_sends_to_everyone():
    result = run(["topology=complete", "mixing=uniform"])
    assert result.records[-1]["bytes_sent_per_node"] == 4 * (650 * 4 + HEADER) * 3


def test_identity_gossip_sends_nothing_and_keeps_nodes_apart():
    gossip = run(["sim.gossip=auto", "model.init=independent"])
    alone = run(["sim.gossip=identity", "model.init=independent"])
    assert alone.records[-1]["bytes_sent_per_node"] == 0
    assert alone.records[-1]["consensus_distance"] > 2 * gossip.records[-1]["consensus_distance"]


def test_same_seed_same_result_other_seed_differs():
    a, b, c = run(["seed=3"]), run(["seed=3"]), run(["seed=4"])
    strip = lambda rs: [{k: v for k, v in r.items() if "time" not in k} for r in rs]  # noqa: E731
    assert strip(a.records) == strip(b.records)
    assert strip(a.records) != strip(c.records)


@pytest.mark.parametrize("form", ["dense", "circulant", "sparse", "segment"])
def test_every_forced_gossip_kernel_agrees_with_auto(form):
    auto, forced = run(["sim.gossip=auto"]), run([f"sim.gossip={form}"])
    for x, y in zip(jax.tree.leaves(auto.state), jax.tree.leaves(forced.state), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_stacked_init_equals_per_node_init():
    cfg = compose_config([*TINY, "model.init=independent"])
    exp = build_experiment(to_config(cfg), instantiate_optimizer(cfg))
    stacked = init_state(exp)
    for i in range(exp.n):
        one = init_node_state(exp, i)
        for x, y in zip(jax.tree.leaves(stacked), jax.tree.leaves(one), strict=True):
            np.testing.assert_array_equal(x[i], y)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rounds=0"], "rounds=0"),
        (["algorithm.local_steps=0"], "algorithm.local_steps=0"),
        (["algorithm=fedavg"], "fedavg"),
        (["sim.gossip=sparce"], "sim.gossip='sparce'"),
        (["sim.gossip=permutation"], "hears 2 peers"),
    ],
)
def test_config_errors_name_the_bad_value(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        run(overrides)


def test_local_test_split_is_reported():
    result = run(["data.local_test_fraction=0.2"])
    record = result.records[-1]
    for key in ("local_test_accuracy_mean", "local_test_accuracy_min", "local_test_accuracy_max"):
        assert 0.0 <= record[key] <= 1.0
    assert record["local_test_accuracy_min"] <= record["local_test_accuracy_mean"]
    assert "local_test_accuracy_mean" not in run([]).records[-1]


def test_writer_and_checkpoints_close_when_a_round_fails(tmp_path, monkeypatch):
    closed = []
    for cls in (runner.MetricsWriter, Checkpointer):
        close = cls.close
        monkeypatch.setattr(
            cls, "close", lambda self, close=close: (closed.append(type(self)), close(self))
        )

    def fail(self, state):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(runner.Simulation, "evaluation", fail)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        run(["checkpoint.every=1"], workdir=tmp_path)
    assert sorted(c.__name__ for c in closed) == ["Checkpointer", "MetricsWriter"]
    assert (tmp_path / "metadata.json").is_file() and (tmp_path / "metrics.jsonl").read_text() == ""
