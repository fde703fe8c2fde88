"""The Byzantine plan refuses what a rule cannot do, and reports what the placement produced."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dfl.experiment import build_experiment
from dfl.robust.plan import ByzantinePlan, active
from tests.node.common import compose_config


def plan_of(*overrides: str) -> ByzantinePlan:
    cfg, opt = compose_config(*overrides)
    plan = build_experiment(cfg, opt).byzantine
    assert plan is not None
    return plan


def test_the_default_is_an_ordinary_run():
    cfg, opt = compose_config()
    assert not active(cfg.byzantine)
    assert build_experiment(cfg, opt).byzantine is None


@pytest.mark.parametrize(
    ("algorithm", "extra"),
    [
        ("choco", ()),
        ("gradient_tracking", ()),
        ("push_sum", ("mixing=column_stochastic",)),
        ("d2", ("mixing=lazy",)),
        ("fedavg", ("topology=complete", "mixing=uniform")),
    ],
)
def test_robust_rules_are_refused_for_wait_algorithms(algorithm, extra):
    with pytest.raises(ValueError, match=rf"byzantine=median.*{algorithm!r} must WAIT"):
        plan_of(f"algorithm={algorithm}", *extra, "byzantine=median", "topology.n=6")


def test_detection_is_refused_for_wait_algorithms():
    with pytest.raises(ValueError, match=r"byzantine\.detect=true"):
        plan_of("algorithm=gradient_tracking", "byzantine.detect=true")


def test_plain_gossip_under_attack_is_allowed_for_wait_algorithms():
    plan = plan_of(
        "algorithm=gradient_tracking", "byzantine.nodes=[1]", "byzantine.attack=sign_flip"
    )
    assert plan.rule.name == "none" and plan.attackers.tolist() == [1]


def test_a_ring_is_refused_for_trimmed_mean_unless_unsafe():
    # ring: in-degree 2 < 2b + 1 = 3
    with pytest.raises(ValueError, match=r"trimmed_mean with b=1 needs in-degree >= 3.*unsafe"):
        plan_of("byzantine=trimmed_mean", "byzantine.attackers=1")
    with pytest.warns(UserWarning, match="byzantine.unsafe=true"):
        plan = plan_of("byzantine=trimmed_mean", "byzantine.attackers=1", "byzantine.unsafe=true")
    meta = plan.metadata()["byzantine"]
    assert meta["unsafe"] is True and "in-degree >= 3" in meta["violations"][0]


def test_krum_needs_2b_plus_2():
    with pytest.raises(ValueError, match=r"krum with b=1 needs in-degree >= 4"):
        plan_of("topology=complete", "mixing=uniform", "byzantine=krum", "byzantine.nodes=[0]")
    ok = plan_of(
        "topology=complete",
        "mixing=uniform",
        "topology.n=5",
        "byzantine=krum",
        "byzantine.nodes=[0]",
    )
    assert ok.rule.b == 1 and ok.violations == ()


def test_more_attackers_next_to_a_node_than_b_is_refused():
    # ring of 4 with attackers 0 and 2: node 1 hears both
    with pytest.raises(ValueError, match=r"up to 2 attackers next to an honest node.*b=1"):
        plan_of("byzantine=clipped_gossip", "byzantine.nodes=[0,2]", "byzantine.b=1")
    plan = plan_of("byzantine=clipped_gossip", "byzantine.nodes=[0,2]")  # b from the placement
    assert plan.rule.b == 2


def test_metadata_reports_the_per_node_count_of_the_placement():
    plan = plan_of("topology.n=8", "byzantine=clipped_gossip", "byzantine.attackers=2", "seed=3")
    meta = plan.metadata()["byzantine"]
    attackers = meta["attackers"]
    assert len(attackers) == 2 and meta["rule"] == "clipped_gossip"
    want = np.zeros(8, int)
    for a in attackers:  # a ring: each attacker is an in-neighbour of a ± 1
        want[(a + 1) % 8] += 1
        want[(a - 1) % 8] += 1
    assert meta["attackers_per_node"] == want.tolist()
    honest = [i for i in range(8) if i not in attackers]
    assert meta["max_attackers_per_honest_node"] == int(want[honest].max())
    again = plan_of("topology.n=8", "byzantine=clipped_gossip", "byzantine.attackers=2", "seed=3")
    assert again.attackers.tolist() == attackers  # placed by seed


def test_a_random_schedule_and_bad_options_are_refused():
    with pytest.raises(ValueError, match="periodic topology"):
        plan_of("topology=random_matching", "mixing=uniform", "byzantine=clipped_gossip")
    with pytest.raises(ValueError, match=r"byzantine.kappa=1.0 \(expected > 1\)"):
        plan_of("byzantine.detect=true", "byzantine.kappa=1.0")
    with pytest.raises(ValueError, match=r"attacker ids must lie in \[0, 4\)"):
        plan_of("byzantine.nodes=[7]")


def test_label_flip_flips_only_the_attackers_labels():
    cfg, opt = compose_config("byzantine.nodes=[1]", "byzantine.attack=label_flip")
    flipped = build_experiment(cfg, opt).federated.train
    clean = build_experiment(dataclasses.replace(cfg, byzantine=type(cfg.byzantine)()), opt)
    y0, y1 = np.asarray(clean.federated.train.y), np.asarray(flipped.y)
    counts = np.asarray(flipped.counts)
    np.testing.assert_array_equal(y1[1, : counts[1]], 9 - y0[1, : counts[1]])
    np.testing.assert_array_equal(np.delete(y1, 1, axis=0), np.delete(y0, 1, axis=0))
