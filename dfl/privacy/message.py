"""Local DP on gossip messages as an algorithm wrapper (both execution modes)."""

from __future__ import annotations

import dataclasses

import jax

from dfl.algorithms.base import Algorithm
from dfl.privacy.noise import add_message_noise

MESSAGE_NOISE_TAG = 0x6D6E
"""Folded into the node's round key: message noise never shares a key with anything else."""


def with_message_noise(algorithm: Algorithm, stddev: float) -> Algorithm:
    """``algorithm`` whose every wire message gets N(0, stddev²) noise before it is sent.

    The node's own contribution to its mix is the same noisy message its
    neighbours receive (Muffliato: each node releases only noisy values). The
    noise key is ``fold_in(round_key_of_node, MESSAGE_NOISE_TAG)``, identical in
    simulation and deployment. Only dense (float) wires can be noised; compress
    after noising is not supported, so a compressing algorithm is refused.

    Args:
      algorithm: the algorithm to wrap.
      stddev: noise standard deviation; 0 returns ``algorithm`` unchanged.
    """
    if stddev == 0:
        return algorithm
    if stddev < 0:
        raise ValueError(f"privacy.message_noise must be >= 0, found {stddev!r}")

    def step(state, batches, key):
        state, wire, info = algorithm.step(state, batches, key)
        return (
            state,
            add_message_noise(wire, jax.random.fold_in(key, MESSAGE_NOISE_TAG), stddev),
            info,
        )

    return dataclasses.replace(algorithm, step=step)
