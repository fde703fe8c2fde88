"""DSGDm: the explicit local-momentum D-SGD."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from dfl.algorithms.dsgd import dsgd
from dfl.algorithms.dsgdm import dsgdm
from tests.algorithms.quadratic import local_of, ring_mh, run, simulate, targets

ETA = 0.1


@pytest.mark.parametrize(("nesterov", "local_steps"), [(False, 1), (True, 1), (False, 3)])
def test_equals_dsgd_with_optax_momentum(nesterov, local_steps):
    """With optax.sgd(η) as the base, DSGDm is D-SGD over optax.sgd(η, momentum=β)."""
    n = 8
    W, b, x0 = ring_mh(n), targets(n), targets(n, seed=1)
    ours = run(
        dsgdm(local_of(optax.sgd(ETA)), momentum=0.9, nesterov=nesterov),
        b,
        W,
        30,
        local_steps=local_steps,
        x0=x0,
    )
    reference = run(
        dsgd(local_of(optax.sgd(ETA, momentum=0.9, nesterov=nesterov))),
        b,
        W,
        30,
        local_steps=local_steps,
        x0=x0,
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    assert np.abs(ours - run(dsgd(local_of(optax.sgd(ETA))), b, W, 30, x0=x0)).max() > 1e-2


def test_buffer_is_never_mixed():
    """After one round the buffer holds the node's own gradient, whatever W is."""
    n = 6
    b, x0 = targets(n), targets(n, seed=2)
    _, state = simulate(dsgdm(local_of(optax.sgd(ETA)), momentum=0.9), b, ring_mh(n), 1, x0=x0)
    np.testing.assert_allclose(state.momentum["x"], x0 - b, rtol=1e-6, atol=1e-6)
    # ... and the parameters were mixed.
    np.testing.assert_allclose(
        state.params["x"], ring_mh(n) @ (x0 - ETA * (x0 - b)), rtol=1e-5, atol=1e-6
    )
    assert jax.tree.structure(state.momentum) == jax.tree.structure(state.params)


@pytest.mark.parametrize("momentum", [-0.1, 1.0])
def test_bad_momentum_is_refused(momentum):
    with pytest.raises(ValueError, match="momentum"):
        dsgdm(local_of(optax.sgd(ETA)), momentum=momentum)
