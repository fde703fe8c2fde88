"""Faults over loopback: benign ones change nothing, the others are counted, never silent."""

from __future__ import annotations

import dataclasses
import logging
import time

import jax.numpy as jnp
import numpy as np
import pytest

from dfl.algorithms.base import MissingRule
from dfl.node import run_loopback
from dfl.node.setup import rounds_ahead
from dfl.transport import Kind, WireSpec, encode_payload, run_digest
from dfl.transport.wire import frame_bytes
from tests.node.common import assert_equal, node_params, replace
from tests.node.conftest import DEADLINE
from tests.transport.forge import reheader


def with_faults(cfg, **faults):
    return replace(cfg, **{f"transport.faults.{k}": v for k, v in faults.items()})


def with_rule(program, rule: MissingRule):
    """The same compiled program, its algorithm declaring another missing-message rule."""
    algorithm = dataclasses.replace(program.exp.algorithm, missing_rule=rule)
    return dataclasses.replace(program, exp=dataclasses.replace(program.exp, algorithm=algorithm))


def totals(result):
    """``(missing, rejected, late)`` summed over nodes.

    Every missing message is accounted for: lost by an injected fault, rejected,
    or late (a valid message after its round closed: a straggler's, or any node's
    slowed past the deadline on this busy machine), so the tests check
    ``missing == injected + late`` rather than trusting the machine's timing.
    """
    last = result.records[-1]
    print("records:", result.records, "faults:", result.faults)  # shown if a test fails
    return last["messages_missing"], last["messages_rejected"], last["messages_late"]


def assert_same_params(result, baseline):
    for i in range(baseline.experiment.n):
        assert_equal(node_params(result, i), node_params(baseline, i))


@pytest.mark.parametrize(
    "faults",
    [
        {"delay": 1.0, "delay_s": 0.2},
        {"duplicate": 1.0},
        {"reorder": 1.0, "reorder_window_s": 0.05},
        {"straggler_nodes": [1], "straggler_delay_s": 0.3, "straggler_rounds": [3]},
    ],
    ids=["delay", "duplicate", "reorder", "straggler-within-deadline"],
)
def test_benign_faults_give_the_fault_free_result(tiny, faults):
    cfg, program, baseline = tiny
    cfg = replace(with_faults(cfg, **faults), **{"node.deadline_s": 20.0})
    result = run_loopback(cfg, program=program)
    assert_same_params(result, baseline)
    assert totals(result) == (0, 0, 0)
    # The fault really hit every message (probability 1), not a lucky few.
    messages = result.records[-1]["messages_sent"]
    injected = {"delay": "delayed", "duplicate": "duplicated", "reorder": "reordered"}
    for fault, stat in injected.items():
        if fault in faults:
            assert getattr(result.faults, stat) == messages > 0


def test_chunked_messages_survive_duplicated_and_reordered_chunks(tiny):
    cfg, program, baseline = tiny
    assert program.spec.nbytes > 4 * 512  # every message travels as 5+ chunks
    cfg = with_faults(cfg, duplicate=1.0, reorder=1.0, reorder_window_s=0.05)
    cfg = replace(cfg, **{"node.deadline_s": 20.0, "transport.chunk_bytes": 512})
    result = run_loopback(cfg, program=program)
    assert_same_params(result, baseline)
    assert totals(result) == (0, 0, 0)
    assert result.faults.reordered == result.records[-1]["messages_sent"] > 0


def test_a_late_starter_within_the_first_deadline_delays_but_changes_nothing(tiny):
    cfg, program, baseline = tiny
    # Node 2 starts 3 deadlines late (first_deadline_s is 60): its neighbours wait in
    # round 0 and keep telling theirs (WAITING every half deadline), so nobody gives up.
    faults = {"straggler_nodes": [2], "straggler_delay_s": 3 * DEADLINE, "straggler_rounds": [0]}
    result = run_loopback(with_faults(cfg, **faults), program=program)
    assert_same_params(result, baseline)
    assert totals(result) == (0, 0, 0)
    assert all(node.counters.rounds_skipped == 0 for node in result.nodes.values())


