"""Churn from a trace file, and a schedule's file."""

from __future__ import annotations

import numpy as np
import pytest

from dfl.experiment import build_experiment
from dfl.network import schedule as schedule_file
from dfl.network.churn import offline_intervals, read_trace, trace_table
from dfl.network.deploy import node_schedule
from dfl.sim.runner import simulate
from tests.node.common import compose_config

TRACE = """# node start stop: offline in [start, stop)
0 2 5
1 4 6
3 0 1
0 10 12
"""


def expected_online(rounds: int, n: int = 4) -> list[int]:
    """Online nodes per round of :data:`TRACE`, counted by hand."""
    off = {0: [(2, 5), (10, 12)], 1: [(4, 6)], 3: [(0, 1)]}
    return [
        n - sum(any(a <= t < b for a, b in spans) for spans in off.values()) for t in range(rounds)
    ]


def test_trace_file_reproduces_online_counts(tmp_path):
    path = tmp_path / "trace.txt"
    path.write_text(TRACE)
    cfg, opt = compose_config(
        "network=lossy",
        "network.churn.kind=trace",
        f"network.churn.file={path}",
        "eval_every=1",
    )
    result = simulate(cfg, opt)
    counts = [r["nodes_online"] for r in result.records]
    assert counts == expected_online(20)
    assert min(counts) == 2  # rounds 4: nodes 0 and 1 both away


def test_trace_in_seconds_converts_with_the_nominal_round(tmp_path):
    path = tmp_path / "trace_s.txt"
    path.write_text("2 1.0 2.6\n")  # round_s = 0.5: offline in rounds [2, 5)
    online = trace_table(read_trace(path, unit="seconds", round_s=0.5), 4, 8)
    np.testing.assert_array_equal(online[:, 2], [1, 1, 0, 0, 0, 1, 1, 1])
    assert online[:, [0, 1, 3]].all()
    assert offline_intervals(online) == [[2, 2, 5]]


def test_a_bad_trace_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("0 1 2\n0 1\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        read_trace(path)


def test_schedule_saves_loads_and_replays_identically(tmp_path):
    cfg, opt = compose_config(
        "network=lossy", "network.drop=0.3", "network.churn.kind=markov", "network.seed=4"
    )
    exp = build_experiment(cfg, opt)
    sched = node_schedule(cfg, exp, payload_bytes=2600)
    assert sched is not None
    path = tmp_path / "schedule.npz"
    schedule_file.save(path, sched)
    again = schedule_file.load(path)
    for name in ("delivered", "online", "clock", "missing", "retransmissions", "sent"):
        np.testing.assert_array_equal(getattr(again, name), getattr(sched, name))
    assert 0 < sched.missing[-1].sum() < sched.delivered.size  # the case loses some messages
