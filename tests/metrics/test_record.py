"""The metrics record builder, the evaluation-round rule and the message size."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from dfl.metrics import (
    EVALUATION_KEYS,
    REQUIRED_KEYS,
    is_eval_round,
    metrics_record,
    privacy_record,
)
from dfl.node.collect import combine_round
from dfl.transport.wire import HEADER_NBYTES, framed_nbytes


def test_eval_rounds_are_every_k_and_the_last():
    assert [r for r in range(1, 11) if is_eval_round(r, 10, 3)] == [3, 6, 9, 10]
    assert [r for r in range(1, 5) if is_eval_round(r, 4, 1)] == [1, 2, 3, 4]
    assert [r for r in range(1, 6) if is_eval_round(r, 5, 100)] == [5]
    with pytest.raises(ValueError, match="eval_every"):
        is_eval_round(1, 10, 0)


def test_record_has_the_common_keys_in_order_and_nulls_what_was_not_computed():
    record = metrics_record(
        3,
        wall_time=1.5,
        compile_time=jnp.float32(0.25),
        train_loss=jnp.asarray(0.5),
        evaluation={"test_accuracy": jnp.asarray(0.75), "local_test_accuracy_mean": 0.5},
        bytes_sent_per_node=10,
        node=2,
    )
    assert list(record) == [
        "round",
        "wall_time",
        "compile_time",
        "train_loss",
        *EVALUATION_KEYS,
        "test_accuracy",
        "local_test_accuracy_mean",
        "bytes_sent_per_node",
        "node",
    ]
    assert set(REQUIRED_KEYS) <= set(record)
    assert all(record[k] is None for k in EVALUATION_KEYS)
    assert record["test_accuracy"] == 0.75 and type(record["test_accuracy"]) is float
    assert (record["round"], record["compile_time"], record["train_loss"]) == (3, 0.25, 0.5)
    assert record["bytes_sent_per_node"] == 10.0 and record["node"] == 2


def test_privacy_record_is_the_worst_node_and_every_node():
    got = privacy_record([1.5, 3.0, 2.0], 1e-5, np.int32(7))
    assert got == {
        "epsilon": 3.0,
        "epsilon_per_node": [1.5, 3.0, 2.0],
        "delta": 1e-5,
        "dp_dropped_examples": 7,
    }
    with pytest.raises(ValueError, match="epsilon"):
        privacy_record([], 1e-5, 0)


def node_record(node: int, **kw):
    base = {
        "round": 4,
        "wall_time": 1.0 + node,
        "compile_time": 0.5 * node,
        "train_loss": 1.0 + node,
        "bytes_sent_per_node": 100.0 * (node + 1),
        "bytes_received_per_node": 90.0 * (node + 1),
        "node": node,
        "messages_sent": 2,
        "messages_missing": node,
    }
    return {**base, **kw}


def test_combined_record_aggregates_the_nodes_by_hand():
    seen = {}

    def score(stacked, nodes):
        seen["stacked"], seen["nodes"] = stacked, nodes
        return {"test_accuracy_mean": 0.5, "consensus_distance": 0.25}

    dp = [{"epsilon": e, "delta": 1e-5, "dp_dropped_examples": d} for e, d in [(2.0, 3), (1.0, 4)]]
    records = [node_record(1, **dp[0]), node_record(0, **dp[1])]
    params = [{"w": np.full(2, 1.0)}, {"w": np.full(2, 0.0)}]
    got = combine_round(score, 4, records, params)
    np.testing.assert_array_equal(seen["stacked"]["w"], [[1.0, 1.0], [0.0, 0.0]])
    assert seen["nodes"] == [1, 0]
    assert got["round"] == 4 and got["nodes_reporting"] == 2
    assert (got["wall_time"], got["compile_time"]) == (2.0, 0.5)  # the slowest node
    assert (got["train_loss"], got["train_loss_min"], got["train_loss_max"]) == (1.5, 1.0, 2.0)
    assert got["bytes_sent_per_node"] == 150.0
    assert (got["bytes_sent_per_node_min"], got["bytes_sent_per_node_max"]) == (100.0, 200.0)
    assert got["bytes_received_per_node"] == 135.0
    assert got["messages_sent"] == 4 and got["messages_missing"] == 1
    assert got["test_accuracy_mean"] == 0.5 and got["test_accuracy_min"] is None
    assert got["epsilon_per_node"] == [1.0, 2.0] and got["epsilon"] == 2.0  # node order
    assert got["dp_dropped_examples"] == 7 and got["delta"] == 1e-5
    plain = combine_round(score, 4, [node_record(0), node_record(1)], params)
    assert "epsilon" not in plain and "dp_dropped_examples" not in plain


def test_framed_bytes_add_one_header_per_chunk():
    assert framed_nbytes(0, 10) == HEADER_NBYTES  # an empty message is one frame
    assert framed_nbytes(25, 10) == 25 + 3 * HEADER_NBYTES
    assert framed_nbytes(30, 10) == 30 + 3 * HEADER_NBYTES
