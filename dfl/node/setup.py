"""What nodes derive alike from the config: the run id, the inbox limits, the transport options."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from dfl.config.schema import Config
from dfl.transport.factory import NetworkOptions

RUN_ID_FIELDS = (
    "seed",
    "rounds",
    "topology",
    "mixing",
    "algorithm",
    "model",
    "data",
    "optimizer",
    "compression",
    "privacy",
)
"""Config fields that define a run: nodes with different values refuse each other."""


def rounds_ahead(cfg: Config) -> int:
    """``transport.max_rounds_ahead``, or the run's length when it is ``None``."""
    limit = cfg.transport.max_rounds_ahead
    if limit is None:
        return max(cfg.rounds, 1)
    if limit < 1:
        raise ValueError(f"transport.max_rounds_ahead={limit}; expected a positive int or null")
    return limit


def run_id(cfg: Config) -> str:
    """``transport.run_id``, or a digest of the fields that define the run."""
    if cfg.transport.run_id:
        return cfg.transport.run_id
    fields = {}
    for name in RUN_ID_FIELDS:
        value = getattr(cfg, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        fields[name] = value
    text = json.dumps(fields, sort_keys=True, default=str)
    return "cfg-" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def transport_options(
    cfg: Config, *, schedule: Any = None, workdir: str | Path | None = None
) -> NetworkOptions:
    """What every transport endpoint of the run shares beyond ``cfg.transport``.

    A message the run's own fault injector drops is awaited ``node.deadline_s``
    (never the first round's ``node.first_deadline_s``, which is for peers
    that are slow to start). With the run's ``schedule``, each node's
    neighbours over one period (whom a Pilot node trusts); ``workdir`` is where
    an organising backend keeps the run's keys.
    """
    neighbours = None
    if schedule is not None:
        from dfl.topology.schedule import neighbours_of

        neighbours = functools.partial(neighbours_of, schedule)
    return NetworkOptions(
        run_id=run_id(cfg),
        max_rounds_ahead=rounds_ahead(cfg),
        dropped_wait_s=cfg.node.deadline_s,
        neighbours=neighbours,
        workdir=None if workdir is None else str(workdir),
    )
