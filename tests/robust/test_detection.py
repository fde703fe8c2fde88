"""The distance-outlier test: honest-only runs flag nothing; a sign-flip attacker is flagged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.robust import (
    clipped_gossip,
    edges_of,
    flag_counts,
    gather,
    init_detector,
    inject,
    sign_flip,
    update_detector,
)
from dfl.robust.detection import leave_one_out_median
from dfl.topology.mixing import metropolis_hastings
from dfl.topology.static import ring
from tests.robust.reference import random_graph


def test_leave_one_out_median_by_hand():
    values = jnp.array([1.0, 2.0, 10.0, 4.0, 7.0])
    dst = jnp.array([0, 0, 0, 1, 2])
    ok = jnp.array([True, True, True, True, False])
    med, has = leave_one_out_median(values, dst, ok, 3)
    np.testing.assert_allclose(med[:3], [6.0, 5.5, 1.5])
    assert has.tolist() == [True, True, True, False, False]


def run(W, rounds, *, attackers=(), seed=0, window=5, min_rounds=1):
    """Gossip with fresh local noise; the attackers sign-flip; flagged edges are masked out."""
    n = W.shape[0]
    dst, src, weight, _ = edges_of(W)
    byz = jnp.zeros(n, bool).at[jnp.asarray(list(attackers), jnp.int32)].set(True)
    state = init_detector(len(dst), window=window)
    x = 5.0 + jax.random.normal(jax.random.key(seed), (n, 6))

    @jax.jit
    def step(state, x, key):
        m = inject(gather(x, src), sign_flip(gather(x, src)), src, byz)
        state = update_detector(state, x, m, dst, min_rounds=min_rounds)
        x = clipped_gossip(x, m, dst, weight, tau=jnp.inf, delivered=~state.flagged)
        return state, x + 0.3 * jax.random.normal(key, x.shape)

    for t in range(rounds):
        state, x = step(state, x, jax.random.key(1000 * seed + t))
    return state, x, dst, src, byz


@pytest.mark.parametrize(("seed", "min_rounds"), [(0, 1), (1, 1), (2, 3), (3, 5)])
def test_honest_only_flags_nothing(seed, min_rounds):
    W = metropolis_hastings(random_graph(seed, 10, 0.3))
    state, *_ = run(W, 40, seed=seed, min_rounds=min_rounds)
    assert int(state.round) == 40
    assert not bool(jnp.any(state.flagged))


def test_a_sign_flip_attacker_is_flagged_and_cut_off_on_a_ring():
    state, x, _, src, byz = run(metropolis_hastings(ring(8)), 30, attackers=[0])
    flagged = np.asarray(state.flagged)
    from_attacker = np.asarray(src) == 0
    assert flagged[from_attacker].all()  # 0 → 1 and 0 → 7
    assert not flagged[~from_attacker].any()  # no honest edge, not even the attacker's inbox
    counts = {k: int(v) for k, v in flag_counts(state.flagged, src, byz).items()}
    assert counts == {
        "byzantine_flagged": 2,
        "byzantine_flagged_true": 2,
        "byzantine_flagged_false": 0,
    }
    honest = ~np.asarray(byz)
    # once cut off, the honest nodes stay near 5 instead of being dragged towards -5
    assert np.all(np.abs(np.asarray(x)[honest].mean(axis=1) - 5.0) < 1.5)


def test_nothing_is_judged_before_min_rounds_and_bad_arguments():
    own = jnp.zeros((2, 1))
    msgs = jnp.array([[1.0], [100.0]])
    dst = jnp.array([0, 0])
    state = init_detector(2, window=3)
    for _ in range(2):
        state = update_detector(state, own, msgs, dst)
        assert not bool(jnp.any(state.flagged))
    state = update_detector(state, own, msgs, dst)
    assert state.flagged.tolist() == [False, True]
    with pytest.raises(ValueError, match="window must be >= 1"):
        init_detector(2, window=0)
    with pytest.raises(ValueError, match=r"min_rounds must be in \[1, 3\]"):
        update_detector(state, own, msgs, dst, min_rounds=4)
