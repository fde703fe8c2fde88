"""The network study: time-to-accuracy in simulated seconds under four networks.

D-SGD, gradient tracking and CHOCO(top_k) on a ring and an exponential graph of 32
nodes (logistic regression on digits, Dirichlet(0.5) non-IID), under

* ``ideal``: every node 0.05 s per local step, links 10 ms + 10 MB/s;
* ``slow_uplink``: the same, node 0's out-links 10× latency and 0.1× bandwidth;
* ``drops``: the same, 10% of the messages lost (per edge and round);
* ``churn``: the same, Markov churn with mean up 8 / down 2 rounds (20% offline).

The deadline is 0.5 s from a node's own send (``node.deadline_s``). Writes
``records.json`` (every run's records) here; ``analyze.py`` makes the table and plots.

Usage (from the repository root): ``PYTHONPATH=. python experiments/network/run.py``
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from dfl.cli import instantiate_optimizer, to_config
from dfl.config.store import conf_dir, register
from dfl.sim.runner import simulate

HERE = Path(__file__).resolve().parent
KEEP = (
    "round",
    "sim_time",
    "test_accuracy_mean",
    "consensus_distance",
    "bytes_sent_per_node",
    "messages_missing",
    "retransmissions",
    "nodes_online",
)
"""The record keys kept in ``records.json``."""

BASE = (
    "model=logreg",
    "data=digits",
    "data.partition=dirichlet",
    "data.alpha=0.5",
    "topology.n=32",
    "optimizer=sgd",
    "optimizer.learning_rate=0.1",
    "rounds=200",
    "eval_every=5",
    "sim.progress=false",
    "node.deadline_s=0.5",
    "network=lossy",
    "network.compute.step_s=0.05",
    "network.links.latency_s=0.01",
    "network.links.bandwidth_bps=1e7",
)
"""Every run's config (the ``ideal`` network included: it has the same compute and links)."""

ALGORITHMS = {
    "dsgd": ("algorithm=dsgd",),
    "gradient_tracking": ("algorithm=gradient_tracking",),
    "choco_top_k": ("algorithm=choco", "compression=top_k", "compression.fraction=0.1"),
}
TOPOLOGIES = {"ring": ("topology=ring",), "exponential": ("topology=exponential",)}
NETWORKS = {
    "ideal": (),
    "slow_uplink": (
        "network.links.slow_nodes=[0]",
        "network.links.slow_latency_factor=10",
        "network.links.slow_bandwidth_factor=0.1",
    ),
    "drops": ("network.drop=0.1",),
    "churn": ("network.churn.kind=markov", "network.churn.mean_up=8", "network.churn.mean_down=2"),
}


def main() -> None:
    register()
    out = []
    for topology, t_over in TOPOLOGIES.items():
        for algorithm, a_over in ALGORITHMS.items():
            for network, n_over in NETWORKS.items():
                overrides = [*BASE, *t_over, *a_over, *n_over]
                with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
                    cfg = compose("config", overrides=overrides)
                start = time.perf_counter()
                result = simulate(to_config(cfg), instantiate_optimizer(cfg))
                print(
                    f"{topology:12} {algorithm:18} {network:12} "
                    f"acc {result.records[-1]['test_accuracy_mean']:.3f} "
                    f"sim_time {result.records[-1]['sim_time']:.1f}s "
                    f"({time.perf_counter() - start:.0f}s)",
                    flush=True,
                )
                out.append(
                    {
                        "topology": topology,
                        "algorithm": algorithm,
                        "network": network,
                        "overrides": overrides,
                        "records": [{k: x[k] for k in KEEP} for x in result.records],
                    }
                )
    (HERE / "records.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
