"""The jitted per-node functions of one experiment, without the node axis.

A :class:`NodeProgram` is built once per experiment; in-process (loopback)
nodes share it, so every function compiles once. :meth:`NodeProgram.compile`
compiles the round's phases ahead of time from their shapes (nothing runs).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

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
from dfl.node.exchange import in_neighbours
from dfl.topology.schedule import MixingSchedule
from dfl.transport.wire import WireSpec


class Phases(NamedTuple):
    """The algorithm's per-round phases compiled ahead of time for one node's shapes."""

    step: Callable[..., Any]
    combine: Callable[[Any, Any], Any]


_COMPILE_LOCK = threading.Lock()


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
      params: the algorithm's evaluated parameters, jitted.
      accuracy: ``accuracy(state, x, y) -> scalar`` on the held-out set.
      shapes: the abstract ``(state, batches, key)`` of one node's ``step``.
    """

    exp: Experiment
    spec: WireSpec
    init: Callable[[int], Any]
    sample: Callable[..., Any]
    step: Callable[..., Any]
    decode: Callable[[Any], Any]
    combine: Callable[[Any, Any], Any]
    params: Callable[[Any], Any]
    accuracy: Callable[[Any, jax.Array, jax.Array], jax.Array]
    shapes: tuple[Any, Any, Any]
    _compiled: dict[str, Phases] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def compile(self) -> Phases:
        """``step`` and ``combine`` compiled ahead of time (once per program; thread-safe).

        Lowered from the abstract shapes of one node's state, batches and key, so
        nothing runs; every node of an experiment has the same shapes, so
        in-process nodes share the result (the first one compiles, the others wait).
        """
        with _COMPILE_LOCK:
            if "phases" not in self._compiled:
                state, batches, key = self.shapes
                after, wire, _ = jax.eval_shape(self.step, state, batches, key)
                message = jax.eval_shape(self.decode, wire)
                self._compiled["phases"] = Phases(
                    step=self.step.lower(state, batches, key).compile(),
                    combine=self.combine.lower(after, message).compile(),
                )
            return self._compiled["phases"]

    def batch_key(self, round_: int, node: int) -> jax.Array:
        """The batch key of ``node`` at ``round_`` (as the simulation's)."""
        return jax.random.fold_in(self.exp.stream(BATCH_STREAM, round_), node)

    def round_key(self, round_: int) -> jax.Array:
        """The algorithm key of ``round_`` before the per-node fold (the simulation's)."""
        return self.exp.stream(ALGORITHM_STREAM, round_)

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
        params=jax.jit(algorithm.params),
        accuracy=jax.jit(accuracy),
        shapes=(state0, batches0, key0),
    )


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
