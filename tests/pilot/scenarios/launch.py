"""`python -m dfl.pilot up`, then `python -m dfl.launch ... transport=pilot
transport.cluster_dir=D`: four node processes over real daemons end with the
simulation's parameters (the commands of the README's Pilot section)."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dfl.metrics import read_jsonl
from dfl.node import build_program, load_params, node_dir, params_path
from dfl.sim.runner import simulate
from tests.node.common import BASE, assert_close, compose_config, sim_params

root = Path(tempfile.mkdtemp(prefix="pl"))
try:
    subprocess.run(
        [sys.executable, "-m", "dfl.pilot", "up", "--nodes", "4", "--dir", str(root / "c")],
        check=True,
    )
    run = root / "run"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dfl.launch",
            *BASE,
            "transport=pilot",
            f"transport.cluster_dir={root / 'c'}",
            f"hydra.run.dir={run}",
        ],
        check=True,
        timeout=600,
    )
    cfg, opt = compose_config()
    sim = simulate(cfg, opt)
    program = build_program(sim.experiment)
    like = program.params(program.init(0))
    for i in range(4):
        assert_close(
            load_params(params_path(node_dir(run, i), cfg.rounds), like), sim_params(sim, i)
        )
    records = read_jsonl(run / "metrics.jsonl")
    last = records[-1]
    assert last["messages_missing"] == 0 and last["messages_rejected"] == 0, last
    assert last["bytes_received_per_node"] == sim.records[-1]["bytes_sent_per_node"]
    assert (run / "keys" / "node-3.json").stat().st_mode & 0o777 == 0o600
    print(json.dumps({"bytes": last["bytes_received_per_node"]}))
    subprocess.run(
        [sys.executable, "-m", "dfl.pilot", "down", "--dir", str(root / "c")], check=True
    )
finally:
    shutil.rmtree(root, ignore_errors=True)
print("ok")
