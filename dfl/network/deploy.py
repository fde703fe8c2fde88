"""The deployment's side of a network model: the fault config and the replayed schedule.

A deployment with ``network`` not ``ideal`` does not measure the network, it
replays the one the simulation computes (:func:`dfl.network.schedule.replay`, the
same :func:`dfl.network.clock.step` with numpy):

* the transport's fault injector loses what the model loses — ``network.drop``
  and ``network.seed`` become ``transport.faults.drop``/``seed`` (the injector's
  drop draw is the model's, :mod:`dfl.network.draws`) and the churn table becomes
  ``transport.faults.offline`` intervals — for ``RENORMALIZE`` algorithms; ``WAIT``
  algorithms lose nothing (their retransmissions and pauses are virtual time);
* a node uses a neighbour's message only if the schedule delivered it (the
  exchange's delivery mask), sits out its offline rounds, and records the
  schedule's ``sim_time``, ``retransmissions`` and ``nodes_online``. Stragglers,
  latencies and bandwidths act through the schedule only (no wall-clock sleep):
  delivery never depends on wall-clock timing, so a loaded machine replays the
  same run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dfl.algorithms.base import MissingRule
from dfl.experiment import Experiment
from dfl.network.churn import offline_intervals
from dfl.network.schedule import Schedule, load, replay
from dfl.network.sim import is_ideal, network_model
from dfl.transport.wire import framed_nbytes


def deployment_config(cfg: Any, exp: Experiment) -> Any:
    """``cfg`` with ``network``'s losses mapped onto ``transport.faults`` (unchanged if ideal).

    Raises:
      ValueError: ``transport.faults`` already drops messages or cuts nodes off
        (one source of losses: set them in ``network``).
    """
    if is_ideal(cfg):
        return cfg
    faults = cfg.transport.faults
    if faults.drop > 0 or faults.offline:
        raise ValueError(
            f"transport.faults.drop={faults.drop} / offline={faults.offline} with "
            f"network={cfg.network.name!r}: set the losses in network.* only"
        )
    if exp.algorithm.missing_rule == MissingRule.WAIT:
        return cfg
    model = network_model(exp, 0)  # the online table does not depend on message size
    mapped = dataclasses.replace(
        faults,
        seed=cfg.network.seed,
        drop=cfg.network.drop,
        offline=offline_intervals(model.online),
    )
    transport = dataclasses.replace(cfg.transport, faults=mapped)
    return dataclasses.replace(cfg, transport=transport)


def node_schedule(cfg: Any, exp: Experiment, payload_bytes: int) -> Schedule | None:
    """The run's network schedule (``network.schedule_file`` or replayed); ``None`` if ideal.

    Args:
      cfg: the run's config.
      exp: the experiment.
      payload_bytes: one wire message's payload (``spec.nbytes``); frame headers are
        added as ``bytes_sent_per_node`` counts them.
    """
    if is_ideal(cfg):
        return None
    if cfg.network.schedule_file:
        return load(cfg.network.schedule_file)
    nbytes = framed_nbytes(payload_bytes, cfg.transport.chunk_bytes)
    return replay(network_model(exp, nbytes), exp.schedule, cfg.rounds)
