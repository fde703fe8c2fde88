"""The simulation's round over a network model: one jitted function, no loop over nodes.

:func:`make_network_round` wraps :func:`dfl.sim.round.make_round`: it advances the
network (:func:`dfl.network.clock.step` with ``jax.numpy``) over the round's dense
``W``, then runs step → exchange → combine with the round's delivery mask
(``RENORMALIZE``: lost and late messages are renormalised away, an offline node
keeps its state; on the sparse mixer the mixer selects the kept rows as it writes
them, :func:`combine_keeping`) or unmasked (``WAIT``: nothing is lost, the network only costs
time). The carry is :class:`Carry`, the algorithm state and the network's.

Two exchange forms carry the mask: the dense mixer (``apply(..., delivered=)``)
and the sparse mixer, whose per-edge data the round renormalises itself
(:func:`mask_sparse`: ``K · N · P`` instead of ``N² · P``; a network run picks it
unless ``sim.gossip=dense`` or the schedule is random).

Per-round fields flow through ``info`` (shape ``[N]``, per node, as ``loss``), so any
loop over rounds picks them up (:func:`record_fields` turns them into a record's):
``sim_time`` (each node's clock), ``messages_missing``, ``retransmissions``,
``messages_sent`` (cumulative per node) and ``nodes_online`` (this round).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dfl.algorithms.base import Algorithm, MissingRule
from dfl.network import clock
from dfl.network.model import NetworkModel
from dfl.sim.round import make_round, node_keys

NETWORK_INFO = ("sim_time", "messages_missing", "retransmissions", "messages_sent", "nodes_online")
"""The ``info`` keys a network round adds."""


class Carry(NamedTuple):
    """The state a network round carries: the algorithm's and the network's."""

    state: Any
    net: clock.NetState


def algorithm_state(state: Any) -> Any:
    """The algorithm state of a round's carry (``state`` itself without a network)."""
    return state.state if isinstance(state, Carry) else state


def keep_where(online: jax.Array, new: Any, old: Any, churn: bool = True) -> Any:
    """Per node, ``new`` where ``online`` else ``old`` (PRNG keys by their key data).

    One select over the state, a pass over every node's leaves that also keeps the old
    state alive beside the new one (a fresh ``N · P`` buffer): the dense form's rule,
    and the sparse form's for leaves ``combine`` computes (:func:`combine_keeping`
    selects the others inside the mixer). ``churn=False`` (no node is ever offline)
    skips it.
    """
    if not churn:
        return new

    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            data = pick(jax.random.key_data(a), jax.random.key_data(b))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(a))
        mask = online.reshape(online.shape + (1,) * (a.ndim - 1))
        return jnp.where(mask, a, b)

    return jax.tree.map(pick, new, old)


def passthrough(combine: Callable[[Any, Any], Any], state: Any, mixed: Any) -> dict[int, int]:
    """Which leaves of ``combine(state, mixed)`` are leaves of ``mixed`` unchanged.

    From the jaxpr of one node's ``combine`` (``state`` and ``mixed`` one node's, or
    abstract): ``{k: j}`` for each output leaf ``k`` that is mixed leaf ``j`` itself
    (each ``j`` once), e.g. D-SGD's ``params``.
    """
    closed = jax.make_jaxpr(combine)(state, mixed)
    first = len(jax.tree.leaves(state))
    index = {id(v): i - first for i, v in enumerate(closed.jaxpr.invars) if i >= first}
    found: dict[int, int] = {}
    for k, v in enumerate(closed.jaxpr.outvars):
        j = index.get(id(v))
        if j is not None and j not in found.values():
            found[k] = j
    return found


def combine_keeping(
    algorithm: Algorithm,
    exchange: Any,
    state: Any,
    batches: Any,
    w_data: Any,
    key: jax.Array,
    online: jax.Array,
) -> tuple[Any, dict[str, jax.Array]]:
    """:func:`dfl.sim.round.make_round`'s round on the sparse mixer, offline nodes kept.

    Equal to ``keep_where(online, round(state, ...), state)``, bit for bit, with the select
    of each state leaf that ``combine`` takes unchanged from the mix (:func:`passthrough`)
    done by the mixer as it writes the leaf's blocks, into ``state``'s own buffer (no
    separate pass, no fresh ``N · P`` buffer; a donated state stays in place). Other
    leaves go through :func:`keep_where`. Changing an offline node's mixed row changes
    only that node's combine (``combine`` is per node), whose result is discarded.
    """
    n = jax.tree.leaves(state)[0].shape[0]
    stepped, wire, info = jax.vmap(algorithm.step)(state, batches, node_keys(key, n))
    messages = jax.vmap(algorithm.decode)(wire)
    one = lambda tree: jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), tree)  # noqa: E731
    fused = passthrough(algorithm.combine, one(stepped), one(messages))
    old_leaves, treedef = jax.tree.flatten(state)
    msg_leaves, msg_def = jax.tree.flatten(messages)
    fused = {
        k: j
        for k, j in fused.items()
        if k < len(old_leaves)
        and (old_leaves[k].shape, old_leaves[k].dtype) == (msg_leaves[j].shape, msg_leaves[j].dtype)
    }
    kept = {j: old_leaves[k] for k, j in fused.items()}
    mixed = [
        exchange.apply(leaf, w_data, keep=(online, kept[j]))
        if j in kept
        else exchange.apply(leaf, w_data)
        for j, leaf in enumerate(msg_leaves)
    ]
    new = jax.vmap(algorithm.combine)(stepped, jax.tree.unflatten(msg_def, mixed))
    new_leaves, new_def = jax.tree.flatten(new)
    if new_def != treedef:
        raise ValueError(f"combine changed the state's structure: {treedef} to {new_def}")
    rest = [k for k in range(len(new_leaves)) if k not in fused]
    picked = keep_where(online, [new_leaves[k] for k in rest], [old_leaves[k] for k in rest])
    for k, leaf in zip(rest, picked, strict=True):
        new_leaves[k] = leaf
    return jax.tree.unflatten(treedef, new_leaves), info


