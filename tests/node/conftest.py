"""A tiny deployment shared by the node tests: config, compiled program, fault-free run."""

from __future__ import annotations

import pytest

from dfl.experiment import build_experiment
from dfl.node import build_program, run_loopback
from tests.node.common import compose_config

DEADLINE = 1.0
"""``node.deadline_s`` of the fault tests (seconds)."""


@pytest.fixture(scope="session")
def tiny():
    """``(cfg, program, baseline)``: 4 nodes, ring, 10 rounds, and its fault-free loopback run."""
    cfg, opt = compose_config(
        "rounds=10",
        "eval_every=5",
        f"node.deadline_s={DEADLINE}",
        "node.first_deadline_s=60",
        "node.wait_timeout_s=30",
    )
    program = build_program(build_experiment(cfg, opt))
    return cfg, program, run_loopback(cfg, program=program)
