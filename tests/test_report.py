"""``dfl.report``: grouped tables (mean ± std over seeds) and plots from run directories.

The fake multirun below has two groups (topology=ring, topology=complete) of three
seeds each, with hand-chosen records; every expected number is computed by hand
in the comments. Stds are *sample* stds (ddof = 1), as the report documents.
"""

from __future__ import annotations

import csv
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import dfl
from dfl.report import Run, default_by, load_runs, main, report, summarize_run
from dfl.report.plots import seed_curve

ACCURACY = {  # (topology, seed) -> test_accuracy_mean at rounds 1..4
    ("ring", 0): [0.5, 0.7, 0.9, 0.8],  # final 0.8, best 0.9, 0.9 first at round 3
    ("ring", 1): [0.6, 0.8, 0.85, 0.95],  # final 0.95, best 0.95, round 4
    ("ring", 2): [0.4, 0.6, 0.7, 0.8],  # final 0.8, best 0.8, never 0.9
    ("complete", 0): [0.7, 0.92, 0.95, 0.96],  # round 2
    ("complete", 1): [0.91, 0.93, 0.94, 0.97],  # round 1
    ("complete", 2): [0.6, 0.8, 0.9, 0.98],  # round 3
}
BYTES_PER_ROUND = {"ring": 1e6, "complete": 3e6}
CONSENSUS = {"ring": [0.04, 0.02, 0.03], "complete": [1e-6, 2e-6, 3e-6]}  # by seed, final round


def records(topology: str, seed: int, *, private: bool) -> list[dict]:
    out = []
    for i, acc in enumerate(ACCURACY[topology, seed]):
        r = i + 1
        record = {
            "round": r,
            "wall_time": 0.5 * r + 0.1 * seed,
            "test_accuracy_mean": acc,
            "consensus_distance": CONSENSUS[topology][seed] * (5 - r),
            "bytes_sent_per_node": BYTES_PER_ROUND[topology] * r,
        }
        if private:
            record["epsilon"] = 0.5 * r
        out.append(record)
    return out


