"""Links: latency and bandwidth of every directed edge, and message times (host side).

Matrices are indexed ``[receiver, sender]`` like ``W``. A message ``j → i`` of
``b`` wire bytes takes ``latency[i, j] + b / bandwidth[i, j]`` seconds; with a
shared uplink at ``j`` its out-messages leave one after another in receiver order,
the k-th (1-based) taking ``latency[i, j] + k · b / uplink[j]`` (the rank is a
function of the round's graph, so it is computed in the round: :mod:`dfl.network.clock`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfl.config.network_schema import NetworkConfig
from dfl.network import draws

LATENCY, BANDWIDTH = 0, 1
"""The ``field`` word of a link's draws."""


def _matrix(path: str, n: int, what: str) -> np.ndarray:
    m = np.loadtxt(Path(path), dtype=np.float64, ndmin=2)
    if m.shape != (n, n):
        raise ValueError(f"network.links.{what}={path!r} is {m.shape}; expected ({n}, {n})")
    return m


def link_matrices(cfg: NetworkConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(latency_s, bandwidth_bps)``, float64 ``[N, N]`` (``inf`` bandwidth: none).

    ``links.slow_nodes``' out-links (their columns) get the slow factors.
    """
    c = cfg.links
    if c.kind == "constant":
        lat = np.full((n, n), c.latency_s)
        bw = np.full((n, n), c.bandwidth_bps)
    elif c.kind == "lognormal":
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        lat = c.latency_s * np.exp(c.spread * draws.normal(cfg.seed, draws.LINK, i, j, LATENCY))
        bw = c.bandwidth_bps * np.exp(
            c.spread * draws.normal(cfg.seed, draws.LINK, i, j, BANDWIDTH)
        )
    elif c.kind == "file":
        lat = _matrix(c.latency_file, n, "latency_file")
        bw = _matrix(c.bandwidth_file, n, "bandwidth_file")
    else:
        raise ValueError(
            f"network.links.kind={c.kind!r}; expected 'constant', 'lognormal' or 'file'"
        )
    bw = np.where(bw > 0, bw, np.inf)
    for node in c.slow_nodes:
        if not 0 <= node < n:
            raise ValueError(f"network.links.slow_nodes names node {node}; nodes are 0..{n - 1}")
        lat[:, node] *= c.slow_latency_factor
        bw[:, node] *= c.slow_bandwidth_factor
    if np.any(lat < 0) or np.any(bw <= 0):
        raise ValueError("network.links: latency must be >= 0 and bandwidth > 0")
    return lat, bw


def message_seconds(latency: np.ndarray, bandwidth: np.ndarray, nbytes: int) -> np.ndarray:
    """Per-edge message time ``latency + nbytes / bandwidth``, float32 ``[N, N]``."""
    return (latency + nbytes / bandwidth).astype(np.float32)


def uplink_seconds(cfg: NetworkConfig, n: int, nbytes: int) -> np.ndarray | None:
    """Seconds one message occupies each node's shared uplink, float32 ``[N]``
    (``None``: no shared uplink)."""
    c = cfg.links
    if c.uplink_bps <= 0:
        return None
    rate = np.full(n, c.uplink_bps)
    rate[list(c.slow_nodes)] *= c.slow_bandwidth_factor
    return (nbytes / rate).astype(np.float32)
