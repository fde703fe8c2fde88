"""The jitted per-node functions of one experiment, without the node axis.

A :class:`NodeProgram` is built once per experiment; in-process (loopback)
nodes share it, so every function compiles once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.evaluate import make_evaluate
from dfl.experiment import (
    ALGORITHM_STREAM,
    BATCH_STREAM,
    Experiment,
    init_node_state,
    make_node_sampler,
)
from dfl.topology.schedule import MixingSchedule
from dfl.transport.wire import WireSpec


def mix(weights: jax.Array, messages: Sequence[Any]) -> Any:
    """``Σ_k weights[k] · messages[k]`` for every leaf, as the simulation's dense mixer.

    Computed in (at least) float32 with ``Precision.HIGHEST`` and cast back to
    each leaf's dtype, like :class:`dfl.gossip.DenseMixer`.
    """

    def leaf(*xs: jax.Array) -> jax.Array:
        dtype = xs[0].dtype
        stacked = jnp.stack([x.astype(jnp.promote_types(dtype, jnp.float32)) for x in xs])
        out = jnp.tensordot(weights, stacked, axes=(0, 0), precision=jax.lax.Precision.HIGHEST)
        return out.astype(dtype)

    return jax.tree.map(leaf, *messages)


@dataclasses.dataclass(frozen=True)
class NodeProgram:
    """Jitted per-node phases and the wire layout of one experiment.

    Attributes:
      exp: the experiment.
      spec: the layout of the algorithm's wire pytree.
      init: ``init(node) -> state`` (jitted, as the simulation's ``init_state``).
      sample: ``sample(key, node, x_i, y_i, count_i) -> (batches, dropped)``
        (the simulation's sampler for that node: uniform, or DP-SGD's accounted
        one; ``dropped`` counts Poisson examples cut by the batch cap).
      step, decode, combine: the algorithm's phases, jitted.
      mix: :func:`mix`, jitted.
      params: the algorithm's evaluated parameters, jitted.
      accuracy: ``accuracy(state, x, y) -> scalar`` on the held-out set.
    """

    exp: Experiment
    spec: WireSpec
    init: Callable[[int], Any]
    sample: Callable[..., Any]
    step: Callable[..., Any]
    decode: Callable[[Any], Any]
    combine: Callable[[Any, Any], Any]
    mix: Callable[[jax.Array, Sequence[Any]], Any]
    params: Callable[[Any], Any]
    accuracy: Callable[[Any, jax.Array, jax.Array], jax.Array]

    def batch_key(self, round_: int, node: int) -> jax.Array:
        """The batch key of ``node`` at ``round_`` (as the simulation's)."""
        return jax.random.fold_in(self.exp.stream(BATCH_STREAM, round_), node)

    def algorithm_key(self, round_: int, node: int) -> jax.Array:
        """The algorithm key of ``node`` at ``round_`` (as the simulation's)."""
        return jax.random.fold_in(self.exp.stream(ALGORITHM_STREAM, round_), node)


def build_program(exp: Experiment) -> NodeProgram:
    """Jits the per-node functions of ``exp`` and derives its wire layout."""
    algorithm = exp.algorithm
    node_sampler = make_node_sampler(exp)

    def sample(key, node, x_i, y_i, count_i):
        return node_sampler(key, node, x_i, y_i, count_i)

    init = jax.jit(lambda node: init_node_state(exp, node))
    train = exp.federated.train
    state0 = jax.eval_shape(init, jnp.int32(0))
    key0 = jax.eval_shape(lambda: jax.random.key(0))
    batches0 = jax.eval_shape(
        lambda k, x, y, c: sample(k, 0, x, y, c)[0], key0, train.x[0], train.y[0], train.counts[0]
    )
    _, wire, _ = jax.eval_shape(algorithm.step, state0, batches0, key0)
    evaluate = make_evaluate(algorithm, exp.model)

    def accuracy(state: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        one = jax.tree.map(lambda a: a[None], state)
        return evaluate(one, x, y)["accuracy"][0]

    return NodeProgram(
        exp=exp,
        spec=WireSpec.from_tree(wire),
        init=lambda node: init(jnp.int32(node)),
        sample=jax.jit(sample, static_argnums=1),
        step=jax.jit(algorithm.step),
        decode=jax.jit(algorithm.decode),
        combine=jax.jit(algorithm.combine),
        mix=jax.jit(mix),
        params=jax.jit(algorithm.params),
        accuracy=jax.jit(accuracy),
    )


def out_neighbours(W: np.ndarray, node: int) -> list[int]:
    """Nodes that mix ``node``'s message: ``W[j, node] != 0``, ``j != node``."""
    return [j for j in np.flatnonzero(W[:, node]).tolist() if j != node]


def in_neighbours(W: np.ndarray, node: int) -> list[int]:
    """Nodes whose message ``node`` mixes: ``W[node, j] != 0``, ``j != node``."""
    return [j for j in np.flatnonzero(W[node]).tolist() if j != node]


def senders_of(schedule: MixingSchedule, node: int) -> Callable[[int], frozenset[int]]:
    """``senders(round)``: the in-neighbours of ``node`` in that round's W (cached).

    The only nodes whose messages ``node`` mixes at that round, so the only ones
    its inbox accepts (:meth:`dfl.transport.inbox.Inbox.expect`).
    """
    period = schedule.period

    @functools.lru_cache(maxsize=256)
    def at(slot: int) -> frozenset[int]:
        return frozenset(in_neighbours(np.asarray(schedule.weights(slot)), node))

    return lambda round_: at(round_ % period if period is not None else round_)