def test_drop_follows_the_missing_rule_and_is_counted(tiny):
    cfg, program, baseline = tiny
    result = run_loopback(with_faults(cfg, drop=0.3, rounds=[2, 3, 4], seed=1), program=program)
    dropped = result.faults.dropped
    missing, rejected, late = totals(result)
    assert dropped > 0 and rejected == 0 and missing == dropped + late
    assert all(r["nodes_reporting"] == 4 for r in result.records)
    assert result.records[-1]["round"] == cfg.rounds
    with pytest.raises(AssertionError):
        assert_same_params(result, baseline)


def test_partition_is_counted_exactly(tiny):
    cfg, program, _ = tiny
    faults = {"partition": [[0, 1], [2, 3]], "partition_rounds": [3, 5]}
    result = run_loopback(with_faults(cfg, **faults), program=program)
    # Ring 0-1-2-3-0: edges 1-2 and 3-0 cross, both ways, for 2 rounds.
    assert result.faults.partitioned == 8
    missing, rejected, late = totals(result)
    assert rejected == 0 and missing == 8 + late


def test_corruption_is_rejected_and_missing(tiny):
    cfg, program, _ = tiny
    result = run_loopback(with_faults(cfg, corrupt=0.5, rounds=[2, 6], seed=2), program=program)
    corrupted = result.faults.corrupted
    missing, rejected, late = totals(result)
    assert corrupted > 0 and rejected == corrupted and missing == corrupted + late


def test_straggler_past_the_deadline_is_missing_then_late(tiny):
    cfg, program, _ = tiny
    # Late by half a deadline past its neighbours' deadline: one round lost, no more.
    faults = {"straggler_nodes": [1], "straggler_delay_s": 1.5 * DEADLINE, "straggler_rounds": [3]}
    result = run_loopback(with_faults(cfg, **faults), program=program)
    # Nodes 0 and 2 miss node 1's round-3 message; it arrives late and is rejected.
    missing, rejected, late = totals(result)
    assert rejected == 0 and missing == late >= 2


def test_crashed_node_does_not_stall_the_others(tiny, tmp_path):
    cfg, program, _ = tiny
    cfg = with_faults(cfg, crash_node=2, crash_round=4, restart_after_s=-1.0)
    start = time.monotonic()
    result = run_loopback(cfg, program=program)
    elapsed = time.monotonic() - start
    # Rounds 4..9 lose node 2's message at nodes 1 and 3: one deadline per round.
    missing, rejected, late = totals(result)
    assert rejected == 0 and missing == 12 + late
    assert result.records[-1]["nodes_reporting"] == 3
    assert elapsed < 6 * DEADLINE + 10
    assert sorted(result.nodes) == [0, 1, 3]


def test_crash_and_restart_from_checkpoint_rejoins(tiny, tmp_path):
    cfg, program, _ = tiny
    cfg = with_faults(cfg, crash_node=2, crash_round=4, restart_after_s=0.5)
    cfg = replace(cfg, **{"checkpoint.every": 2})
    result = run_loopback(cfg, program=program, workdir=tmp_path)
    assert sorted(result.nodes) == [0, 1, 2, 3]
    last = result.records[-1]
    assert last["round"] == cfg.rounds and last["nodes_reporting"] == 4
    assert last["messages_missing"] >= 2  # node 2's silent rounds, counted by 1 and 3
    assert (tmp_path / "nodes" / "node_2" / "checkpoints").is_dir()
    assert (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "deployment.json").is_file()


def test_node_down_for_many_rounds_rejoins_at_the_current_round(tiny, tmp_path):
    cfg, program, _ = tiny
    # Down ~4 deadlines: its neighbours move on by several rounds meanwhile.
    cfg = with_faults(cfg, crash_node=2, crash_round=2, restart_after_s=4 * DEADLINE)
    # Failure detection off: with it, the neighbours stop waiting for node 2 after
    # transport.down_after_missed deadlines and finish the 10 rounds before it is back
    # (tests/security/test_failure_detection.py), leaving nobody to rejoin.
    cfg = replace(
        cfg,
        **{
            "checkpoint.every": 1,
            "transport.max_rounds_ahead": None,
            "transport.down_after_missed": 0,
        },
    )
    assert rounds_ahead(cfg) == cfg.rounds
    result = run_loopback(cfg, program=program, workdir=tmp_path)
    assert result.nodes[2].counters.rounds_skipped >= 2
    assert result.records[-1]["round"] == cfg.rounds


