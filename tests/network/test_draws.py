"""The one generator family: numpy and jit agree, and the fault injector drops what the
simulation's network model drops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dfl.config.deploy_schema import FaultConfig
from dfl.network import clock, draws
from dfl.transport.faults import FaultInjector
from dfl.transport.wire import Kind
from tests.network.models import hand_model


def test_numpy_and_jit_draw_the_same_bits():
    rounds = np.arange(-1, 40)[:, None, None]
    i, j = np.arange(32)[None, :, None], np.arange(32)[None, None, :]
    host = draws.uniform(np, 9, draws.DROP, rounds, i, j)
    dev = jax.jit(lambda t, a, b: draws.uniform(jnp, 9, draws.DROP, t, a, b))(rounds, i, j)
    np.testing.assert_array_equal(host, np.asarray(dev))
    assert host.dtype == np.float32 and host.min() > 0 and host.max() < 1
    # uniform: mean 1/2, variance 1/12, no two words collide
    assert abs(host.mean() - 0.5) < 5 * np.sqrt(1 / 12 / host.size)
    assert abs(host.var() - 1 / 12) < 0.002
    assert len(np.unique(draws.hash32(np, 0, np.arange(1 << 16)))) == 1 << 16


def test_the_injector_drops_exactly_the_models_drops():
    n, rounds, p, seed = 6, 30, 0.3, 11
    model = hand_model(np.zeros((n, n)), np.zeros((rounds, n)), drop=p, seed=seed)
    injector = FaultInjector(FaultConfig(seed=seed, drop=p), n)
    net, complete = clock.init(np, n), ~np.eye(n, dtype=bool)
    for t in range(rounds):
        net, out = clock.step(np, model, net, complete)
        lost = np.array(
            [[i != j and injector.loses(j, i, t, Kind.WIRE) for j in range(n)] for i in range(n)]
        )
        np.testing.assert_array_equal(lost, complete & ~out.delivered)


def test_offline_intervals_cut_a_node_off_in_the_injector():
    injector = FaultInjector(FaultConfig(offline=[[1, 2, 4]]), 3)
    lost = {(s, r, t) for s in range(3) for r in range(3) for t in range(6) if s != r}
    lost = {m for m in lost if injector.loses(*m, Kind.WIRE)}
    assert lost == {(s, r, t) for t in (2, 3) for s, r in ((0, 1), (1, 0), (1, 2), (2, 1))}
