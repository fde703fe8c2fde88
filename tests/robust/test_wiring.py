"""The gathered mixer, the rule dispatch and the attack messages on hand-built cases."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.gossip.gathered import Edges, GatheredMixer, edge_slots, gather, mixed_sum
from dfl.robust.attacks import reverse_edges
from dfl.robust.messages import AttackSpec, attack_messages
from dfl.robust.rules import RuleSpec, robust_mix
from dfl.topology import build_schedule
from tests.node.common import compose_config

W3 = np.array([[0.5, 0.25, 0.25], [0.5, 0.5, 0.0], [0.25, 0.0, 0.75]], np.float32)


def edges_of_matrix(W: np.ndarray) -> Edges:
    dst, src = edge_slots([W])
    w = W[dst, src]
    return Edges(
        jnp.asarray(dst),
        jnp.asarray(src),
        jnp.asarray(w),
        jnp.asarray(w != 0),
        jnp.asarray(np.diag(W)),
    )


def test_edge_slots_are_the_union_of_the_period_row_major():
    a = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1.0]])
    b = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1.0]])
    dst, src = edge_slots([a, b])
    assert dst.tolist() == [0, 2] and src.tolist() == [1, 0]


def test_mixed_sum_is_w_times_messages_and_renormalizes_undelivered():
    edges = edges_of_matrix(W3)
    x = {"w": jnp.array([[1.0, 2.0], [3.0, 5.0], [-1.0, 4.0]])}
    m_e = gather(x, edges.src)
    full = mixed_sum(x, m_e, edges, edges.valid)
    np.testing.assert_allclose(full["w"], W3 @ np.asarray(x["w"]), rtol=1e-6)
    # drop 2 → 0 (slot 1): node 0 keeps that weight on its own message
    lost = edges.valid.at[1].set(False)
    out = mixed_sum(x, m_e, edges, lost)
    want = 0.75 * np.array([1.0, 2.0]) + 0.25 * np.array([3.0, 5.0])
    np.testing.assert_allclose(out["w"][0], want, rtol=1e-6)
    np.testing.assert_allclose(out["w"][1:], full["w"][1:], rtol=1e-6)


def test_gathered_mixer_equals_dense_gossip_on_a_periodic_schedule():
    cfg, _ = compose_config("topology=one_peer_exponential", "topology.n=8", "mixing=uniform")
    schedule = build_schedule(cfg.topology, cfg.mixing, seed=0)
    mixer = GatheredMixer(schedule)
    x = jax.random.normal(jax.random.key(0), (8, 5))
    for t in range(3):
        got = jax.jit(mixer.apply)(x, mixer.data(t))
        np.testing.assert_allclose(got, schedule.weights(t) @ np.asarray(x), rtol=1e-5, atol=1e-6)


def test_gathered_mixer_refuses_a_random_schedule():
    cfg, _ = compose_config("topology=random_matching", "topology.n=8", "mixing=uniform")
    schedule = build_schedule(cfg.topology, cfg.mixing, seed=0)
    with pytest.raises(ValueError, match="random"):
        GatheredMixer(schedule)


def test_robust_mix_dispatches_to_each_rule_on_a_hand_case():
    # node 0 hears 1 and 2 (uniform thirds); one coordinate
    W = np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0], [0.5, 0, 0.5]], np.float32)
    edges = edges_of_matrix(W)
    x = jnp.array([[0.0], [3.0], [30.0]])
    m_e = gather(x, edges.src)
    ok = edges.valid
    none = robust_mix(x, m_e, edges, ok, RuleSpec("none"))
    assert float(none[0, 0]) == pytest.approx(11.0)
    med = robust_mix(x, m_e, edges, ok, RuleSpec("median"))
    assert float(med[0, 0]) == pytest.approx(3.0)  # median of {0, 3, 30}
    trim = robust_mix(x, m_e, edges, ok, RuleSpec("trimmed_mean", b=1))
    assert float(trim[0, 0]) == pytest.approx(0.0)  # {3, 30} trimmed to none, own kept
    clip = robust_mix(x, m_e, edges, ok, RuleSpec("clipped_gossip", tau="fixed", tau_value=3.0))
    assert float(clip[0, 0]) == pytest.approx((3.0 + 3.0) / 3)  # both pulls clipped to 3
    inf = robust_mix(x, m_e, edges, ok, RuleSpec("clipped_gossip", tau="fixed"))
    np.testing.assert_allclose(inf, none, rtol=1e-6)
    with pytest.raises(ValueError, match="pairs"):
        robust_mix(x, m_e, edges, ok, RuleSpec("krum", b=0))


def ring_edges(n: int) -> Edges:
    W = np.zeros((n, n), np.float32)
    for i in range(n):
        W[i, i] = W[i, (i + 1) % n] = W[i, (i - 1) % n] = 1 / 3
    return edges_of_matrix(W)


def attack(spec, x, edges, byz, *, prev=None, prev_ok=None, started=True, key=0):
    prev = x if prev is None else prev
    ok = edges.valid if prev_ok is None else prev_ok
    return attack_messages(
        spec,
        gather(x, edges.src),
        edges,
        jnp.asarray(byz),
        key=jax.random.key(key),
        prev_e=gather(prev, edges.src),
        prev_ok=ok,
        reverse=jnp.asarray(reverse_edges(np.asarray(edges.dst), np.asarray(edges.src))),
        started=jnp.asarray(started),
    )


def test_attack_messages_replace_only_the_attackers_edges():
    edges = ring_edges(5)
    x = jnp.arange(5.0)[:, None] + 1
    byz = np.array([False, False, True, False, False])
    out = attack(AttackSpec("sign_flip", scale=2.0), x, edges, byz)
    src = np.asarray(edges.src)
    want = np.where(src == 2, -2.0 * 3.0, src + 1.0)
    np.testing.assert_allclose(out[:, 0], want)
    same = attack(AttackSpec("none"), x, edges, byz)
    np.testing.assert_allclose(same[:, 0], src + 1.0)


def test_ipm_uses_the_previous_rounds_honest_messages_and_waits_for_one():
    edges = ring_edges(5)
    x = jnp.arange(5.0)[:, None]
    prev = jnp.array([[10.0], [20.0], [0.0], [40.0], [0.0]])
    byz = np.array([False, False, True, False, False])
    out = attack(AttackSpec("ipm", epsilon=0.5), x, edges, byz, prev=prev)
    src = np.asarray(edges.src)
    # attacker 2 heard 1 and 3 last round: mean 30, sends -0.5 * 30 on both its edges
    np.testing.assert_allclose(out[src == 2, 0], [-15.0, -15.0])
    first = attack(AttackSpec("ipm", epsilon=0.5), x, edges, byz, prev=prev, started=False)
    np.testing.assert_allclose(first[src == 2, 0], [2.0, 2.0])  # round 0: honest message


def test_gaussian_noise_of_an_edge_does_not_depend_on_the_others():
    edges = ring_edges(4)
    x = jnp.zeros((4, 3))
    byz = np.array([True, False, True, False])
    spec = AttackSpec("gaussian", sigma=1.0)
    full = attack(spec, x, edges, byz)
    keep = np.asarray(edges.src) == 0
    dst, src, w, valid = (jnp.asarray(np.asarray(a)[keep]) for a in edges[:4])
    sub = Edges(dst, src, w, valid, edges.self_weight)
    only = attack_messages(
        spec,
        gather(x, sub.src),
        sub,
        jnp.asarray(byz),
        key=jax.random.key(0),
        prev_e=gather(x, sub.src),
        prev_ok=sub.valid,
        reverse=jnp.full(sub.dst.shape, -1),
        started=jnp.asarray(True),
    )
    np.testing.assert_allclose(only, full[keep])
    assert float(jnp.abs(full[np.asarray(edges.src) == 1]).max()) == 0.0  # honest untouched
    assert float(jnp.std(full[np.asarray(edges.src) == 0])) > 0.1
