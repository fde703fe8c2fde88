"""Hand-built network models for the tests (every table explicit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dfl.network.model import NetworkModel, retransmit_thresholds


def hand_model(
    message: np.ndarray,
    compute: np.ndarray,
    *,
    deadline_s: float = 1e9,
    drop: float = 0.0,
    wait: bool = False,
    online: np.ndarray | None = None,
    down_after: int = 0,
    **changes: Any,
) -> NetworkModel:
    """A :class:`NetworkModel` of ``message`` ``[N, N]`` seconds and ``compute`` ``[R, N]``."""
    rounds, n = compute.shape
    fields: dict[str, Any] = {
        "n": n,
        "rounds": rounds,
        "seed": 0,
        "wait": wait,
        "drop": drop,
        "deadline_s": deadline_s,
        "rto_s": 1.0,
        "down_after": down_after,
        "away_s": 0.0,
        "compute": np.asarray(compute, np.float32),
        "online": np.ones((rounds, n), bool) if online is None else online,
        "latency": np.asarray(message, np.float32),
        "message": np.asarray(message, np.float32),
        "uplink": None,
        "retransmit_thresholds": retransmit_thresholds(drop),
    }
    fields.update(changes)
    return NetworkModel(**fields)
