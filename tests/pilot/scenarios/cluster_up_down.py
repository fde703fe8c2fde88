"""`python -m dfl.pilot up/down` and `network create` as commands, checked from outside."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

d = Path(tempfile.mkdtemp(prefix="dp"))
py = [sys.executable, "-m", "dfl.pilot"]
out = subprocess.run([*py, "up", "--nodes", "3", "--dir", str(d)], check=True, capture_output=True)
summary = json.loads(out.stdout)
assert len(summary["daemons"]) == 3, summary
cluster = json.loads((d / "cluster.json").read_text())
assert (d / "cluster.json").stat().st_mode & 0o777 == 0o600
ids = [x["node_id"] for x in cluster["daemons"]]
assert len(set(ids)) == 3 and all(i > 0 for i in ids), ids


def alive(pid):
    """Running, not a zombie (this namespace's PID 1 does not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


pids = [x["pid"] for x in cluster["daemons"]] + [cluster["rendezvous_pid"]]
assert all(alive(p) for p in pids)
for x in cluster["daemons"]:
    assert Path(x["socket"]).exists()
    log = Path(x["home"], "daemon.log").read_text()
    assert "34.71.57.205" not in log, "a daemon used the public registry"
    assert "127.0.0.1" in log
# Twice: the second call reads the saved network back.
a = subprocess.run(
    [*py, "network", "create", "--dir", str(d), "--run", "r1"], check=True, capture_output=True
)
b = subprocess.run(
    [*py, "network", "create", "--dir", str(d), "--run", "r1"], check=True, capture_output=True
)
assert json.loads(a.stdout) == json.loads(b.stdout)
assert json.loads(a.stdout)["network_id"] >= 1
# A second `up` into the same directory refuses.
again = subprocess.run([*py, "up", "--nodes", "1", "--dir", str(d)], capture_output=True, text=True)
assert again.returncode == 1 and "exists" in again.stderr, again.stderr
subprocess.run([*py, "down", "--dir", str(d)], check=True)
assert not any(alive(p) for p in pids), "down left processes"
assert not (d / "cluster.json").exists()
# Traffic stayed on lo (the only interface).
print(Path("/proc/net/dev").read_text())
shutil.rmtree(d)
# A temporary cluster (what `dfl.launch transport=pilot` runs without a cluster_dir).
from dfl.pilot import cluster  # noqa: E402

with cluster.temporary(2) as t:
    tpids = [x.pid for x in cluster.Cluster.load(t).daemons]
    assert all(alive(p) for p in tpids)
assert not t.exists() and not any(alive(p) for p in tpids)
print("ok")