def adjacency_of(form: str, data: Any, n: int) -> jax.Array:
    """The round's graph, bool ``[N, N]`` (``[i, j]``: ``i`` mixes ``j``), from mixer data."""
    if form == "dense":
        return data["W"] != 0
    rows = jnp.broadcast_to(jnp.arange(n)[:, None], data["index"].shape)
    live = data["weight"] != 0
    return jnp.zeros((n, n), bool).at[rows, data["index"]].max(live)


def mask_sparse(data: dict[str, jax.Array], delivered: jax.Array) -> dict[str, jax.Array]:
    """Sparse mixer data under the ``RENORMALIZE`` rule for ``delivered`` (bool ``[N, N]``).

    A slot ``k`` of row ``i`` keeps its weight if ``delivered[i, index[i, k]]``; the weight
    of the others moves to ``self[i]`` (as :func:`dfl.gossip.dense.renormalize`).
    """
    rows = jnp.arange(delivered.shape[0])[:, None]
    kept = delivered[rows, data["index"]]
    weight = data["weight"]
    masked = jnp.where(kept, weight, jnp.zeros_like(weight))
    return {**data, "self": data["self"] + jnp.sum(weight - masked, axis=1), "weight": masked}


def make_network_round(
    algorithm: Algorithm, exchange: Any, model: NetworkModel
) -> Callable[..., tuple[Carry, dict[str, jax.Array]]]:
    """Builds ``round(carry, batches, w_data, key) -> (carry, info)``.

    Args:
      algorithm: the per-node algorithm.
      exchange: the dense or the sparse mixer (its data gives the round's graph).
      model: the run's network.
    """
    form = getattr(exchange, "form", None)
    if form not in ("dense", "sparse"):
        raise ValueError(f"a network round needs the dense or sparse mixer, got form={form!r}")
    base = make_round(algorithm, exchange)
    wait = algorithm.missing_rule == MissingRule.WAIT
    if wait != model.wait:
        raise ValueError(f"the network model was built for wait={model.wait}, {algorithm.name!r}")

    def round_fn(carry: Carry, batches: Any, w_data: Any, key: jax.Array):
        adjacency = adjacency_of(form, w_data, model.n)
        net, out = clock.step(jnp, model, carry.net, adjacency)
        if wait:
            state, info = base(carry.state, batches, w_data, key)
        else:
            if form == "dense":
                new, info = base(carry.state, batches, w_data, key, delivered=out.delivered)
                state = keep_where(out.online, new, carry.state, model.max_offline > 0)
            elif model.max_offline > 0:
                masked = mask_sparse(w_data, out.delivered)
                state, info = combine_keeping(
                    algorithm, exchange, carry.state, batches, masked, key, out.online
                )
            else:
                state, info = base(carry.state, batches, mask_sparse(w_data, out.delivered), key)
        info = {
            **info,
            "sim_time": net.clock,
            "messages_missing": net.missing,
            "retransmissions": net.retransmissions,
            "messages_sent": net.sent,
            "nodes_online": out.online.astype(jnp.int32),
        }
        return Carry(state, net), info

    return round_fn


def record_fields(info: Mapping[str, Any]) -> dict[str, jax.Array]:
    """A record's network fields from a network round's ``info`` (``{}`` without them;
    jittable, 0-d each: :func:`dfl.sim.loop.record_fields` takes them in).

    ``sim_time`` is the slowest node's clock, the counters are sums over nodes (as a
    deployment's combined record); ``messages_sent`` (cumulative, summed over nodes)
    gives the runner ``bytes_sent_per_node``.
    """
    if "messages_sent" not in info:
        return {}
    return {
        "sim_time": jnp.max(info["sim_time"]),
        "messages_missing": jnp.sum(info["messages_missing"]),
        "retransmissions": jnp.sum(info["retransmissions"]),
        "nodes_online": jnp.sum(info["nodes_online"]),
        "messages_sent": jnp.sum(info["messages_sent"]),
    }
