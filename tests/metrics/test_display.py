"""The summary table is printed whole off a terminal (files, pipes, SLURM logs)."""

from __future__ import annotations

import io

from dfl.metrics.display import SUMMARY_COLUMNS, print_table, summary_table

RECORD = {
    "round": 200,
    "wall_time": 1234.5678,
    "train_loss": 0.123456,
    "test_accuracy_mean": 0.987654,
    "test_accuracy_min": 0.876543,
    "test_accuracy_max": 0.999999,
    "test_accuracy_avg_model": 0.954321,
    "consensus_distance": 4.6912345e-05,
    "bytes_sent_per_node": 123456789.0,
    "epsilon": 12.3456,
}
CELLS = ["200", "1234.6", "0.1235", "0.9877", "0.8765", "1.0000", "0.9543", "4.69e-05", "123.46"]


def rendered(records) -> str:
    out = io.StringIO()  # not a terminal: rich would assume 80 columns
    print_table(summary_table(records, title="dfl: dsgd"), file=out)
    return out.getvalue()


def test_every_header_and_number_appears_whole_off_a_terminal():
    text = rendered([RECORD])
    assert "…" not in text
    for _, header, _ in SUMMARY_COLUMNS:
        assert header in text
    for cell in [*CELLS, "ε", "12.35"]:
        assert cell in text, cell
    assert max(len(line) for line in text.splitlines()) > 80  # wider than rich's default


def test_a_narrow_table_keeps_the_default_width():
    text = rendered([])
    assert "consensus" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_deployment_progress_fields_are_means_over_reporting_nodes():
    from dfl.metrics.display import node_fields

    assert node_fields([{"loss": 1.0, "acc": 0.5}, {"loss": 2.0}, {}]) == ("1.5000", "0.5000")
    assert node_fields([{}, {"loss": None}]) == ("-", "-")
