"""The README's multi-host guide on loopback: daemons, `dfl.keys init`, `dfl.pilot network
create` against a registry by address, and one `python -m dfl.node` per node configured
with explicit paths (no cluster directory): the simulation's parameters."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dfl.node import build_program, load_params, params_path
from dfl.sim.runner import simulate
from tests.node.common import BASE, assert_close, compose_config, sim_params

py = sys.executable
root = Path(tempfile.mkdtemp(prefix="ph"))
try:
    # Each "host" runs its own daemon (here: three on loopback, one rendezvous).
    subprocess.run(
        [py, "-m", "dfl.pilot", "up", "--nodes", "3", "--dir", str(root / "c")], check=True
    )
    c = json.loads((root / "c" / "cluster.json").read_text())
    # The organiser: the run CA and bundles, and the run's network.
    subprocess.run(
        [
            py,
            "-m",
            "dfl.keys",
            "init",
            "--nodes",
            "3",
            "--out",
            str(root / "keys"),
            "--run-id",
            "guide",
        ],
        check=True,
    )
    env = dict(os.environ, DFL_PILOT_ADMIN_TOKEN=c["admin_token"])
    owner = str(c["daemons"][0]["node_id"])
    net = root / "run-network.json"
    subprocess.run(
        [py, "-m", "dfl.pilot", "network", "create", "--registry", c["registry"],
         "--owner", owner, "--run", "guide", "--out", str(net)],
        check=True, env=env,
    )  # fmt: skip
    overrides = [*BASE, "topology.n=3"]
    procs = []
    for i, d in enumerate(c["daemons"]):
        wd = root / f"node{i}"
        procs.append(subprocess.Popen([
            py, "-m", "dfl.node", *overrides, "transport=pilot", f"node.id={i}",
            "transport.run_id=guide", f"transport.registry={c['registry']}",
            f"transport.pilot_socket={d['socket']}",
            f"transport.pilot_inbox={d['home']}/.pilot/inbox",
            f"transport.network_file={net}", f"transport.keys_dir={root / 'keys'}",
            f"node.workdir={wd}", f"hydra.run.dir={wd}",
        ]))  # fmt: skip
    for p in procs:
        assert p.wait(timeout=600) == 0
    cfg, opt = compose_config("topology.n=3")
    sim = simulate(cfg, opt)
    program = build_program(sim.experiment)
    like = program.params(program.init(0))
    for i in range(3):
        got = load_params(params_path(root / f"node{i}", cfg.rounds), like)
        assert_close(got, sim_params(sim, i))
    subprocess.run([py, "-m", "dfl.pilot", "down", "--dir", str(root / "c")], check=True)
finally:
    shutil.rmtree(root, ignore_errors=True)
print("ok")