def write_run(directory: Path, config: dict, recs: list[dict], overrides: list[str] | None) -> Path:
    directory.mkdir(parents=True)
    (directory / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    if overrides is not None:
        (directory / ".hydra").mkdir()
        (directory / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return directory


def config(topology: str, seed: int) -> dict:
    return {
        "seed": seed,
        "rounds": 4,
        "topology": {"name": topology, "n": 8},
        "model": {"name": "mlp", "hidden": [64]},
    }


def write_multirun(root: Path, *, private: bool = False) -> Path:
    """Hydra's layout: ``root/{job}_{overrides}/`` with ``.hydra/overrides.yaml``."""
    job = 0
    for topology in ("ring", "complete"):
        for seed in range(3):
            write_run(
                root / f"{job}_seed={seed},topology={topology}",
                config(topology, seed),
                records(topology, seed, private=private),
                [f"topology={topology}", f"seed={seed}", "hydra.sweep.dir=x"],
            )
            job += 1
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


@pytest.fixture
def multirun(tmp_path: Path) -> Path:
    return write_multirun(tmp_path / "multirun")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's signature and IHDR chunk (fails if not a PNG)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, path
    assert data[-8:-4] == b"IEND", path
    return struct.unpack(">II", data[16:24])


def test_table_groups_seeds_with_hand_computed_mean_and_sample_std(multirun, tmp_path):
    result = report([multirun], out=tmp_path / "out")
    assert result.by == ["topology"]  # the varying override key; seed and hydra.* left out
    lines = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert lines[0] == (
        "| topology | seeds | rounds | final acc | best acc | rounds to 0.9 | MB/node to 0.9 "
        "| s to 0.9 | consensus |"
    )
    # ring: final (0.8, 0.95, 0.8) → 0.85 ± sqrt(0.015 / 2) = 0.0866 (population: 0.0707);
    # best (0.9, 0.95, 0.8) → 0.88333 ± 0.07638; target reached by seeds 0 and 1 only:
    # rounds (3, 4) → 3.5 ± 0.707, MB (3, 4) → 3.5 ± 0.707, wall s (1.5, 2.1) → 1.8 ± 0.424;
    # consensus (0.04, 0.02, 0.03) → 0.03 ± 0.01.
    assert lines[2] == (
        "| ring | 3 | 4 | 0.8500 ± 0.0866 | 0.8833 ± 0.0764 | 3.5 ± 0.7 (2/3) "
        "| 3.5 ± 0.707 (2/3) | 1.8 ± 0.424 (2/3) | 0.03 ± 0.01 |"
    )
    # complete: final = best (0.96, 0.97, 0.98) → 0.97 ± 0.01; rounds (2, 1, 3) → 2 ± 1;
    # MB (6, 3, 9) → 6 ± 3; wall s (1.0, 0.6, 1.7) → 1.1 ± sqrt(0.62 / 2) = 0.557.
    assert lines[3] == (
        "| complete | 3 | 4 | 0.9700 ± 0.0100 | 0.9700 ± 0.0100 | 2.0 ± 1.0 "
        "| 6 ± 3 | 1.1 ± 0.557 | 2e-06 ± 1e-06 |"
    )
    assert len(lines) == 4


def test_csv_reads_back_with_the_same_numbers(multirun, tmp_path):
    report([multirun], out=tmp_path / "out")
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["topology"] for r in rows] == ["ring", "complete"]
    ring, complete = rows
    assert (ring["seeds"], ring["rounds"], ring["target"], ring["target_reached"]) == (
        "3",
        "4",
        "0.9",
        "2",
    )
    assert float(ring["final_accuracy_mean"]) == pytest.approx(0.85)
    assert float(ring["final_accuracy_std"]) == pytest.approx(math.sqrt(0.015 / 2))
    assert float(ring["best_accuracy_mean"]) == pytest.approx(2.65 / 3)
    assert float(ring["best_accuracy_std"]) == pytest.approx(math.sqrt(0.035 / 3 / 2))
    assert float(ring["rounds_to_target_mean"]) == 3.5
    assert float(ring["rounds_to_target_std"]) == pytest.approx(math.sqrt(0.5))
    assert float(ring["bytes_to_target_mean"]) == 3.5e6  # bytes, not MB
    assert float(ring["seconds_to_target_mean"]) == pytest.approx(1.8)
    assert float(ring["seconds_to_target_std"]) == pytest.approx(math.sqrt(0.18))
    assert float(ring["consensus_distance_std"]) == pytest.approx(0.01)
    assert ring["epsilon_mean"] == ring["epsilon_std"] == ""
    assert complete["target_reached"] == "3"
    assert float(complete["rounds_to_target_mean"]) == 2.0
    assert float(complete["rounds_to_target_std"]) == 1.0
    assert float(complete["bytes_to_target_mean"]) == 6e6
    assert float(complete["bytes_to_target_std"]) == pytest.approx(3e6)
    assert float(complete["seconds_to_target_std"]) == pytest.approx(math.sqrt(0.31))


def test_target_not_reached(multirun, tmp_path):
    report([multirun], target=0.99, out=tmp_path / "out")
    ring = (tmp_path / "out" / "results.md").read_text().splitlines()[2]
    assert ring.split(" | ")[5:8] == ["not reached"] * 3
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["target_reached"] == "0" and row["rounds_to_target_mean"] == ""


def test_simulated_and_wall_seconds_are_separate_fields():
    recs = [
        {"round": 1, "wall_time": 9.0, "sim_time": 0.25, "test_accuracy_mean": 0.5},
        {"round": 2, "wall_time": 9.5, "sim_time": 0.75, "test_accuracy_mean": 0.95},
    ]
    run = Run(dir=Path("x"), config={}, overrides={}, records=recs)
    summary = summarize_run(run, 0.9)
    assert (summary.rounds_to_target, summary.sim_seconds_to_target) == (2.0, 0.75)
    assert summary.seconds_to_target == 9.5  # wall-clock, not simulated
    assert summary.sim_time == 0.75
    assert summary.messages_missing is None and summary.retransmissions is None


def test_every_plot_is_a_png(multirun, tmp_path):
    result = report([multirun], out=tmp_path / "out")
    names = sorted(p.name for p in result.files if p.suffix == ".png")
    assert names == [
        "accuracy_vs_bytes.png",
        "accuracy_vs_round.png",
        "accuracy_vs_wall_time.png",
        "consensus_vs_round.png",
    ]  # no ε figure: the runs are not private
    for name in names:
        width, height = png_size(tmp_path / "out" / name)
        assert width > 100 and height > 100


def test_private_runs_get_epsilon_column_and_figure(tmp_path):
    runs = write_multirun(tmp_path / "private", private=True)
    main([str(runs), "--x", "epsilon", "--out", str(tmp_path / "out")])
    lines = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert lines[0].endswith("| consensus | ε |")
    assert lines[2].endswith("| 2.00 ± 0.00 |")  # ε after round 4 = 0.5 · 4 on every seed
    png_size(tmp_path / "out" / "accuracy_vs_epsilon.png")
    assert not (tmp_path / "out" / "accuracy_vs_round.png").exists()  # only the --x asked for


def test_by_config_key_gives_one_row_per_group_not_per_seed(multirun, tmp_path):
    main([str(multirun), "--by", "topology.name", "--out", str(tmp_path / "out")])
    lines = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert [line.split(" | ")[:2] for line in lines[2:]] == [["| ring", "3"], ["| complete", "3"]]


def test_several_paths_join_groups_by_config(multirun, tmp_path):
    # A plain run (no overrides) of the ring configuration joins the sweep's ring group.
    plain = write_run(
        tmp_path / "outputs" / "run", config("ring", 7), records("ring", 0, private=False), []
    )
    assert default_by(load_runs([multirun, plain.parent])) == ["topology"]
    report([multirun, plain.parent], out=tmp_path / "out")
    lines = (tmp_path / "out" / "results.md").read_text().splitlines()
    # final (0.8, 0.95, 0.8, 0.8) → 0.8375 ± sqrt((3 · 0.0375² + 0.1125²) / 3) = 0.075
    assert lines[2].startswith("| ring | 4 | 4 | 0.8375 ± 0.0750 | ")
    assert len(lines) == 4


def test_config_keys_when_overrides_do_not_tell_runs_apart(multirun, tmp_path):
    # complete with n = 16 is no override of its own: the overrides would merge it with
    # the sweep's complete runs, so the varying config keys name the groups instead.
    other = config("complete", 0)
    other["topology"]["n"] = 16
    plain = write_run(tmp_path / "n16", other, records("complete", 0, private=False), None)
    runs = load_runs([multirun, plain])
    assert default_by(runs) == ["topology.n", "topology.name"]
    report([multirun, plain], out=tmp_path / "out")
    lines = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert [line.split(" | ")[:3] for line in lines[2:]] == [
        ["| 8", "ring", "3"],
        ["| 8", "complete", "3"],
        ["| 16", "complete", "1"],
    ]
    assert lines[4].split(" | ")[4] == "0.9600"  # one seed: no ± std


def test_runs_inside_runs_and_empty_runs_are_not_runs(multirun, tmp_path):
    # A deployment keeps each node's metrics.jsonl and config in nodes/node_<i>/.
    run = multirun / "0_seed=0,topology=ring"
    write_run(run / "nodes" / "node_0", config("ring", 0), records("ring", 1, private=False), None)
    failed = write_run(multirun / "6_seed=3,topology=ring", config("ring", 3), [], None)
    result = report([multirun], out=tmp_path / "out")
    assert result.warnings == [f"skipped {failed}: its metrics.jsonl is empty"]
    ring = (tmp_path / "out" / "results.md").read_text().splitlines()[2]
    assert ring.startswith("| ring | 3 | 4 | 0.8500 ± 0.0866 | ")


def test_group_that_mixes_configurations_warns(multirun, tmp_path):
    result = report([multirun], by=["topology.n"], out=tmp_path / "out")
    assert result.warnings == [
        "group 'topology.n=8' mixes runs that differ in topology.name; add them to --by",
        "group 'topology.n=8' has several runs with seed 0, 1, 2",
    ]


def test_default_output_is_a_report_folder_in_the_current_directory(
    multirun, tmp_path, monkeypatch
):
    before = sorted(p.relative_to(multirun) for p in multirun.rglob("*"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    main([str(multirun)])
    assert (cwd / "report" / "results.md").exists() and (cwd / "report" / "results.csv").exists()
    assert sorted(p.relative_to(multirun) for p in multirun.rglob("*")) == before


def test_python_m_dfl_report(multirun, tmp_path):
    """The README's command, as a subprocess from another directory."""
    env = {**os.environ, "PYTHONPATH": str(Path(dfl.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "dfl.report", str(multirun), "--x", "round"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "| ring | 3 | 4 | 0.8500 ± 0.0866 |" in done.stdout
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "accuracy_vs_round.png",
        "consensus_vs_round.png",
        "results.csv",
        "results.md",
    ]


def error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dfl: error: "), err
    return err


def test_unknown_by_key_names_the_keys_that_exist(multirun, tmp_path, capsys):
    err = error(capsys, str(multirun), "--by", "nosuch.key", "--out", str(tmp_path / "o"))
    assert (
        "--by 'nosuch.key': no run has this config or override key; keys that vary: topology;"
        in err
    )
    assert "keys that exist: hydra.sweep.dir, model.hidden, model.name, rounds, seed, " in err
    assert "topology.n, topology.name" in err
    assert not (tmp_path / "o").exists()


def test_unknown_x_names_the_axes(multirun, tmp_path, capsys):
    err = error(capsys, str(multirun), "--x", "foo", "--out", str(tmp_path / "o"))
    assert "--x 'foo': unknown x axis" in err
    assert "these runs record: round, bytes_sent_per_node, wall_time" in err
    assert not (tmp_path / "o").exists()


def test_epsilon_on_non_private_runs_is_an_error(multirun, tmp_path, capsys):
    err = error(capsys, str(multirun), "--x", "epsilon", "--out", str(tmp_path / "o"))
    assert "--x 'epsilon': no run records 'epsilon' (none of them is private)" in err
    assert "these runs record: round, bytes_sent_per_node, wall_time" in err


def test_path_without_runs_is_an_error(multirun, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = error(capsys, str(multirun), str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert f"path {str(tmp_path / 'empty')!r} holds no runs" in err
    err = error(capsys, str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert f"path {str(tmp_path / 'missing')!r} does not exist" in err


def test_refuses_to_write_into_a_run_or_the_runs_directory(multirun, capsys):
    run = multirun / "0_seed=0,topology=ring"
    for out in (run, run / "report"):
        err = error(capsys, str(multirun), "--out", str(out))
        assert f"--out {str(out)!r} is inside the run directory {str(run)!r}" in err
    err = error(capsys, str(multirun), "--out", str(multirun))
    assert f"--out {str(multirun)!r} is the runs directory" in err
    assert not list(multirun.rglob("results.md"))


# A network-model sweep (``network=drops``: records with sim_time, messages_missing,
# retransmissions, all cumulative) next to ideal runs (none of them), two seeds each.
SIM = {  # seed -> (test_accuracy_mean, sim_time, messages_missing, retransmissions), rounds 1..3
    0: ([0.5, 0.92, 0.95], [0.5, 1.25, 2.0], [1, 3, 4], [0, 2, 3]),  # 0.9 at round 2
    1: ([0.6, 0.8, 0.91], [0.75, 1.5, 2.5], [2, 2, 6], [1, 1, 5]),  # 0.9 at round 3
}
IDEAL = {0: [0.7, 0.95, 0.96], 1: [0.91, 0.93, 0.97]}  # 0.9 at rounds 2 and 1


def network_records(network: str, seed: int) -> list[dict]:
    out = []
    for i in range(3):
        r = i + 1
        record = {"round": r, "wall_time": 0.5 * r + 0.1 * seed, "bytes_sent_per_node": 1e6 * r}
        if network == "drops":
            acc, sim, missing, retx = SIM[seed]
            record |= {
                "test_accuracy_mean": acc[i],
                "sim_time": sim[i],
                "messages_missing": missing[i],
                "retransmissions": retx[i],
                "nodes_online": 8,
            }
        else:
            record["test_accuracy_mean"] = IDEAL[seed][i]
        out.append(record)
    return out


@pytest.fixture
def network_multirun(tmp_path: Path) -> Path:
    root = tmp_path / "network"
    for job, (network, seed) in enumerate((n, s) for n in ("drops", "ideal") for s in range(2)):
        cfg = {**config("ring", seed), "network": {"name": network}, "rounds": 3}
        write_run(
            root / f"{job}_network={network},seed={seed}",
            cfg,
            network_records(network, seed),
            [f"network={network}", f"seed={seed}"],
        )
    return root


def test_simulated_time_to_target_and_network_totals(network_multirun, tmp_path):
    result = report([network_multirun], out=tmp_path / "out")
    assert result.by == ["network"]
    lines = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert lines[0] == (
        "| network | seeds | rounds | final acc | best acc | rounds to 0.9 | MB/node to 0.9 "
        "| s to 0.9 | sim s to 0.9 | consensus | sim s | missing | retransmissions |"
    )
    # drops: final = best (0.95, 0.91) → 0.93 ± 0.04/√2 = 0.0283; rounds (2, 3) → 2.5 ± 0.707;
    # MB (2, 3); wall s (1.0, 1.6) → 1.3 ± 0.424; sim s at the target (1.25, 2.5) →
    # 1.875 ± 1.25/√2 = 0.8839; final sim s (2.0, 2.5) → 2.25 ± 0.3536;
    # missing (4, 6) → 5 ± 1.414; retransmissions (3, 5) → 4 ± 1.414.
    assert lines[2] == (
        "| drops | 2 | 3 | 0.9300 ± 0.0283 | 0.9300 ± 0.0283 | 2.5 ± 0.7 | 2.5 ± 0.707 "
        "| 1.3 ± 0.424 | 1.875 ± 0.8839 | - | 2.25 ± 0.3536 | 5 ± 1.414 | 4 ± 1.414 |"
    )
    # ideal: final = best (0.96, 0.97) → 0.965 ± 0.00707; rounds (2, 1); wall s (1.0, 0.6) →
    # 0.8 ± 0.4/√2 = 0.283; no network model, so no simulated seconds ("-", not "not reached").
    assert lines[3] == (
        "| ideal | 2 | 3 | 0.9650 ± 0.0071 | 0.9650 ± 0.0071 | 1.5 ± 0.7 | 1.5 ± 0.707 "
        "| 0.8 ± 0.283 | - | - | - | - | - |"
    )
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        drops, ideal = csv.DictReader(f)
    assert float(drops["sim_seconds_to_target_mean"]) == pytest.approx(1.875)
    assert float(drops["sim_seconds_to_target_std"]) == pytest.approx(1.25 / math.sqrt(2))
    assert float(drops["seconds_to_target_mean"]) == pytest.approx(1.3)
    assert float(drops["sim_time_mean"]) == pytest.approx(2.25)
    assert float(drops["messages_missing_mean"]) == 5.0
    assert float(drops["retransmissions_mean"]) == 4.0
    assert float(drops["retransmissions_std"]) == pytest.approx(math.sqrt(2))
    assert ideal["sim_seconds_to_target_mean"] == ideal["sim_time_mean"] == ""
    assert ideal["messages_missing_mean"] == ideal["retransmissions_mean"] == ""


def test_simulated_time_to_target_reached_by_some_seeds(network_multirun, tmp_path):
    report([network_multirun], target=0.93, out=tmp_path / "out")
    drops = (tmp_path / "out" / "results.md").read_text().splitlines()[2].split(" | ")
    # 0.93: seed 0 at round 3 (sim 2.0 s), seed 1 never (best 0.91)
    assert drops[5:9] == ["3.0 (1/2)", "3 (1/2)", "1.5 (1/2)", "2 (1/2)"]


def test_accuracy_vs_simulated_time_plot(network_multirun, tmp_path):
    result = report([network_multirun], out=tmp_path / "out")
    names = sorted(p.name for p in result.files if p.suffix == ".png")
    assert names == [
        "accuracy_vs_bytes.png",
        "accuracy_vs_round.png",
        "accuracy_vs_sim_time.png",
        "accuracy_vs_wall_time.png",
    ]
    width, height = png_size(tmp_path / "out" / "accuracy_vs_sim_time.png")
    assert width > 100 and height > 100
    # the drops curve: the seeds' mean sim_time and accuracy per round, ± their sample std
    curve = seed_curve(load_runs([network_multirun])[:2], "sim_time", "test_accuracy_mean")
    assert curve.x.tolist() == pytest.approx([0.625, 1.375, 2.25])
    assert curve.mean.tolist() == pytest.approx([0.55, 0.86, 0.93])
    assert curve.std is not None
    assert curve.std.tolist() == pytest.approx([0.1, 0.12, 0.04] / np.sqrt(2))


def test_x_sim_time_alone(network_multirun, tmp_path):
    main([str(network_multirun), "--x", "sim_time", "--out", str(tmp_path / "out")])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "accuracy_vs_sim_time.png",
        "results.csv",
        "results.md",
    ]


def test_sim_time_without_a_network_model_is_an_error(multirun, tmp_path, capsys):
    err = error(capsys, str(multirun), "--x", "sim_time", "--out", str(tmp_path / "o"))
    assert "--x 'sim_time': no run records 'sim_time'" in err
    assert "these runs record: round, bytes_sent_per_node, wall_time" in err
    assert not (tmp_path / "o").exists()
