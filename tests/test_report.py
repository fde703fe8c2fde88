"""``dfl.report``: results table and plot from run directories."""

from __future__ import annotations

import json

import pytest

from dfl.report import main, report


def fake_run(root, name, topology, accs, mb):
    run = root / name
    run.mkdir(parents=True)
    run.joinpath("config_resolved.yaml").write_text(
        f"seed: 0\nrounds: {len(accs)}\ntopology:\n  name: {topology}\n  n: 4\nhydra_unused: 1\n"
    )
    lines = [
        {
            "round": i + 1,
            "test_accuracy_mean": a,
            "test_accuracy_min": a - 0.1,
            "test_accuracy_avg_model": a,
            "consensus_distance": 0.5,
            "bytes_sent_per_node": mb * 1e6 * (i + 1),
        }
        for i, a in enumerate(accs)
    ]
    run.joinpath("metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_table_has_one_row_per_run_with_final_values(tmp_path):
    fake_run(tmp_path, "0", "ring", [0.5, 0.75], 1.0)
    fake_run(tmp_path, "1", "complete", [0.6, 0.875], 3.0)
    table, figure = report(tmp_path, x="bytes_sent_per_node")
    rows = table.read_text().splitlines()
    assert rows[0].startswith("| topology.name | rounds | acc mean")
    assert rows[2] == "| ring | 2 | 0.7500 | 0.6500 | 0.7500 | 0.5 | 2.00 | - |"
    assert rows[3] == "| complete | 2 | 0.8750 | 0.7750 | 0.8750 | 0.5 | 6.00 | - |"
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_empty_directory_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path)])
    assert exc.value.code == 2
    assert "no runs" in capsys.readouterr().err
