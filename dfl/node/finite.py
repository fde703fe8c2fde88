"""A node's guard against training on non-finite state.

After every round's combine the runner checks its new state with one jitted
reduction (:func:`health`: all-finite of the state, and the largest magnitude of
every message mixed in, kept on the device). Only when the state is not finite
does it read those magnitudes back — of this round's and the previous round's
mixes — to say which neighbour's message was mixed in and how large it was
(finite-but-huge messages overflow one round later, in the node's own step), and
stop with :class:`NonFiniteStateError`. Robust aggregation against finite poison
is :mod:`dfl.robust`'s job; this only stops a node from going on with NaN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteStateError(RuntimeError):
    """A node's state turned non-finite (the message names the round and the peers)."""


def _max_abs(tree: Any) -> jax.Array:
    leaves = [
        jnp.max(jnp.abs(x)).astype(jnp.float32)
        for x in jax.tree.leaves(tree)
        if jnp.size(x) > 0 and jnp.issubdtype(jnp.result_type(x), jnp.number)  # no PRNG keys
    ]
    return jnp.max(jnp.stack(leaves)) if leaves else jnp.float32(0.0)


def _all_finite(tree: Any) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


@jax.jit
def health(state: Any, messages: Sequence[Any]) -> tuple[jax.Array, jax.Array]:
    """``(all leaves of state finite, max |x| of each message)`` in one jitted pass."""
    sizes = [_max_abs(m) for m in messages]
    return _all_finite(state), jnp.stack(sizes) if sizes else jnp.zeros((0,), jnp.float32)


@dataclasses.dataclass
class MixSeen:
    """One round's mix as the guard remembers it: the round, the sources, their max |x|.

    Attributes:
      round: the 0-based round.
      sources: the nodes whose messages were mixed (this node included).
      magnitudes: ``max |x|`` of each source's message (on the device until read).
    """

    round: int
    sources: list[int]
    magnitudes: Any

    def describe(self, node: int) -> str:
        sizes = np.asarray(self.magnitudes, dtype=np.float64).tolist()
        parts = [
            f"{'itself' if j == node else f'node {j}'} max|x|={m:.3g}"
            for j, m in zip(self.sources, sizes, strict=True)
        ]
        return f"round {self.round}: " + ", ".join(parts)


def suspect(node: int, mixes: Sequence[MixSeen]) -> int | None:
    """The neighbour whose message had the largest (or a non-finite) magnitude in ``mixes``."""
    best, worst = None, -1.0
    for m in mixes:
        for j, size in zip(m.sources, np.asarray(m.magnitudes, dtype=np.float64), strict=True):
            value = float("inf") if not np.isfinite(size) else float(size)
            if j != node and value > worst:
                best, worst = j, value
    return best


def non_finite_error(node: int, round_: int, mixes: Sequence[MixSeen]) -> NonFiniteStateError:
    """The error a node stops with when its state after ``round_`` is not finite."""
    culprit = suspect(node, mixes)
    seen = "; ".join(m.describe(node) for m in mixes) or "nothing mixed in"
    blame = f"; the largest came from node {culprit}" if culprit is not None else ""
    return NonFiniteStateError(
        f"node {node}: its state is non-finite after round {round_} (NaN/inf); "
        f"messages mixed in: {seen}{blame}. The node stops instead of training on it "
        "(robust aggregation is what bounds finite poison)"
    )
