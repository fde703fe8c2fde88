"""Byzantine simulation: the default path is untouched, flags are counted, and ClippedGossip
holds where plain D-SGD falls under sign flipping."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from dfl.experiment import build_experiment
from dfl.sim.byzantine import ByzantineCarried
from dfl.sim.runner import build_simulation, simulate
from tests.node.common import assert_close, compose_config

FAST = ("rounds=6", "eval_every=3", "algorithm.local_steps=1")


def test_the_default_run_keeps_the_plain_round_state():
    cfg, opt = compose_config(*FAST)
    exp = build_experiment(cfg, opt)
    sim, state = build_simulation(exp, cfg)
    assert exp.byzantine is None and sim.byzantine is None
    assert not isinstance(state, ByzantineCarried)
    record = simulate(cfg, opt).records[-1]
    assert not any(k.startswith("byzantine") or "honest" in k for k in record)


@pytest.mark.parametrize(
    "byzantine",
    [
        ("byzantine.detect=true",),  # plain gossip through the gathered form, detector on
        ("byzantine=clipped_gossip", "byzantine.tau=fixed", "byzantine.detect=true"),  # τ = ∞
    ],
)
def test_without_attackers_the_gathered_round_is_plain_gossip_and_flags_nothing(byzantine):
    cfg, opt = compose_config(*FAST, "topology.n=6")
    plain = simulate(cfg, opt)
    cfg_b, _ = compose_config(*FAST, "topology.n=6", *byzantine)
    robust = simulate(cfg_b, opt)
    assert_close(robust.state.params, plain.state.params)
    for record in robust.records:
        assert record["byzantine_flagged"] == 0
        assert record["test_accuracy_honest_mean"] == pytest.approx(record["test_accuracy_mean"])


def test_a_far_attacker_is_flagged_by_its_two_neighbours_only(tmp_path):
    cfg, opt = compose_config(
        *FAST,
        "topology.n=6",
        "byzantine.nodes=[0]",
        "byzantine.attack=sign_flip",
        "byzantine.scale=3",
        "byzantine.detect=true",
        "byzantine.min_rounds=1",
    )
    result = simulate(cfg, opt, workdir=tmp_path, progress=False)
    last = result.records[-1]
    assert (last["byzantine_flagged_true"], last["byzantine_flagged_false"]) == (2, 0)
    meta = json.loads((tmp_path / "metadata.json").read_text())["byzantine"]
    assert meta["attackers"] == [0] and meta["attackers_per_node"] == [0, 1, 0, 0, 0, 1]
    assert meta["attack"] == "sign_flip" and meta["detect"] is True and meta["unsafe"] is False


def test_unsafe_cells_run_and_are_recorded(tmp_path):
    cfg, opt = compose_config(
        *FAST, "byzantine=median", "byzantine.nodes=[0]", "byzantine.unsafe=true"
    )
    with pytest.warns(UserWarning, match="needs in-degree >= 3"):
        simulate(cfg, opt, workdir=tmp_path, progress=False)
    meta = json.loads((tmp_path / "metadata.json").read_text())["byzantine"]
    assert meta["unsafe"] is True and meta["violations"]


RING8 = (
    "topology=ring",
    "topology.n=8",
    "model=mlp",
    "model.hidden=[32]",
    "optimizer.learning_rate=0.1",
    "algorithm.local_steps=1",
    "rounds=30",
    "eval_every=30",
)


@pytest.mark.slow
def test_sign_flip_on_a_ring_of_8_breaks_dsgd_but_not_clipped_gossip():
    """Margins measured over seeds 0-2 (honest accuracy after 30 rounds; clean run in
    brackets): D-SGD 0.23/0.31/0.15 (0.65/0.69/0.55), ClippedGossip 0.64/0.68/0.54. The
    test asks for a third of that: D-SGD ≥ 0.2 below clean, ClippedGossip within 0.05."""
    attack = ("byzantine.nodes=[0]", "byzantine.attack=sign_flip")
    for seed in range(3):
        clean_cfg, opt = compose_config(*RING8, f"seed={seed}")
        clean = simulate(clean_cfg, opt).records[-1]["test_accuracy_mean"]
        acc = {}
        for rule in ("none", "clipped_gossip"):
            cfg, opt = compose_config(*RING8, f"seed={seed}", f"byzantine={rule}", *attack)
            acc[rule] = simulate(cfg, opt).records[-1]["test_accuracy_honest_mean"]
        assert acc["none"] < clean - 0.2, (seed, clean, acc)
        assert acc["clipped_gossip"] > clean - 0.05, (seed, clean, acc)


def test_round_state_carries_the_previous_messages():
    cfg, opt = compose_config(*FAST, "byzantine.nodes=[1]", "byzantine.attack=ipm")
    exp = build_experiment(cfg, opt)
    sim, state = build_simulation(exp, cfg)
    assert isinstance(state, ByzantineCarried) and not bool(state.carry.started)
    batches, _ = sim.batches(0)
    after, info = sim.round_fn(state, batches, sim.gossip(0)[0], exp.stream(2, 0))
    assert bool(after.carry.started) and bool(np.asarray(after.carry.prev_ok).all())
    assert info["byzantine_flagged"].shape == (exp.n,)
    leaves = jax.tree.leaves(after.carry.prev)
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves)
