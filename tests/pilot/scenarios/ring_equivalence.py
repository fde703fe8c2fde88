"""D-SGD (and dsgd_ef with top_k) on a ring of 4 over real Pilot daemons: the loopback
deployment's parameters bit for bit, the same records, and the simulation's bytes.

Arguments: one override string per case (e.g. "algorithm=dsgd_ef compression=top_k"),
all run on one cluster (each case is its own run, with its own network and keys).
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from dfl.experiment import build_experiment
from dfl.node import build_program, run_in_process, run_loopback
from dfl.pilot import cluster
from dfl.sim.runner import simulate
from tests.node.common import compose_config, node_params, replace

root = Path(tempfile.mkdtemp(prefix="pr"))


def case(index: int, overrides: list[str]) -> None:
    cfg, opt = compose_config(*overrides)
    assert cfg.topology.name == "ring" and cfg.topology.n == 4
    exp = build_experiment(cfg, opt)
    program = build_program(exp)
    loop = run_loopback(cfg, program=program)
    pcfg = replace(
        cfg,
        **{
            "transport.name": "pilot",
            "transport.cluster_dir": str(root / "c"),
            "transport.run_id": f"ring4-{index}",
        },
    )
    t = time.monotonic()
    pil = run_in_process(pcfg, program=program, workdir=root / f"w{index}")
    wall = time.monotonic() - t
    for i in range(exp.n):
        for a, b in zip(
            jax.tree.leaves(node_params(pil, i)), jax.tree.leaves(node_params(loop, i)), strict=True
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    timing = ("wall_time", "compile_time")
    strip = lambda rs: [{k: v for k, v in r.items() if k not in timing} for r in rs]  # noqa: E731
    assert strip(pil.records) == strip(loop.records), (pil.records[-1], loop.records[-1])
    last = pil.records[-1]
    assert last["messages_missing"] == 0 and last["messages_rejected"] == 0, last
    sim = simulate(cfg, opt)
    assert last["bytes_received_per_node"] == sim.records[-1]["bytes_sent_per_node"], (
        last["bytes_received_per_node"],
        sim.records[-1]["bytes_sent_per_node"],
    )
    # Keys were made for the run in the work directory, private.
    assert (root / f"w{index}" / "keys" / "node-0.json").stat().st_mode & 0o777 == 0o600
    # Each node heard (and trusted) its two ring neighbours only.
    print(
        json.dumps(
            {
                "case": overrides,
                "rounds": cfg.rounds,
                "wall_s": round(wall, 2),
                "bytes": last["bytes_received_per_node"],
            }
        )
    )


try:
    cluster.up(root / "c", 4)
    for i, text in enumerate(sys.argv[1:] or [""]):
        case(i, text.split())
    cluster.down(root / "c")
finally:
    shutil.rmtree(root, ignore_errors=True)
print("ok")
