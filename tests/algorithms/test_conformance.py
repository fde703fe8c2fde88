"""One conformance suite that every algorithm passes (as optax's ``contrib/_common_test.py``).

Each case is a builder, the ``W`` it is run with, and the closed-form limit every
node reaches on the quadratics ``f_i(x) = ½||x − b_i||²`` with one ``optax.sgd(η)``
step per round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements
from dfl.algorithms.choco import choco
from dfl.algorithms.d2 import d2
from dfl.algorithms.dsgd import dsgd
from dfl.algorithms.dsgd_ef import dsgd_ef
from dfl.algorithms.dsgdm import dsgdm
from dfl.algorithms.fedavg import fedavg, local_sgd
from dfl.algorithms.gradient_tracking import gradient_tracking
from dfl.algorithms.push_sum import push_sum
from dfl.algorithms.qgm import qgm
from dfl.compression import top_k
from dfl.sim.round import make_round, node_keys, wire_bytes
from tests.algorithms.quadratic import (
    DenseTestMixer,
    atc_fixed_point,
    cta_fixed_point,
    directed_exponential,
    lazy_ring,
    local_of,
    push_sum_fixed_point,
    random_directed,
    random_row_stochastic,
    simulate,
    targets,
)

ETA = 0.1
BETA = 0.5
GAMMA = 0.3
N = 8


def consensus_at_mean(W: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.repeat(b.mean(0, keepdims=True), len(b), axis=0)


@dataclasses.dataclass(frozen=True)
class Case:
    """An algorithm under test.

    Attributes:
      build: ``build(optimizer) -> Algorithm``.
      fixed_point: ``fixed_point(W, b)``: the limit of every node's parameters.
      exact: whether that limit is ``mean(b)`` at every node (no D-SGD bias).
    """

    build: Callable[[optax.GradientTransformation], Algorithm]
    fixed_point: Callable[[np.ndarray, np.ndarray], np.ndarray]
    exact: bool = False


CASES = {
    "dsgd_atc": Case(
        lambda opt: dsgd(local_of(opt), order="atc"), lambda W, b: atc_fixed_point(W, b, ETA)
    ),
    "dsgd_cta": Case(
        lambda opt: dsgd(local_of(opt), order="cta"), lambda W, b: cta_fixed_point(W, b, ETA)
    ),
    # The stationary buffer is g / (1 − β): ATC D-SGD with step η / (1 − β).
    "dsgdm": Case(
        lambda opt: dsgdm(local_of(opt), momentum=BETA),
        lambda W, b: atc_fixed_point(W, b, ETA / (1 - BETA)),
    ),
    # The quasi-global buffer vanishes once the models stop moving: ATC D-SGD with step η.
    "qgm": Case(
        lambda opt: qgm(local_of(opt), momentum=BETA), lambda W, b: atc_fixed_point(W, b, ETA)
    ),
    "gradient_tracking": Case(
        lambda opt: gradient_tracking(local_of(opt)), consensus_at_mean, exact=True
    ),
    "choco_identity": Case(
        lambda opt: choco(local_of(opt)), lambda W, b: atc_fixed_point(W, b, ETA)
    ),
    # q = 0 at a fixed point, so x̂ = x^{t+½}: ATC D-SGD with W_γ = (1 − γ)I + γW.
    "choco_top_k": Case(
        lambda opt: choco(local_of(opt), gamma=GAMMA, compressor=top_k(k=1)),
        lambda W, b: atc_fixed_point((1 - GAMMA) * np.eye(len(W)) + GAMMA * W, b, ETA),
    ),
    # DeepSqueeze with identity compression: ATC D-SGD with W_γ (its floor is 0).
    "dsgd_ef_identity": Case(
        lambda opt: dsgd_ef(local_of(opt), gamma=GAMMA),
        lambda W, b: atc_fixed_point((1 - GAMMA) * np.eye(len(W)) + GAMMA * W, b, ETA),
    ),
    "push_sum": Case(
        lambda opt: push_sum(local_of(opt)), lambda W, b: push_sum_fixed_point(W, b, ETA)
    ),
    "d2": Case(lambda opt: d2(local_of(opt)), consensus_at_mean, exact=True),
    "fedavg": Case(lambda opt: fedavg(local_of(opt)), consensus_at_mean, exact=True),
}
NAMES = list(CASES)


def build(name: str, optimizer=None) -> Algorithm:
    return CASES[name].build(optax.sgd(ETA) if optimizer is None else optimizer)


def mixing_for(req: MixingRequirements, n: int = N) -> np.ndarray:
    """A static W that meets ``req``, with weights exact in float32."""
    if req.exact_average:
        return np.full((n, n), 1 / n)
    if req.stochastic == "column" and not req.symmetric:
        return directed_exponential(n)
    if req.stochastic == "row":
        return random_row_stochastic(n)
    return lazy_ring(n)


def schedule_for(req: MixingRequirements, n: int = N) -> np.ndarray:
    """Two different W's ``[2, n, n]`` that meet ``req`` (a time-varying schedule)."""
    if req.stochastic == "column":
        return np.stack([directed_exponential(n), random_directed(n)])
    if req.stochastic == "row":
        return np.stack([random_row_stochastic(n, seed=1), random_row_stochastic(n, seed=2)])
    return np.stack([lazy_ring(n, hop=1), lazy_ring(n, hop=2)])


def shapes(tree):
    return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("name", NAMES)
