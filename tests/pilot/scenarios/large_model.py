"""A 100 MB model crosses between two Pilot nodes intact, in 8 MiB chunks, with the
right counters (argument: megabytes, default 100)."""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dfl.keys import NodeIdentity, init
from dfl.keys.ca import node_file
from dfl.pilot import cluster, network
from dfl.transport import Kind, WireSpec, encode_payload, message_nbytes
from dfl.transport.pilot import PilotTransport

mb = int(sys.argv[1]) if len(sys.argv) > 1 else 100
root = Path(tempfile.mkdtemp(prefix="pb"))
try:
    c = cluster.up(root / "c", 2)
    net = network.ensure(root / "c", "big")
    init(2, root / "k", "big")
    eps = [
        PilotTransport(
            i, 2, run_id="big", socket_path=c.daemons[i].socket, inbox_dir=c.daemons[i].inbox,
            registry=c.registry, network=net, identity=NodeIdentity.load(node_file(root / "k", i)),
        )
        for i in range(2)
    ]  # fmt: skip
    for e in eps:
        assert e.wait_ready(20)
    rng = np.random.default_rng(0)
    tree = {"w": rng.standard_normal(mb * 250_000, dtype=np.float32), "b": np.arange(7.0)}
    spec = WireSpec.from_tree(tree)
    eps[1].expect(Kind.WIRE, spec)
    payload = encode_payload(spec, tree, chunk_bytes=eps[0].chunk_bytes)
    assert len(payload.chunks) == -(-spec.nbytes // (8 << 20)), len(payload.chunks)
    t = time.monotonic()
    sent = eps[0].send(1, 0, Kind.WIRE, payload)
    got = eps[1].receive(0, [0], time.monotonic() + 120)
    wall = time.monotonic() - t
    assert got.missing == [] and got.rejections == [], got
    leaves = spec.unflatten(got.messages[0])
    np.testing.assert_array_equal(leaves["w"], tree["w"])
    np.testing.assert_array_equal(leaves["b"], tree["b"])
    assert sent == message_nbytes(tree, eps[0].chunk_bytes)
    assert eps[1].received_bytes(Kind.WIRE) == sent
    assert eps[0].sent.frames == len(payload.chunks) and eps[0].undelivered == 0
    print(
        json.dumps(
            {
                "mb": mb,
                "frames": len(payload.chunks),
                "wall_s": round(wall, 2),
                "mib_per_s": round(spec.nbytes / wall / 2**20, 1),
                "retries": eps[0].retries,
            }
        )
    )
    for e in eps:
        e.close()
    cluster.down(root / "c")
finally:
    shutil.rmtree(root, ignore_errors=True)
print("ok")
