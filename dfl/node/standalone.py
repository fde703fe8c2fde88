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
from dfl.node.program import build_program
from dfl.node.runner import NodeResult, NodeRunner
from dfl.node.setup import rounds_ahead, run_id
from dfl.transport.auth import SECRET_ENV, load_secret
from dfl.transport.faults import FaultInjector
from dfl.transport.tcp import TcpTransport, addresses_from

log = logging.getLogger("dfl.node")

PROGRESS_FILE = "progress.json"
"""Written by a node after every round: ``{"round", "loss", "time"}`` (the launcher reads it)."""


def write_progress(workdir: Path, rounds_done: int, info: dict[str, Any]) -> None:
    """Atomically replaces ``progress.json`` in ``workdir``."""
    tmp = workdir / (PROGRESS_FILE + ".tmp")
    tmp.write_text(json.dumps({"round": rounds_done, "time": time.time(), **info}))
    os.replace(tmp, workdir / PROGRESS_FILE)


def make_transport(cfg: Config, node: int, num_nodes: int) -> Any:
    """This node's transport from ``cfg.transport``.

    Raises:
      ValueError: for ``loopback`` (in-process only) or an unknown name.
    """
    t = cfg.transport
    if t.name == "loopback":
        raise ValueError(
            "transport=loopback runs every node in one process: use "
            "`python -m dfl.launch transport=loopback`, or transport=tcp for a node process"
        )
    if t.name == "pilot":  # transport=pilot (issue 12): this node's own daemon
        return _pilot_transport(cfg, node, num_nodes)
    if t.name != "tcp":
        raise ValueError(
            f"transport.name={t.name!r}; expected 'tcp' or 'pilot' (or loopback via dfl.launch)"
        )
    return TcpTransport(
        node,
        addresses_from(num_nodes, addresses=t.addresses, host=t.host, base_port=t.base_port),
        run_id=run_id(cfg),
        connect_timeout_s=t.connect_timeout_s,
        chunk_bytes=t.chunk_bytes,
        max_rounds_ahead=rounds_ahead(cfg),
        max_message_bytes=t.max_message_bytes,
        faults=FaultInjector(t.faults, num_nodes),
        secret=node_secret(cfg, node),
    )


def _pilot_transport(cfg: Config, node: int, num_nodes: int) -> Any:
    """Node ``node``'s Pilot transport: its daemon, the run's network, its key bundle."""
    from dfl.pilot.endpoint import from_config, neighbours_of
    from dfl.topology import build_schedule

    schedule = build_schedule(cfg.topology, cfg.mixing, seed=cfg.seed)
    return from_config(
        cfg.transport,
        node,
        num_nodes,
        run_id=run_id(cfg),
        neighbours=neighbours_of(schedule, node),
        max_rounds_ahead=rounds_ahead(cfg),
        faults=FaultInjector(cfg.transport.faults, num_nodes),
    )


def node_secret(cfg: Config, node: int) -> bytes | None:
    """The run's shared secret (:func:`dfl.transport.auth.load_secret`); warns without one."""
    secret = load_secret(cfg.transport.secret_file)
    if secret is None:
        log.warning(
            "node %d: tcp connections are not authenticated; set transport.secret_file or $%s "
            "to the same secret on every node",
            node,
            SECRET_ENV,
        )
    return secret


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
    saver, resume = checkpointers(cfg, workdir, node)
    transport = make_transport(cfg, node, exp.n)

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
            on_round=lambda done, info: write_progress(workdir, done, info),
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
        transport.close()
        for c in (saver, resume):
            if c is not None:
                c.close()