def test_reaches_closed_form_fixed_point(name):
    case, alg = CASES[name], build(name)
    W, b = mixing_for(alg.requirements), targets(N)
    alg.requirements.check(W, time_varying=False, algorithm=alg.name)
    xs, _ = simulate(alg, b, W, 400)
    x_star = case.fixed_point(W, b)
    np.testing.assert_allclose(xs[-1], x_star, atol=2e-5)
    # The limit is per node, not only the average: the simulated iterates of the exact
    # methods reach mean(b) at every node (float32: ~1e-7), the D-SGD family stops at a
    # biased point that W determines.
    bias = np.abs(xs[-1] - b.mean(0)).max()
    assert bias < 1e-6 if case.exact else bias > 1e-2


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_jits_and_state_is_stable(name, dtype):
    alg = build(name)
    W, b = mixing_for(alg.requirements), targets(N)
    keys = node_keys(jax.random.key(0), N)
    state = jax.vmap(alg.init)({"x": jnp.zeros((N, 3), dtype)}, keys)
    batches = jnp.asarray(b, jnp.float32)[:, None]
    round_fn = jax.jit(make_round(alg, DenseTestMixer()))
    first = shapes(state)
    for t in range(3):
        state, info = round_fn(state, batches, jnp.asarray(W, jnp.float32), jax.random.key(t))
        assert shapes(state) == first
    assert info["loss"].shape == (N,)
    params = jax.vmap(alg.params)(state)
    assert shapes(params) == shapes({"x": jnp.zeros((N, 3), dtype)})
    assert np.isfinite(np.asarray(params["x"], np.float32)).all()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name):
    alg = build(name)
    W, b = mixing_for(alg.requirements), targets(N)
    x0 = targets(N, seed=3)
    first, _ = simulate(alg, b, W, 5, x0=x0, seed=7)
    again, _ = simulate(alg, b, W, 5, x0=x0, seed=7)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("name", NAMES)
def test_node_mode_equals_simulation(name):
    """The per-node functions jitted without the node axis, messages mixed by hand."""
    alg = build(name)
    W, b = mixing_for(alg.requirements), targets(N)
    x0 = targets(N, seed=4)
    keys = node_keys(jax.random.key(0), N)
    stacked = jax.vmap(alg.init)({"x": jnp.asarray(x0, jnp.float32)}, keys)
    nodes = [alg.init({"x": jnp.asarray(x0[i], jnp.float32)}, keys[i]) for i in range(N)]
    batches = jnp.asarray(b, jnp.float32)[:, None]
    round_fn = jax.jit(make_round(alg, DenseTestMixer()))
    step, decode, combine = jax.jit(alg.step), jax.jit(alg.decode), jax.jit(alg.combine)
    for t in range(3):
        key = jax.random.key(t)
        stacked, _ = round_fn(stacked, batches, jnp.asarray(W, jnp.float32), key)
        outs = [step(nodes[i], batches[i], jax.random.fold_in(key, i)) for i in range(N)]
        messages = [decode(wire) for _, wire, _ in outs]
        for i in range(N):
            mixed = jax.tree.map(
                lambda *ms, i=i: sum(np.float32(W[i, j]) * m for j, m in enumerate(ms)),
                *messages,
            )
            nodes[i] = combine(outs[i][0], mixed)
    for i in range(N):
        np.testing.assert_allclose(
            alg.params(nodes[i])["x"],
            jax.vmap(alg.params)(stacked)["x"][i],
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize("name", NAMES)
def test_time_varying_runs_where_declared_and_is_refused_otherwise(name):
    alg = build(name)
    req = alg.requirements
    Ws, b = schedule_for(req), targets(N)
    if req.exact_average:
        Ws = np.stack([mixing_for(req)] * 2)
    if not req.time_varying:
        with pytest.raises(ValueError, match="static"):
            req.check(Ws[0], time_varying=True, algorithm=alg.name)
        return
    for W in Ws:
        req.check(W, time_varying=True, algorithm=alg.name)
    xs, _ = simulate(alg, b, Ws, 60)
    assert np.isfinite(xs).all()
    if not req.exact_average:  # the schedule is really used: it differs from its first W alone
        assert np.abs(simulate(alg, b, Ws[0], 60)[0][-1] - xs[-1]).max() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_refuses_a_w_of_the_wrong_kind(name):
    alg = build(name)
    req = alg.requirements
    row_only, column_only = random_row_stochastic(N), random_row_stochastic(N).T
    wrong = {"row": [column_only], "column": [row_only], "doubly": [row_only, column_only]}
    for W in wrong[req.stochastic]:
        with pytest.raises(ValueError, match=rf"{alg.name}.*sums of 1"):
            req.check(W, time_varying=False, algorithm=alg.name)


@pytest.mark.parametrize("name", NAMES)
def test_declares_a_sound_missing_rule_and_its_wire(name):
    alg = build(name)
    # Renormalising over the heard messages is sound only for the D-SGD family.
    if name.startswith(("gradient_tracking", "choco", "push_sum", "d2", "fedavg")):
        assert alg.missing_rule == MissingRule.WAIT
    else:
        assert alg.missing_rule == MissingRule.RENORMALIZE
    state = alg.init({"x": jnp.zeros((100,), jnp.float32)}, jax.random.key(0))
    nbytes = wire_bytes(alg, state, jnp.zeros((1, 100), jnp.float32))
    dense = 100 * 4
    expected = {"gradient_tracking": 2 * dense, "push_sum": dense + 4, "choco_top_k": 4 + 1}
    assert nbytes == expected.get(name, dense)


def test_local_sgd_is_fedavg():
    assert local_sgd is fedavg
