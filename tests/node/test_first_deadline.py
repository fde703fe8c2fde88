"""The first round's long deadline is for slow peer start-up, not for lost messages."""

from __future__ import annotations

import threading
import time

from dfl.config.deploy_schema import NodeConfig
from dfl.experiment import build_experiment
from dfl.node import build_program, run_loopback
from dfl.transport import FaultInjector, Kind
from tests.node.common import compose_config, replace

RUN_LIMIT_S = 90.0
"""Far below the default ``node.first_deadline_s`` (300 s) that the old code waited."""


def lost_at_round_0(faults, n: int) -> bool:
    injector = FaultInjector(faults, n)
    ring = [(i, (i + d) % n) for i in range(n) for d in (1, -1)]
    return any(injector.loses(j, i, 0, Kind.WIRE) for i, j in ring)


def test_a_dropped_round_0_message_waits_the_normal_deadline_not_the_first():
    cfg, opt = compose_config(
        "rounds=6",
        "eval_every=3",
        "transport=loopback",
        "transport.faults.drop=0.2",
        "node.deadline_s=0.5",
    )
    assert cfg.node.first_deadline_s == NodeConfig().first_deadline_s >= 300
    seed = next(s for s in range(100) if lost_at_round_0(replace(cfg.transport.faults, seed=s), 4))
    cfg = replace(cfg, **{"transport.faults.seed": seed})
    program = build_program(build_experiment(cfg, opt))
    result = {}
    start = time.monotonic()
    thread = threading.Thread(
        target=lambda: result.update(run=run_loopback(cfg, program=program)), daemon=True
    )
    thread.start()
    thread.join(RUN_LIMIT_S)
    assert not thread.is_alive(), f"the run stalled for over {RUN_LIMIT_S} s"
    run = result["run"]
    assert run.faults is not None and run.faults.dropped > 0
    assert run.records[-1]["round"] == cfg.rounds and run.records[-1]["messages_missing"] > 0
    assert time.monotonic() - start < RUN_LIMIT_S
