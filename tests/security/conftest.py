"""A tiny ring deployment shared by the security tests (compiled once)."""

from __future__ import annotations

import pytest

from dfl.experiment import build_experiment
from dfl.node import build_program
from tests.node.common import compose_config

DEADLINE = 1.0
"""``node.deadline_s`` of the deployment tests (seconds)."""


@pytest.fixture(scope="session")
def ring():
    """``(cfg, program)``: 4 nodes on a ring, 10 rounds (vary only run-time fields)."""
    cfg, opt = compose_config(
        "rounds=10",
        "eval_every=5",
        f"node.deadline_s={DEADLINE}",
        "node.first_deadline_s=60",
        "node.wait_timeout_s=30",
    )
    return cfg, build_program(build_experiment(cfg, opt))
