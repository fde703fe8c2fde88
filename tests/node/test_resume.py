"""A run stopped at round k and resumed ends exactly where a straight run ends."""

from __future__ import annotations

import shutil

import pytest

from dfl.experiment import build_experiment
from dfl.metrics import read_jsonl
from dfl.node import build_program, run_loopback
from dfl.sim.runner import simulate
from tests.node.common import assert_equal, compose_config, node_params, replace

STATEFUL = {
    "dsgd": (),
    "choco-top_k": ("algorithm=choco", "compression=top_k"),  # public copies, compressor key
    "dsgd_ef-low_rank": ("algorithm=dsgd_ef", "compression=low_rank"),  # residual, warm starts
    "dp_sgd": ("privacy=dp_sgd", "data.partition=dirichlet"),  # noise keys, Poisson sampler
}
"""Runs whose state beyond the parameters must survive a checkpoint."""


@pytest.mark.parametrize("extra", STATEFUL.values(), ids=STATEFUL.keys())
def test_simulation_resumes_exactly(tmp_path, extra):
    cfg, opt = compose_config(*extra, "checkpoint.every=10", f"checkpoint.dir={tmp_path / 'ck'}")
    straight = simulate(cfg, opt)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir() if p.name.isdigit()) == ["10", "20"]
    shutil.rmtree(tmp_path / "ck" / "20")  # as if stopped after round 10
    resumed = simulate(replace(cfg, resume=str(tmp_path / "ck")), opt, workdir=tmp_path / "run")
    assert_equal(resumed.state, straight.state)
    assert [r["round"] for r in resumed.records] == [20]
    for key in ("test_accuracy_mean", "consensus_distance", "bytes_sent_per_node"):
        assert resumed.records[-1][key] == straight.records[-1][key]


def test_deployment_resumes_exactly(tiny, tmp_path):
    cfg, program, baseline = tiny
    cfg = replace(cfg, **{"checkpoint.every": 3})
    stopped = run_loopback(cfg, program=program, workdir=tmp_path, stop_round=5)
    assert {r["round"] for r in stopped.records} == {5}
    resumed = run_loopback(replace(cfg, resume=str(tmp_path)), program=program, workdir=tmp_path)
    for i in range(cfg.topology.n):
        assert_equal(node_params(resumed, i), node_params(baseline, i))
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["round"] for r in records] == [5, 10]
    expected = baseline.records[-1]
    for key in (
        "test_accuracy_mean",
        "bytes_sent_per_node",
        "bytes_received_per_node",
        "messages_missing",
    ):
        assert records[-1][key] == expected[key]
    # Resumed from the checkpoint of round 3, not from scratch: rounds 3..9 ran again.
    assert all(resumed.nodes[i].rounds_run == 7 for i in range(cfg.topology.n))
    # The node's own log holds one whole run: the re-run round 5 replaced the first one.
    node_log = read_jsonl(tmp_path / "nodes" / "node_0" / "metrics.jsonl")
    assert [r["round"] for r in node_log] == [5, 10]


@pytest.mark.parametrize(
    "extra", [STATEFUL["choco-top_k"], STATEFUL["dp_sgd"]], ids=["choco-top_k", "dp_sgd"]
)
def test_stateful_deployment_resumes_exactly(tmp_path, extra):
    cfg, opt = compose_config(*extra, "rounds=10", "eval_every=5", "checkpoint.every=3")
    program = build_program(build_experiment(cfg, opt))
    straight = run_loopback(cfg, program=program, workdir=tmp_path / "straight")
    run_loopback(cfg, program=program, workdir=tmp_path / "run", stop_round=5)
    resumed = run_loopback(
        replace(cfg, resume=str(tmp_path / "run")), program=program, workdir=tmp_path / "run"
    )
    for i in range(cfg.topology.n):
        assert_equal(node_params(resumed, i), node_params(straight, i))
        assert_equal(resumed.nodes[i].state, straight.nodes[i].state)  # every state leaf