def test_rounds_ahead_defaults_to_the_run_and_checks_its_value(tiny):
    cfg, _, _ = tiny
    assert rounds_ahead(replace(cfg, **{"transport.max_rounds_ahead": None})) == cfg.rounds
    assert rounds_ahead(replace(cfg, **{"transport.max_rounds_ahead": 3})) == 3
    with pytest.raises(ValueError, match="max_rounds_ahead=0"):
        rounds_ahead(replace(cfg, **{"transport.max_rounds_ahead": 0}))


def test_a_node_that_cannot_start_fails_the_run_loudly(tiny):
    cfg, program, _ = tiny
    cfg = replace(cfg, **{"checkpoint.every": 2})  # and no directory to write them to
    with pytest.raises(RuntimeError, match=r"node \d failed: checkpoint.every > 0 needs"):
        run_loopback(cfg, program=program)


def test_wait_rule_fails_loudly(tiny):
    cfg, program, _ = tiny
    cfg = with_faults(cfg, drop=1.0, rounds=[2])
    cfg = replace(cfg, **{"node.wait_timeout_s": 1.0})
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="must WAIT"):
        run_loopback(cfg, program=with_rule(program, MissingRule.WAIT))
    assert time.monotonic() - start < 20


def test_malicious_frames_are_rejected_and_change_nothing(tiny, monkeypatch, caplog):
    cfg, program, baseline = tiny
    spec = program.spec
    good = [np.zeros(s, d) for s, d in zip(spec.shapes, spec.dtypes, strict=True)]
    nan = [np.full(s, np.nan, d) for s, d in zip(spec.shapes, spec.dtypes, strict=True)]
    wrong = WireSpec.from_tree({"w": jnp.zeros(3)})
    from dfl.node.setup import run_id

    run = run_digest(run_id(cfg))

    def frames(tree_spec, leaves, *, sender=1, round_=0, run=run):
        payload = encode_payload(tree_spec, tree_spec.unflatten(leaves))
        return [
            frame_bytes(f)
            for f in payload.frames(
                run=run, sender=sender, recipient=0, round=round_, kind=Kind.WIRE
            )
        ]

    # Rounds past the run (never reached, so no real message is shadowed), within
    # max_rounds_ahead so every check runs; each frame with the reason it must get.
    bad = {
        "wrong run id": frames(spec, good, run=run_digest("another run"))[0],
        "unknown sender 9": frames(spec, good, sender=9)[0],
        "schema digest mismatch": frames(wrong, [np.zeros(3, np.float32)], round_=500)[0],
        "non-finite values": frames(spec, nan, sender=3, round_=600)[0],
        "not an in-neighbour": frames(spec, good, sender=2, round_=1)[0],
        "payload of": reheader(
            frames(wrong, [np.zeros(3, np.float32)], round_=650)[0], schema=spec.digest
        ),
        "truncated frame": frames(spec, good, round_=700)[0][:-10],
        "bad magic": b"\x80\x04garbage" + bytes(100),
    }
    from dfl.transport.loopback import LoopbackNetwork

    original = LoopbackNetwork.endpoint

    def endpoint(self, node_id):
        ep = original(self, node_id)
        if node_id == 0:
            for f in bad.values():
                ep.queue.put(f)
        return ep

    monkeypatch.setattr(LoopbackNetwork, "endpoint", endpoint)
    cfg = replace(cfg, **{"node.deadline_s": 20.0, "transport.max_rounds_ahead": 1024})
    with caplog.at_level(logging.WARNING, logger="dfl.transport"):
        result = run_loopback(cfg, program=program)
    assert_same_params(result, baseline)
    missing, rejected, late = totals(result)
    assert rejected == len(bad) and missing == late
    logged = [r.getMessage() for r in caplog.records if "node 0 rejected" in r.getMessage()]
    for reason in bad:
        assert any(reason in line for line in logged), (reason, logged)
