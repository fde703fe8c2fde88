"""One node in its own process (what ``python -m dfl.node`` runs), over tcp."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import optax

from dfl.checkpoint import checkpointers
from dfl.config.schema import Config
from dfl.experiment import build_experiment
from dfl.network.deploy import deployment_config
from dfl.node.addresses import check_addresses
from dfl.node.heartbeat import Heartbeat
from dfl.node.program import build_program, senders_of
from dfl.node.runner import NodeResult, NodeRunner
from dfl.node.setup import transport_options
from dfl.transport.factory import make_transport

log = logging.getLogger("dfl.node")

PROGRESS_FILE = "progress.json"
"""Written by a node after every round: ``{"round", "loss", "time"}`` and, once it has
evaluated, ``"acc"`` (the launcher reads it)."""


def write_progress(workdir: Path, rounds_done: int, info: dict[str, Any]) -> None:
    """Atomically replaces ``progress.json`` in ``workdir``."""
    tmp = workdir / (PROGRESS_FILE + ".tmp")
    tmp.write_text(json.dumps({"round": rounds_done, "time": time.time(), **info}))
    os.replace(tmp, workdir / PROGRESS_FILE)


def _wait_limit(cfg: Config):
    phrase = (
        f"up to node.first_deadline_s={cfg.node.first_deadline_s:g}s in its first round, "
        f"node.deadline_s={cfg.node.deadline_s:g}s after"
    )
    return lambda t: phrase


def run_node(cfg: Config, optimizer: optax.GradientTransformation, workdir: Path) -> NodeResult:
    """Runs node ``cfg.node.id`` to the end of the run; SIGTERM stops it cleanly.

    Writes ``metrics.jsonl``, ``params/`` and ``progress.json`` into ``workdir``
    and, with ``checkpoint.every``, its checkpoints; ``resume`` continues from one.
    """
    exp = build_experiment(cfg, optimizer)
    node = cfg.node.id
    if not 0 <= node < exp.n:
        raise ValueError(f"node.id={node} is not a node of this run (0..{exp.n - 1})")
    program = build_program(exp)
    workdir.mkdir(parents=True, exist_ok=True)
    check_addresses(cfg)
    saver, resume = checkpointers(cfg, workdir, node)
    options = transport_options(cfg, schedule=exp.schedule)
    # A network model's losses -> transport.faults (dfl.network.deploy), as in-process runs.
    transport = make_transport(deployment_config(cfg, exp).transport, node, exp.n, options)
    heartbeat = Heartbeat(node, senders_of(exp.schedule, node), _wait_limit(cfg)).start()

    def on_round(done: int, info: dict[str, Any]) -> None:
        heartbeat.beat(done)
        if runner.records:  # the accuracy of its last evaluation, for the launcher's bar
            info = {**info, "acc": runner.records[-1]["test_accuracy"]}
        write_progress(workdir, done, info)

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        runner = NodeRunner(
            program,
            node,
            transport,
            workdir=workdir,
            checkpointer=saver,
            resume=resume,
            on_round=on_round,
        )
        result = runner.run()
        log.info("node %d finished: %s", node, result.counters)
        return result
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C: leave at once, do not flush
        log.warning("node %d stopped by a signal", node)
        transport.crash()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        heartbeat.stop()
        transport.close()
        for c in (saver, resume):
            if c is not None:
                c.close()