def corrupt(step_dir, how: str) -> None:
    """Overwrites bytes of every array data file of a checkpoint (as a damaged disk would)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for f in files:
        data = bytearray(f.read_bytes())
        if how == "zeroed":  # unreadable: the compressed stream breaks
            data[:] = bytes(len(data))
        else:  # flipped: still decompresses, to wrong numbers
            mid = len(data) // 2
            data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
        f.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["zeroed", "flipped"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, caplog, how):
    cfg, opt = compose_config("checkpoint.every=10", f"checkpoint.dir={tmp_path / 'ck'}")
    straight = simulate(cfg, opt)
    corrupt(tmp_path / "ck" / "20", how)
    with caplog.at_level("WARNING", logger="dfl.checkpoint"):
        resumed = simulate(replace(cfg, resume=str(tmp_path / "ck")), opt)
    assert_equal(resumed.state, straight.state)  # rounds 11..20 ran again from checkpoint 10
    assert [r["round"] for r in resumed.records] == [20]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "checkpoint 20" in warning and "resuming from checkpoint 10 instead" in warning
    # set aside, and saved again by the resumed run
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["10", "20", "20.corrupt"]


def test_every_checkpoint_corrupt_is_one_error_naming_each(tmp_path):
    from dfl.checkpoint import CorruptCheckpointError

    cfg, opt = compose_config("checkpoint.every=10", f"checkpoint.dir={tmp_path / 'ck'}")
    simulate(cfg, opt)
    for step in ("10", "20"):
        corrupt(tmp_path / "ck" / step, "flipped")
    with pytest.raises(CorruptCheckpointError, match="can be restored") as e:
        simulate(replace(cfg, resume=str(tmp_path / "ck")), opt)
    assert "checkpoint 20" in str(e.value) and "checkpoint 10" in str(e.value)
    assert isinstance(e.value, ValueError)  # the CLI prints it as one `dfl: error:` line


def test_resumed_simulation_continues_the_runs_metrics_file(tmp_path):
    cfg, opt = compose_config("checkpoint.every=10", "eval_every=5")
    run = tmp_path / "run"
    straight = simulate(cfg, opt, workdir=run)
    shutil.rmtree(run / "checkpoints" / "20")  # stopped after round 10 (records 15, 20 too)
    longer = replace(cfg, resume=str(run), rounds=30)
    simulate(longer, opt, workdir=run)
    records = read_jsonl(run / "metrics.jsonl")
    assert [r["round"] for r in records] == [5, 10, 15, 20, 25, 30]
    for before, after in zip(straight.records, records[:4], strict=True):
        assert after["test_accuracy_mean"] == before["test_accuracy_mean"]
    csv_rounds = [line.split(",", 1)[0] for line in (run / "metrics.csv").read_text().splitlines()]
    assert csv_rounds == ["round", "5", "10", "15", "20", "25", "30"]


def test_resuming_a_finished_run_without_more_rounds_says_so(tmp_path):
    cfg, opt = compose_config("checkpoint.every=10", f"checkpoint.dir={tmp_path / 'ck'}")
    simulate(cfg, opt)
    with pytest.raises(ValueError, match="at round 20, so rounds=20 leaves nothing to run"):
        simulate(replace(cfg, resume=str(tmp_path / "ck")), opt)


def test_deployment_resumes_from_the_newest_intact_checkpoints(tiny, tmp_path, caplog):
    cfg, program, baseline = tiny
    cfg = replace(cfg, **{"checkpoint.every": 2})
    run_loopback(cfg, program=program, workdir=tmp_path, stop_round=5)  # checkpoints 2 and 4
    for i in range(cfg.topology.n):
        step = tmp_path / "nodes" / f"node_{i}" / "checkpoints" / "4"
        if i % 2:
            (step / "meta" / "metadata").write_bytes(b"\x00garbage")  # unreadable JSON
        else:
            corrupt(step, "flipped")
    with caplog.at_level("WARNING", logger="dfl.checkpoint"):
        resumed = run_loopback(
            replace(cfg, resume=str(tmp_path)), program=program, workdir=tmp_path
        )
    for i in range(cfg.topology.n):
        assert_equal(node_params(resumed, i), node_params(baseline, i))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == cfg.topology.n
    assert all("resuming from checkpoint 2 instead" in w for w in warnings)
