"""The one generator family of every network draw, in the simulation and the deployment.

A draw is a pure function of integer words ``(seed, stream, round, node, edge, ...)``:
a counter-based hash (Wellons' ``lowbias32`` finaliser, chained over the words) in
``uint32`` arithmetic, written against an array namespace ``xp`` so that
``numpy`` (the deployment's fault injector, host-side tables) and ``jax.numpy``
(inside the jitted round) compute bit-identical values. Words broadcast, so one
call draws a whole ``[N, N]`` matrix of per-edge decisions::

    u = uniform(jnp, seed, DROP, t, jnp.arange(n)[None, :], jnp.arange(n)[:, None])

``uniform`` returns float32 multiples of ``2^-24`` in ``(0, 1)``; comparisons
against a float32 probability are therefore decided alike in both modes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DROP = 1
"""Stream of link drops: words ``(round, sender, receiver)``."""
CHURN = 2
"""Stream of churn transitions: words ``(round, node)``."""
STRAGGLER = 3
"""Stream of straggler draws: words ``(round, node)``."""
COMPUTE = 4
"""Stream of per-node compute speeds: words ``(node, half)`` (two uniforms per normal)."""
JITTER = 5
"""Stream of per-round compute jitter: words ``(round, node, half)``."""
LINK = 6
"""Stream of per-edge link draws: words ``(receiver, sender, field, half)``."""
TRANSPORT = 7
"""Stream of the deployment's other message faults: words ``(round, sender, receiver, what)``."""

_GOLDEN = 0x9E3779B9
_M1 = 0x7FEB352D
_M2 = 0x846CA68B


def _u32(xp: Any, x: Any) -> Any:
    """``x`` as uint32 (negative integers wrap, as a C cast)."""
    arr = xp.asarray(x)
    if arr.dtype != xp.uint32:
        arr = arr.astype(xp.int64 if xp is np else xp.int32).astype(xp.uint32)
    return arr


def _mix(xp: Any, x: Any) -> Any:
    """Wellons' lowbias32: a bijective avalanche of a uint32."""
    x = x ^ (x >> xp.uint32(16))
    x = x * xp.uint32(_M1)
    x = x ^ (x >> xp.uint32(15))
    x = x * xp.uint32(_M2)
    return x ^ (x >> xp.uint32(16))


def hash32(xp: Any, *words: Any) -> Any:
    """The uint32 hash of ``words`` (broadcast together); pure, order-sensitive."""
    with np.errstate(over="ignore"):
        h = _mix(xp, xp.asarray(_GOLDEN, dtype=xp.uint32))
        for w in words:
            h = _mix(xp, h ^ _mix(xp, _u32(xp, w) + xp.uint32(_GOLDEN)))
    return h


def uniform(xp: Any, *words: Any) -> Any:
    """A float32 uniform in ``(0, 1)`` of ``words``: ``(hash >> 8 + 1/2) · 2^-24``."""
    h = hash32(xp, *words) >> xp.uint32(8)
    return (h.astype(xp.float32) + xp.float32(0.5)) * xp.float32(2.0**-24)


def normal(*words: Any) -> np.ndarray:
    """A float64 standard normal of ``words`` (Box–Muller; host-side tables only)."""
    u1 = uniform(np, *words, 0).astype(np.float64)
    u2 = uniform(np, *words, 1).astype(np.float64)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
