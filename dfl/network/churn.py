"""Churn: which node is online in which round, a ``[rounds, N]`` bool table (host side).

* ``markov``: node ``i`` is a two-state chain, up → down with probability
  ``1 / mean_up`` and down → up with ``1 / mean_down`` per round, started in its
  stationary distribution (up with ``mean_up / (mean_up + mean_down)``). The
  transition of round ``t`` uses the uniform ``(seed, CHURN, t, i)``; the initial
  state uses round ``-1``. A chain is sequential, so the table is precomputed once
  per run on the host (the same generator, :mod:`dfl.network.draws`) and both modes
  index it by round: the schedule stays a pure function of ``(seed, round, node)``.
* ``trace``: a file of ``node start stop`` lines, the node offline in
  ``[start, stop)`` (rounds, or seconds converted with ``round_s``:
  round ``floor(s / round_s)``; ``#`` starts a comment).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dfl.config.network_schema import NetworkConfig
from dfl.network import draws


def markov_table(seed: int, n: int, rounds: int, mean_up: float, mean_down: float) -> np.ndarray:
    """The two-state chains' online table, bool ``[rounds, N]``."""
    if mean_up < 1 or mean_down < 1:
        raise ValueError(
            f"network.churn.mean_up={mean_up}, mean_down={mean_down}: mean run lengths are "
            "rounds >= 1"
        )
    nodes = np.arange(n)
    fail, recover = np.float32(1.0 / mean_up), np.float32(1.0 / mean_down)
    up = draws.uniform(np, seed, draws.CHURN, -1, nodes) < np.float32(
        mean_up / (mean_up + mean_down)
    )
    out = np.empty((rounds, n), dtype=bool)
    for t in range(rounds):
        u = draws.uniform(np, seed, draws.CHURN, t, nodes)
        up = np.where(up, u >= fail, u < recover)
        out[t] = up
    return out


def read_trace(path: str | Path, *, unit: str = "rounds", round_s: float = 1.0) -> list[list[int]]:
    """Offline intervals ``[node, start, stop)`` in rounds from a trace file."""
    if unit not in ("rounds", "seconds"):
        raise ValueError(f"network.churn.unit={unit!r}; expected 'rounds' or 'seconds'")
    if unit == "seconds" and not round_s > 0:
        raise ValueError(f"network.churn.round_s={round_s}; a trace in seconds needs it > 0")
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected 'node start stop', got {line!r}")
        node, start, stop = int(fields[0]), float(fields[1]), float(fields[2])
        if unit == "seconds":
            start, stop = math.floor(start / round_s), math.floor(stop / round_s)
        out.append([node, int(start), int(stop)])
    return out


def trace_table(intervals: list[list[int]], n: int, rounds: int) -> np.ndarray:
    """The online table of offline intervals ``[node, start, stop)``, bool ``[rounds, N]``."""
    out = np.ones((rounds, n), dtype=bool)
    for node, start, stop in intervals:
        if not 0 <= node < n:
            raise ValueError(f"churn trace names node {node}; nodes are 0..{n - 1}")
        out[max(start, 0) : max(min(stop, rounds), 0), node] = False
    return out


def offline_intervals(online: np.ndarray) -> list[list[int]]:
    """The maximal offline runs ``[node, start, stop)`` of an online table (inverse of
    :func:`trace_table`)."""
    out = []
    n = online.shape[1]
    for node in range(n):
        off = np.concatenate([[False], ~online[:, node], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(off))
        out += [[node, int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return out


def online_table(cfg: NetworkConfig, n: int, rounds: int) -> np.ndarray:
    """Which nodes are online in which round (``network.churn``), bool ``[rounds, N]``."""
    c = cfg.churn
    if c.kind == "none":
        return np.ones((rounds, n), dtype=bool)
    if c.kind == "markov":
        return markov_table(cfg.seed, n, rounds, c.mean_up, c.mean_down)
    if c.kind == "trace":
        return trace_table(read_trace(c.file, unit=c.unit, round_s=c.round_s), n, rounds)
    raise ValueError(f"network.churn.kind={c.kind!r}; expected 'none', 'markov' or 'trace'")
