"""The missing-message rules, on numbers computed by hand."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from dfl.algorithms.base import MissingRule
from dfl.node import in_neighbours, mix, out_neighbours, plan_mix

ROW = np.array([0.5, 0.25, 0.0, 0.25])
OWN = {"x": jnp.array([1.0, 10.0])}
FROM_1 = {"x": jnp.array([2.0, 20.0])}
LAST_3 = {"x": jnp.array([4.0, 40.0])}


def mixed(plan):
    return np.asarray(mix(jnp.asarray(plan.weights), plan.messages)["x"])


def test_all_messages_present_mixes_with_w():
    plan = plan_mix(0, ROW, OWN, {1: FROM_1, 3: LAST_3}, MissingRule.RENORMALIZE)
    assert plan.sources == [0, 1, 3] and plan.missing == []
    np.testing.assert_allclose(mixed(plan), [0.5 + 0.5 + 1.0, 5.0 + 5.0 + 10.0])


def test_renormalize_gives_the_missing_weight_to_the_node():
    plan = plan_mix(0, ROW, OWN, {1: FROM_1}, MissingRule.RENORMALIZE)
    assert plan.missing == [3] and plan.reused == []
    np.testing.assert_allclose(plan.weights, [0.75, 0.25, 0.0])
    np.testing.assert_allclose(mixed(plan), [0.75 + 0.5, 7.5 + 5.0])


def test_reuse_last_uses_the_last_message():
    plan = plan_mix(0, ROW, OWN, {1: FROM_1}, MissingRule.REUSE_LAST, {3: LAST_3})
    assert plan.missing == [3] and plan.reused == [3]
    np.testing.assert_allclose(mixed(plan), [0.5 + 0.5 + 1.0, 5.0 + 5.0 + 10.0])


def test_reuse_last_without_history_renormalizes():
    plan = plan_mix(0, ROW, OWN, {1: FROM_1}, MissingRule.REUSE_LAST, {})
    assert plan.reused == []
    np.testing.assert_allclose(mixed(plan), [1.25, 12.5])


def test_wait_refuses_a_missing_message():
    with pytest.raises(RuntimeError, match="WAIT"):
        plan_mix(0, ROW, OWN, {1: FROM_1}, MissingRule.WAIT)


def test_mix_keeps_dtypes():
    a = {"x": jnp.array([1.0, 2.0], jnp.bfloat16), "n": jnp.array([3], jnp.int32)}
    out = mix(jnp.array([0.5, 0.5]), [a, a])
    assert out["x"].dtype == jnp.bfloat16 and out["n"].dtype == jnp.int32


def test_neighbours_follow_w_columns_and_rows():
    W = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])  # directed cycle
    assert in_neighbours(W, 0) == [1] and out_neighbours(W, 0) == [2]
