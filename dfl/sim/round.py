"""One simulated round over all nodes: step → exchange → combine.

The same three phases as a deployed node's round (:mod:`dfl.node.runner`): the
vmapped local phase, the exchange (a :class:`~dfl.gossip.mixer.Mixer` over the node
axis; see :mod:`dfl.gossip.mixer` for the contract both modes share), and the
vmapped combine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from dfl.algorithms.base import Algorithm, MissingRule
from dfl.gossip.mixer import Exchange


def node_keys(key: jax.Array, n: int) -> jax.Array:
    """``fold_in(key, i)`` for ``i < n``: the per-node keys both modes use."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(n))


def make_round(
    algorithm: Algorithm, exchange: Exchange | None, *, robust: Any = None
) -> Callable[..., tuple[Any, dict[str, jax.Array]]]:
    """Builds ``round(state, batches, w_data, key, delivered=None) -> (state, info)``.

    Args:
      algorithm: the per-node algorithm.
      exchange: the gossip operator (``exchange.apply(messages, w_data)``), or
        ``None`` to skip the exchange (every node combines its own message: W = I,
        the benchmarks' floor).
      robust: a :class:`dfl.sim.byzantine.ByzantineRound` (``exchange`` is then its
        gathered mixer): the state is a ``ByzantineCarried(state, carry)``, the exchange
        is ``robust.exchange`` (attacks, detection, robust rule) and its per-node flag
        counts join ``info``.

    Returns:
      A pure function over the stacked state (leading node axis). Node ``i``
      uses the key ``fold_in(key, i)``; ``info`` holds per-node diagnostics
      (``info["loss"]`` has shape ``[N]``). ``delivered``, a bool ``[N, N]``
      delivery mask, is handed to the exchange (``apply(..., delivered=...)``;
      the dense mixer takes one) for the algorithm's ``RENORMALIZE`` rule.
    """

    def round_fn(state: Any, batches: Any, w_data: Any, key: jax.Array, delivered: Any = None):
        carried: Any = state
        if robust is not None:
            state = carried.state
        n = jax.tree.leaves(state)[0].shape[0]
        state, wire, info = jax.vmap(algorithm.step)(state, batches, node_keys(key, n))
        messages = jax.vmap(algorithm.decode)(wire)
        if robust is not None:
            mixed, carry, flags = robust.exchange(messages, w_data, carried.carry, key, delivered)
            new = carried._replace(state=jax.vmap(algorithm.combine)(state, mixed), carry=carry)
            return new, {**info, **flags}
        if exchange is None:
            mixed = messages
        elif delivered is None:
            mixed = exchange.apply(messages, w_data)
        else:
            if algorithm.missing_rule != MissingRule.RENORMALIZE:
                raise ValueError(
                    f"{algorithm.name!r} must WAIT for every message; a delivery mask can "
                    "only drop messages of RENORMALIZE algorithms"
                )
            form = getattr(exchange, "form", "dense")
            if form != "dense":
                raise ValueError(
                    f"a delivery mask needs the dense mixer (sim.gossip=dense), found {form=!r}"
                )
            mixed = exchange.apply(messages, w_data, delivered=delivered)  # type: ignore[call-arg]
        return jax.vmap(algorithm.combine)(state, mixed), info

    return round_fn


def wire_bytes(algorithm: Algorithm, state: Any, batches: Any) -> int:
    """Bytes of one node's wire message, from its shapes and dtypes (no compute).

    Args:
      algorithm: the per-node algorithm.
      state: one node's state (no node axis), or its abstract shapes.
      batches: one node's batches, or their abstract shapes.
    """
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
    _, wire, _ = jax.eval_shape(algorithm.step, state, batches, key)
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(wire))
