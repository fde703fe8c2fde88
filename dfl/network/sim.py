"""The simulation runner's side of a network model: build it, wrap the round and state."""

from __future__ import annotations

import functools
from typing import Any

import jax

from dfl.algorithms.base import MissingRule
from dfl.experiment import BATCH_STREAM, Experiment, make_sampler
from dfl.gossip import make_mixer
from dfl.network import clock
from dfl.network.model import NetworkModel, build_model
from dfl.network.round import Carry, algorithm_state, make_network_round
from dfl.sim.round import wire_bytes
from dfl.transport.wire import framed_nbytes

__all__ = ["algorithm_state", "network_model", "network_round"]


def is_ideal(cfg: Any) -> bool:
    """Whether ``cfg.network`` is the perfect, instant network (today's round)."""
    return cfg.network.name == "ideal"


def simulated_message_bytes(exp: Experiment, state: Any) -> int:
    """Wire bytes of one message (payload + frame headers), from abstract shapes only."""
    batches = jax.eval_shape(make_sampler(exp), exp.stream(BATCH_STREAM, 0), exp.federated.train)[0]
    one = functools.partial(
        jax.tree.map, lambda x: jax.ShapeDtypeStruct(tuple(x.shape[1:]), x.dtype)
    )
    payload = wire_bytes(exp.algorithm, one(state), one(batches))
    return framed_nbytes(payload, exp.config.transport.chunk_bytes)


def network_model(exp: Experiment, nbytes: int) -> NetworkModel:
    """The run's :class:`NetworkModel` (``cfg.network``, ``node.deadline_s``,
    ``transport.down_after_missed``, the algorithm's missing-message rule)."""
    cfg = exp.config
    return build_model(
        cfg.network,
        n=exp.n,
        rounds=cfg.rounds,
        local_steps=cfg.algorithm.local_steps,
        nbytes=nbytes,
        deadline_s=cfg.node.deadline_s,
        down_after=cfg.transport.down_after_missed,
        wait=exp.algorithm.missing_rule == MissingRule.WAIT,
    )


def network_round(exp: Experiment, mixer: Any, state: Any) -> tuple[Any, Any, Any]:
    """``(round, mixer, state)`` for ``exp``'s network.

    ``ideal``: ``(None, mixer, state)`` unchanged (the caller builds today's round).
    Otherwise the network round over the :func:`mask_form` mixer and the :class:`Carry` of
    ``state`` and the network's initial state.

    Raises:
      ValueError: a network model with ``sim.gossip=identity`` or ``sim.shard_nodes``.
    """
    cfg = exp.config
    if is_ideal(cfg):
        return None, mixer, state
    if mixer is None:
        raise ValueError("network models need an exchange: sim.gossip=identity has none")
    if cfg.sim.shard_nodes:
        raise ValueError("network models do not support sim.shard_nodes yet (network=ideal does)")
    model = network_model(exp, simulated_message_bytes(exp, state))
    masked = make_mixer(exp.schedule, form=mask_form(exp))
    round_fn = make_network_round(exp.algorithm, masked, model)
    return round_fn, masked, Carry(state, clock.init(jax.numpy, exp.n))


def mask_form(exp: Experiment) -> str:
    """The mixer form of a network run: ``dense`` if ``sim.gossip=dense`` or the schedule
    is random (no fixed neighbour-list width), else ``sparse`` (``K · N · P``)."""
    if exp.config.sim.gossip == "dense" or exp.schedule.period is None:
        return "dense"
    return "sparse"
