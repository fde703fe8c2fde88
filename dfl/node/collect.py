"""Combine per-node records and parameters into the simulation's metrics records.

At every evaluation round the launcher stacks the nodes' evaluated parameters
and scores them exactly as the simulation does (:func:`dfl.evaluate.make_evaluate`):
per-node accuracy (mean/min/max), the node-averaged model's accuracy and the
consensus distance. Counters are combined over nodes: ``bytes_sent_per_node``
is the mean (as in the simulation), the message counts are sums.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.evaluate import make_evaluate, make_local_evaluate
from dfl.experiment import Experiment
from dfl.metrics import metrics_record, privacy_record, read_jsonl, run_metadata
from dfl.node.runner import load_params, params_path
from dfl.sim.byzantine import FLAG_KEYS, honest_accuracy
from dfl.transport.factory import security
from dfl.transport.wire import framed_nbytes

SUMMED = (
    "messages_sent",
    "messages_received",
    "messages_missing",
    "messages_rejected",
    "messages_late",
    "bytes_rejected",
    "rounds_skipped",
)
"""Node counters that the combined record sums over nodes."""


def node_dir(workdir: str | Path, node: int) -> Path:
    """Where node ``node`` of a launched run writes (``<run>/nodes/node_<id>``)."""
    return Path(workdir) / "nodes" / f"node_{node}"


def make_scorer(exp: Experiment):
    """``score(stacked_params, nodes) -> dict`` of the simulation's evaluation metrics.

    ``stacked_params`` holds the parameters of ``nodes`` (in that order). The
    metrics are the simulation's (:mod:`dfl.evaluate`, jitted): test accuracy
    mean/min/max, the averaged model's accuracy, the consensus distance and, with
    ``data.local_test_fraction > 0``, each node's accuracy on its own held-out
    rows (``local_test_accuracy_*``).
    """
    identity = dataclasses.replace(exp.algorithm, params=lambda p: p)
    evaluate = jax.jit(make_evaluate(identity, exp.model))
    fed = exp.federated
    local_test = fed.local_test
    evaluate_local = jax.jit(make_local_evaluate(identity, exp.model))

    def score(stacked: Any, nodes: Sequence[int]) -> dict[str, float]:
        out = evaluate(stacked, fed.test_x, fed.test_y)
        metrics = {k: float(v) for k, v in out.items() if k != "accuracy"}
        if exp.byzantine is not None:
            byz = exp.byzantine.byzantine[np.asarray(nodes)]
            honest = honest_accuracy(out["accuracy"], byz)
            metrics.update({k: float(v) for k, v in honest.items()})
        if local_test is not None:
            rows = jax.tree.map(lambda a: a[np.asarray(nodes)], local_test)
            metrics.update({k: float(v) for k, v in evaluate_local(stacked, rows).items()})
        return metrics

    return score


def combine_round(
    score, round_: int, records: Sequence[Mapping[str, Any]], params: Sequence[Any]
) -> dict[str, Any]:
    """One combined record from the nodes' records and parameters of ``round_``.

    Args:
      score: :func:`make_scorer`'s function.
      round_: the evaluation round.
      records: the records of the nodes that reported it (any order).
      params: their evaluated parameters, in the order of ``records``.

    Returns:
      :func:`dfl.metrics.metrics_record` over the reporting nodes: the simulation's
      keys (their times the slowest node's, their counters the mean over nodes),
      the spread of bytes sent and loss, ``bytes_received_per_node``,
      ``nodes_reporting``, the :data:`SUMMED` counters and, when every node
      accounted DP-SGD, the privacy keys.
    """
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params)
    sent = np.asarray([r["bytes_sent_per_node"] for r in records], dtype=np.float64)
    received = [float(r.get("bytes_received_per_node", 0.0)) for r in records]
    loss = np.asarray([r["train_loss"] for r in records], dtype=np.float64)
    privacy = {}
    if all("epsilon" in r for r in records):
        by_node = sorted(records, key=lambda r: r["node"])
        dropped = sum(r.get("dp_dropped_examples", 0) for r in records)
        privacy = privacy_record([r["epsilon"] for r in by_node], records[0]["delta"], dropped)
    return metrics_record(
        round_,
        wall_time=max(r["wall_time"] for r in records),
        compile_time=max(r.get("compile_time", 0.0) for r in records),
        train_loss=loss.mean(),
        evaluation=score(stacked, [int(r["node"]) for r in records]),
        bytes_sent_per_node=sent.mean(),
        bytes_sent_per_node_min=float(sent.min()),
        bytes_sent_per_node_max=float(sent.max()),
        bytes_received_per_node=float(np.mean(received)),
        train_loss_min=float(loss.min()),
        train_loss_max=float(loss.max()),
        nodes_reporting=len(records),
        **{key: int(sum(r.get(key, 0) for r in records)) for key in SUMMED},
        **{k: int(sum(r.get(k, 0) for r in records)) for k in FLAG_KEYS if k in records[0]},
        **privacy,
        **network_fields(records),
    )


def network_fields(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A network model's ``sim_time`` (the slowest node's clock), ``retransmissions``
    (summed) and ``nodes_online`` (the schedule's, alike at every node); ``{}``
    without a network model."""
    if not all("sim_time" in r for r in records):
        return {}
    return {
        "sim_time": max(float(r["sim_time"]) for r in records),
        "retransmissions": sum(int(r["retransmissions"]) for r in records),
        "nodes_online": max(int(r["nodes_online"]) for r in records),
    }


def latest_by_round(records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Round → the last record written for it (a resumed node may repeat rounds)."""
    return {int(r["round"]): dict(r) for r in records}


def combine_files(exp: Experiment, workdir: str | Path, like_params: Any) -> list[dict]:
    """The combined records of a launched run from its nodes' files.

    Args:
      exp: the run's experiment.
      workdir: the launcher's run directory (nodes under ``nodes/node_<id>``).
      like_params: one node's parameters (the structure of the ``.npz`` files).

    Returns:
      One record per evaluation round some node reported, over the nodes that
      reported it (``nodes_reporting``).
    """
    per_node: list[dict[int, dict]] = []
    for i in range(exp.n):
        path = node_dir(workdir, i) / "metrics.jsonl"
        per_node.append(latest_by_round(read_jsonl(path)) if path.exists() else {})
    rounds = sorted({r for recs in per_node for r in recs})
    score = make_scorer(exp)
    out = []
    for r in rounds:
        records, params = [], []
        for i, recs in enumerate(per_node):
            p = params_path(node_dir(workdir, i), r)
            if r in recs and p.exists():
                records.append(recs[r])
                params.append(load_params(p, like_params))
        if records:
            out.append(combine_round(score, r, records, params))
    return out


def write_metadata(workdir: str | Path, exp: Experiment, spec: Any, run_id: str) -> None:
    """Writes ``metadata.json`` (as the simulation does) with the deployment's facts."""
    cfg = exp.config
    meta = run_metadata(
        cfg.seed,
        nodes=exp.n,
        mixing=exp.schedule.rule_name,
        message_bytes=framed_nbytes(spec.nbytes, cfg.transport.chunk_bytes),
        payload_bytes=spec.nbytes,
        node_sample_counts=np.asarray(exp.federated.train.counts).tolist(),
        transport=cfg.transport.name,
        transport_security=security(cfg.transport),
        run_id=run_id,
        **(exp.byzantine.metadata() if exp.byzantine is not None else {}),
    )
    Path(workdir, "metadata.json").write_text(json.dumps(meta, indent=2))


def write_summary(workdir: str | Path, summary: Mapping[str, Any]) -> None:
    """Writes ``deployment.json`` (counters and fault statistics) into the run directory."""
    Path(workdir, "deployment.json").write_text(json.dumps(summary, indent=2, default=str))
