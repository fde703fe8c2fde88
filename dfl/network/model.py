"""The network model of one run: every host-side table the round's clock reads."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dfl.config.network_schema import NetworkConfig
from dfl.network.churn import online_table
from dfl.network.compute import compute_table
from dfl.network.links import link_matrices, message_seconds, uplink_seconds

MAX_RETRANSMISSIONS = 64
"""Cap on the retransmissions of one message (``drop`` near 1 would never end)."""


@dataclasses.dataclass(frozen=True)
class NetworkModel:
    """A run's network: constants and ``[rounds, ...]`` tables (numpy, float32).

    Attributes:
      n: nodes.
      rounds: rounds the tables cover.
      seed: seed of the in-round draws (drops, retransmissions).
      wait: the algorithm's missing-message rule is ``WAIT`` (lost messages are
        retransmitted, offline neighbours are waited for); else ``RENORMALIZE``.
      drop: per-edge, per-round message loss probability.
      deadline_s: the round's deadline, from a node's own send (``node.deadline_s``).
      rto_s: ``WAIT``: the retransmission timeout.
      down_after: a peer that missed this many deadlines in a row is down
        (``transport.down_after_missed``; ≤ 0: never).
      away_s: ``WAIT``: seconds a node's round is delayed per round it is offline.
      compute: seconds of each node's local phase, ``[rounds, N]``.
      online: which nodes are online, bool ``[rounds, N]``.
      latency: ``[N, N]`` seconds (``[receiver, sender]``).
      message: ``[N, N]`` seconds of a message on its link (no shared uplink).
      uplink: ``[N]`` seconds one message occupies its sender's uplink (``None``: none).
      retransmit_thresholds: ``drop ** k`` for ``k = 1, 2, ...`` (float32): a
        message is sent ``1 + #{k : u < drop ** k}`` times for its uniform ``u``,
        a geometric number of retransmissions decided without transcendental ops.
    """

    n: int
    rounds: int
    seed: int
    wait: bool
    drop: float
    deadline_s: float
    rto_s: float
    down_after: int
    away_s: float
    compute: np.ndarray
    online: np.ndarray
    latency: np.ndarray
    message: np.ndarray
    uplink: np.ndarray | None
    retransmit_thresholds: np.ndarray

    @property
    def max_offline(self) -> int:
        """The most nodes offline in one round of the run."""
        return int((~self.online).sum(axis=1).max(initial=0))


def retransmit_thresholds(drop: float) -> np.ndarray:
    """``drop ** k`` (float32) for ``k ≥ 1`` while it exceeds the uniforms' resolution."""
    if drop <= 0:
        return np.zeros(0, dtype=np.float32)
    count = (
        MAX_RETRANSMISSIONS
        if drop >= 1
        else min(MAX_RETRANSMISSIONS, math.ceil(24 * math.log(2) / -math.log(drop)))
    )
    return (drop ** np.arange(1, count + 1)).astype(np.float32)


def build_model(
    cfg: NetworkConfig,
    *,
    n: int,
    rounds: int,
    local_steps: int,
    nbytes: int,
    deadline_s: float,
    down_after: int,
    wait: bool,
) -> NetworkModel:
    """The :class:`NetworkModel` of ``cfg`` for a run.

    Args:
      cfg: the ``network`` config (not ``ideal``).
      n, rounds, local_steps: the run's.
      nbytes: wire bytes of one message, exactly what ``bytes_sent_per_node`` counts.
      deadline_s: ``node.deadline_s``.
      down_after: ``transport.down_after_missed``.
      wait: the algorithm's rule is ``WAIT``.
    """
    if not 0.0 <= cfg.drop <= 1.0:
        raise ValueError(f"network.drop={cfg.drop} is not a probability in [0, 1]")
    if wait and cfg.drop >= 1.0:
        raise ValueError(
            "network.drop=1 loses every retransmission too: a WAIT algorithm never ends"
        )
    if not deadline_s > 0:
        raise ValueError(f"node.deadline_s={deadline_s}; expected > 0")
    lat, bw = link_matrices(cfg, n)
    return NetworkModel(
        n=n,
        rounds=rounds,
        seed=cfg.seed,
        wait=wait,
        drop=cfg.drop,
        deadline_s=deadline_s,
        rto_s=cfg.rto_s,
        down_after=down_after,
        away_s=cfg.churn.round_s,
        compute=compute_table(cfg, n, rounds, local_steps),
        online=online_table(cfg, n, rounds),
        latency=lat.astype(np.float32),
        message=message_seconds(lat, bw, nbytes),
        uplink=uplink_seconds(cfg, n, nbytes),
        retransmit_thresholds=retransmit_thresholds(cfg.drop),
    )
