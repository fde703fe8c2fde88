"""A node's own record holds only what it computed; the launcher's record aggregates them."""

from __future__ import annotations

import numpy as np
import pytest

from dfl.metrics import EVALUATION_KEYS, REQUIRED_KEYS


def test_node_records_null_the_aggregates_and_the_combined_record_computes_them(tiny):
    cfg, program, result = tiny
    last = cfg.rounds
    own = [result.nodes[i].records[-1] for i in range(program.exp.n)]
    for i, record in enumerate(own):
        assert record["round"] == last and record["node"] == i
        assert set(REQUIRED_KEYS) <= set(record)
        assert all(record[k] is None for k in EVALUATION_KEYS), record
        assert 0 < record["test_accuracy"] <= 1
    accuracies = np.asarray([r["test_accuracy"] for r in own])
    combined = result.records[-1]
    assert combined["round"] == last and combined["nodes_reporting"] == program.exp.n
    assert combined["test_accuracy_mean"] == pytest.approx(accuracies.mean(), abs=1e-6)
    assert combined["test_accuracy_min"] == pytest.approx(accuracies.min(), abs=1e-6)
    assert combined["test_accuracy_max"] == pytest.approx(accuracies.max(), abs=1e-6)
    assert combined["consensus_distance"] > 0
    assert "test_accuracy" not in combined
    sent = np.asarray([r["bytes_sent_per_node"] for r in own])
    assert combined["bytes_sent_per_node"] == pytest.approx(sent.mean(), rel=1e-12)
