"""Compute time: seconds of a node's local phase in each round (host-side table).

``compute[t, i] = local_steps · step_s[i] · jitter[t, i] · straggle[t, i]``, every
factor a pure function of ``(seed, round, node)`` (:mod:`dfl.network.draws`). The
``[rounds, N]`` float32 table is built once on the host and used by both modes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfl.config.network_schema import NetworkConfig
from dfl.network import draws


def step_seconds(cfg: NetworkConfig, n: int) -> np.ndarray:
    """Seconds per local step of every node, ``[N]`` float64 (``network.compute``)."""
    c = cfg.compute
    if c.kind == "constant":
        out = np.full(n, c.step_s, dtype=np.float64)
    elif c.kind == "lognormal":
        out = c.step_s * np.exp(c.spread * draws.normal(cfg.seed, draws.COMPUTE, np.arange(n)))
    elif c.kind == "file":
        out = np.loadtxt(Path(c.file), dtype=np.float64, ndmin=1)
        if out.shape != (n,):
            raise ValueError(
                f"network.compute.file={c.file!r} holds {out.shape[0]} values; expected one "
                f"per node ({n})"
            )
    else:
        raise ValueError(
            f"network.compute.kind={c.kind!r}; expected 'constant', 'lognormal' or 'file'"
        )
    if np.any(out < 0) or not np.all(np.isfinite(out)):
        raise ValueError(f"network.compute: seconds per step must be finite and >= 0, got {out}")
    return out


def straggling(cfg: NetworkConfig, n: int, rounds: int) -> np.ndarray:
    """Whether node ``i`` straggles in round ``t``: bool ``[rounds, N]``."""
    s = cfg.stragglers
    if not 0.0 <= s.prob <= 1.0:
        raise ValueError(f"network.stragglers.prob={s.prob} is not a probability in [0, 1]")
    t, i = np.arange(rounds)[:, None], np.arange(n)[None, :]
    out = draws.uniform(np, cfg.seed, draws.STRAGGLER, t, i) < np.float32(s.prob)
    for node in s.nodes:
        if not 0 <= node < n:
            raise ValueError(f"network.stragglers.nodes names node {node}; nodes are 0..{n - 1}")
        out[:, node] = True
    return out


def compute_table(cfg: NetworkConfig, n: int, rounds: int, local_steps: int) -> np.ndarray:
    """Seconds of every node's local phase in every round, float32 ``[rounds, N]``."""
    base = local_steps * step_seconds(cfg, n)[None, :]
    factor = np.ones((rounds, n), dtype=np.float64)
    if cfg.compute.jitter > 0:
        t, i = np.arange(rounds)[:, None], np.arange(n)[None, :]
        factor *= np.exp(cfg.compute.jitter * draws.normal(cfg.seed, draws.JITTER, t, i))
    factor = np.where(straggling(cfg, n, rounds), factor * cfg.stragglers.factor, factor)
    return (base * factor).astype(np.float32)
