"""A ring of 4 over Pilot; node 2's daemon is SIGKILLed mid-run and restarted with its
identity: the others go on at their deadlines, and node 2 rejoins (its neighbours hear it
again, nothing is rejected, every node finishes every round)."""

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from dfl.experiment import build_experiment
from dfl.node import build_program, run_in_process
from dfl.pilot import cluster
from tests.node.common import compose_config, replace

root = Path(tempfile.mkdtemp(prefix="pk"))
try:
    c = cluster.up(root / "c", 4)
    cfg, opt = compose_config("rounds=40", "eval_every=10", "node.deadline_s=1.0")
    cfg = replace(
        cfg,
        **{
            "transport.name": "pilot",
            "transport.cluster_dir": str(root / "c"),
            "transport.run_id": "kill",
            "transport.send_timeout_s": 1.0,
        },
    )
    program = build_program(build_experiment(cfg, opt))
    events: dict[str, float] = {}

    def kill_and_restart() -> None:
        cluster.kill_daemon(c, 2)
        events["killed"] = time.monotonic()
        time.sleep(1.5)
        cluster.start_daemon(c, c.daemons[2])
        events["restarted"] = time.monotonic()

    def on_progress(done: list[int]) -> None:
        if "killed" not in events and min(done) >= 12:
            events["killed"] = 0.0
            threading.Thread(target=kill_and_restart, daemon=True).start()

    t = time.monotonic()
    res = run_in_process(cfg, program=program, workdir=root / "w", on_progress=on_progress)
    wall = time.monotonic() - t
    assert events.get("restarted"), events
    rounds = [r["round"] for r in res.records]
    assert rounds[-1] == cfg.rounds, rounds
    # Cumulative counts at rounds 10, 20, 30, 40: messages went missing while the daemon
    # was down (from round 12 on), none after node 2 rejoined, none rejected.
    missing = [r["messages_missing"] for r in res.records]
    print(json.dumps({"wall_s": round(wall, 1), "missing": missing}))
    assert missing[0] == 0 and missing[1] > 0 and missing[-1] == missing[1], missing
    assert res.records[-1]["messages_rejected"] == 0, res.records[-1]
    cluster.down(root / "c")
finally:
    shutil.rmtree(root, ignore_errors=True)
print("ok")
