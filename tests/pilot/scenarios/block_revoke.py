"""``FramedTransport.block(peer, revoke=)`` on real daemons, 4 nodes on a complete graph
(node 0 hears 1, 2 and 3):

* ``block(1, revoke=True)``: node 0's daemon no longer trusts node 1, node 1 is revoked in
  node 0's membership, and 1's next frames never reach node 0's combine (whatever Pilot
  does with them) while node 3's still arrive;
* ``block(2, revoke=False)``: 2's frames are refused by dfl (the inbox's sender check),
  but node 0 still trusts node 2 at Pilot and its membership keeps it bound.

Prints one JSON line with what the Pilot side gave after the revocation. Measured with
1.18.0: node 1's daemon no longer lists node 0 as trusted, and node 1's next frame is
either still delivered (acked) over the open tunnel and refused by dfl, or lost to a
dial timeout at node 1 (gotcha 7 of ../shared/pilot/NOTES.md); runs saw both.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from dfl.keys import NodeIdentity, init
from dfl.keys.ca import node_file
from dfl.pilot import cluster, network
from dfl.pilot.cluster import use_bundled_library
from dfl.transport import Kind, WireSpec, encode_payload
from dfl.transport.pilot import PilotTransport

use_bundled_library()
from pilotprotocol import Driver  # noqa: E402

RUN, N = "b", 4
root = Path(tempfile.mkdtemp(prefix="pb"))
tree = {"w": np.arange(300, dtype=np.float32)}
spec = WireSpec.from_tree(tree)


def payload(scale: float):
    return encode_payload(spec, {"w": tree["w"] * scale}, chunk_bytes=4096)


def wait(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def trusted(driver) -> set[int]:
    return {p["node_id"] for p in driver.trusted_peers().get("trusted") or []}


try:
    c = cluster.up(root / "c", N)
    net = network.ensure(root / "c", RUN)
    init(N, root / "k", RUN)
    eps = [
        PilotTransport(
            i, N, run_id=RUN, socket_path=c.daemons[i].socket, inbox_dir=c.daemons[i].inbox,
            registry=c.registry, network=net, identity=NodeIdentity.load(node_file(root / "k", i)),
            chunk_bytes=4096, send_timeout_s=3,
        )
        for i in range(N)
    ]  # fmt: skip
    for e in eps:
        e.expect(Kind.WIRE, spec)
        assert e.wait_ready(20), (e.node_id, e.membership.bound())
    pilot = [d.node_id for d in c.daemons]
    d0 = Driver(c.daemons[0].socket)
    wait(lambda: {pilot[1], pilot[2], pilot[3]} <= trusted(d0))

    def exchange(round_, deadline=10.0):
        for j in (1, 2, 3):
            eps[j].send(0, round_, Kind.WIRE, payload(j))
        return eps[0].receive(round_, [1, 2, 3], time.monotonic() + deadline)

    got = exchange(0)
    assert got.missing == [] and got.rejections == [], got

    eps[0].block(1, revoke=True)
    eps[0].block(2, revoke=False)
    assert eps[0].blocked == {1, 2}
    # revoke=True: Pilot trust withdrawn and node 1 revoked in dfl's membership.
    wait(lambda: pilot[1] not in trusted(d0))
    assert eps[0].membership.revoked == {1}
    assert eps[0].membership.sender_of(pilot[1]) is None
    # revoke=False: trust and binding stay.
    assert {pilot[2], pilot[3]} <= trusted(d0)
    assert eps[0].membership.sender_of(pilot[2]) == 2

    refused_before = eps[0].refused
    got = exchange(1, deadline=4.0)
    assert sorted(got.missing) == [1, 2], got
    assert sorted(got.messages) == [3], got
    np.testing.assert_array_equal(got.messages[3][0], tree["w"] * 3.0)
    reasons = {r.sender: r.reason for r in got.rejections}
    # Node 2's frame reached dfl (its Pilot node is still bound) and failed the sender check.
    assert "not an in-neighbour of node 0" in reasons[2], got.rejections
    eps[1].flush(5)
    revoked_reasons = [r.reason for r in got.rejections if "revoked by node 0" in r.reason]
    print(
        json.dumps(
            {
                "node1_frames_refused_by_dfl": eps[0].refused - refused_before,
                "revoked_reasons": revoked_reasons,
                "node1_undelivered": eps[1].undelivered,
                "node2_reason": reasons[2],
                "node1_trusts_0": pilot[0] in trusted(Driver(c.daemons[1].socket)),
            }
        )
    )
    # Node 1's one frame of round 1 is stopped exactly once: either Pilot still delivers it
    # over the open tunnel and dfl refuses it as a revoked peer's, or node 1's dial to the
    # revoked node 0 times out (both seen with 1.18.0, depending on the tunnel's state).
    refused = eps[0].refused - refused_before
    assert refused + eps[1].undelivered == 1, (refused, eps[1].undelivered)
    assert revoked_reasons == ["frame from node 1, revoked by node 0"] * refused, got.rejections
    for e in eps:
        e.close()
    cluster.down(root / "c")
finally:
    shutil.rmtree(root, ignore_errors=True)
print("ok")
