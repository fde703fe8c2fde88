"""One exchange round over the Pilot backend, against ``pilotctl send-file`` and tcp.

In its own loopback-only network namespace (it re-executes itself under
``unshare --net --pid --fork --kill-child``; root), with a fresh rendezvous and
one daemon per node (``python -m dfl.pilot up``). For 2 and 3 nodes and models
of S = 1, 10, 100 MB, every node sends its model (one float32 array) to every
other node and a round ends when every node holds every message:

* ``pilot``: :class:`~dfl.transport.pilot.PilotTransport` (one per node, threads of
  this process; acked port-1001 messages of 8 MiB frames, full validation);
* ``send-file``: the same transfers as ``pilotctl send-file`` of an S-byte file
  between the same daemons, all started at once (chunked, sha256-checked);
* ``tcp``: :class:`~dfl.transport.tcp.TcpTransport` on 127.0.0.1 in its default
  mode, mutual TLS 1.3 with the run's node certificates;
* ``insecure``: the same over plain TCP (``transport.insecure=true``), for comparison.

Printed per row: seconds (best of ``--repeats``, after an untimed warm-up round),
``send-file s / pilot s`` (target ≥ 0.8), ``tcp s / pilot s`` and
``insecure s / pilot s``, and the wire bytes of one message dense and with
``top_k`` (1%, values + indices).

    python -m bench.pilot [--sizes-mb 1 10 100] [--nodes 2 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CHUNK = 8 * 1024 * 1024


def _inside(argv: list[str]) -> None:
    """Re-executes this module in a fresh loopback-only namespace, unless already in one."""
    from dfl.pilot.netns import interfaces

    if interfaces() == ["lo"]:
        return
    cmd = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    code = subprocess.call([*cmd, sys.executable, "-m", "bench.pilot", *argv])
    sys.exit(code)


def _round(eps, trees, spec, kind) -> float:
    """One all-to-all round over ``eps``; seconds until every node holds every message."""
    from dfl.transport import encode_payload

    payloads = [encode_payload(spec, t, chunk_bytes=CHUNK) for t in trees]
    n = len(eps)
    r = _round.counter = getattr(_round, "counter", 0) + 1
    done = [0.0] * n

    def node(i: int) -> None:
        others = [j for j in range(n) if j != i]
        got = eps[i].receive(r, others, time.monotonic() + 300)
        assert got.missing == [], (i, got.missing, got.rejections)
        done[i] = time.monotonic()

    threads = [threading.Thread(target=node, args=(i,)) for i in range(n)]
    start = time.monotonic()
    for th in threads:
        th.start()
    for i, e in enumerate(eps):
        for j in range(n):
            if j != i:
                e.send(j, r, kind, payloads[i])
    for th in threads:
        th.join()
    return max(done) - start


def _send_files(c, n: int, path: Path) -> float:
    """Every daemon sends ``path`` to every other with ``pilotctl send-file``, all at once."""
    from dfl.pilot.cluster import daemon_env, pilot_bin

    procs = []
    start = time.monotonic()
    for i in range(n):
        env = daemon_env(c.daemons[i].home, c.registry, c.beacon)
        env["PILOT_SOCKET"] = c.daemons[i].socket
        for j in range(n):
            if j != i:
                cmd = [
                    pilot_bin("pilotctl"),
                    "--json",
                    "send-file",
                    c.daemons[j].address,
                    str(path),
                ]
                procs.append(
                    subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                )
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"pilotctl send-file failed: {out.decode()[-400:]}")
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.pilot")
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--nodes", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    _inside(argv)
    from dfl.pilot.netns import bring_up_loopback, exit_on_termination

    exit_on_termination()
    bring_up_loopback()
    import jax.numpy as jnp

    from dfl.compression.top_k import top_k
    from dfl.keys import NodeIdentity, init
    from dfl.keys.ca import node_file
    from dfl.pilot import cluster, network
    from dfl.transport import Kind, WireSpec, message_nbytes
    from dfl.transport.pilot import PilotTransport
    from dfl.transport.tcp import TcpTransport, free_ports
    from dfl.transport.tls import TlsCredentials

    root = Path(tempfile.mkdtemp(prefix="bp"))
    columns = ("nodes", "MB", "pilot s", "send-file s", "tcp s", "insecure s")
    columns += ("sf/pilot", "tcp/pilot", "insec/pilot")
    print(" ".join(f"{c:>11}" for c in (*columns, "wire MB", "top_k MB")))
    try:
        c = cluster.up(root / "c", max(args.nodes))
        for n in args.nodes:
            for mb in args.sizes_mb:
                run = f"bench-{n}-{mb}"
                net = network.ensure(root / "c", run)
                init(n, root / run, run)
                trees = [
                    {"w": np.random.default_rng(i).standard_normal(mb * 250_000, dtype=np.float32)}
                    for i in range(n)
                ]
                spec = WireSpec.from_tree(trees[0])
                pil = [
                    PilotTransport(
                        i, n, run_id=run, socket_path=c.daemons[i].socket,
                        inbox_dir=c.daemons[i].inbox, registry=c.registry, network=net,
                        identity=NodeIdentity.load(node_file(root / run, i)),
                        chunk_bytes=CHUNK, send_timeout_s=300,
                    )
                    for i in range(n)
                ]  # fmt: skip
                ids = [NodeIdentity.load(node_file(root / run, i)) for i in range(n)]
                tcps = {}
                for mode, keys in (("tcp", ids), ("insecure", [None] * n)):
                    ports = free_ports(n)
                    tcps[mode] = [
                        TcpTransport(
                            i, [("127.0.0.1", p) for p in ports], run_id=run, chunk_bytes=CHUNK,
                            tls=None if k is None else TlsCredentials.from_identity(k),
                        )
                        for i, k in enumerate(keys)
                    ]  # fmt: skip
                tcp, plain = tcps["tcp"], tcps["insecure"]
                for e in [*pil, *tcp, *plain]:
                    e.expect(Kind.WIRE, spec)
                for e in pil:
                    assert e.wait_ready(30)
                path = root / "model.bin"
                trees[0]["w"].tofile(path)
                times = {"pilot": [], "sf": [], "tcp": [], "insecure": []}
                for rep in range(args.repeats + 1):
                    took = {
                        "pilot": _round(pil, trees, spec, Kind.WIRE),
                        "tcp": _round(tcp, trees, spec, Kind.WIRE),
                        "insecure": _round(plain, trees, spec, Kind.WIRE),
                        "sf": _send_files(c, n, path),
                    }
                    if rep:  # the first round is the warm-up
                        for k, v in took.items():
                            times[k].append(v)
                for d in c.daemons:  # send-file's received copies
                    shutil.rmtree(Path(d.home) / ".pilot" / "received", ignore_errors=True)
                for e in [*pil, *tcp, *plain]:
                    e.close()
                encoded, _ = top_k(fraction=0.01).compress({"w": jnp.asarray(trees[0]["w"])}, ())
                p, f, t = min(times["pilot"]), min(times["sf"]), min(times["tcp"])
                u = min(times["insecure"])
                dense = message_nbytes(trees[0], CHUNK) / 1e6
                sparse = message_nbytes(encoded, CHUNK) / 1e6
                row = (n, mb, f"{p:.3f}", f"{f:.3f}", f"{t:.3f}", f"{u:.3f}")
                row += (f"{f / p:.2f}", f"{t / p:.3f}", f"{u / p:.3f}")
                row += (f"{dense:.2f}", f"{sparse:.3f}")
                print(" ".join(f"{x:>11}" for x in row), flush=True)
        cluster.down(root / "c")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    main()
