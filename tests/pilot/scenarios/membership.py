"""Membership over real daemons, a ring of 4 (node 0's neighbours are 1 and 3):

* trust is asked of and granted to topology neighbours only;
* an outsider holding Pilot trust with node 0 (and the run's join token), with another
  run's key, or replaying member 1's captured binding, cannot get a frame accepted;
* member 1 forging member 3's sender id is rejected, and counted against 1, not 3;
* after ``revoke_after_rejected=2`` node 0 revokes 1: 1's next valid frame over the
  still-open tunnel is refused, and node 3's messages still arrive.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from dfl.keys import NodeIdentity, RunCA, init
from dfl.keys.ca import node_file
from dfl.pilot import cluster, network
from dfl.pilot.cluster import use_bundled_library
from dfl.transport import Kind, WireSpec, encode_payload, run_digest
from dfl.transport.pilot import BINDING_PREFIX, PilotTransport

use_bundled_library()
from pilotprotocol import Driver  # noqa: E402

RUN, N = "m", 4
root = Path(tempfile.mkdtemp(prefix="pm"))
tree = {"w": np.arange(3000, dtype=np.float32)}
spec = WireSpec.from_tree(tree)


def payload(scale: float):
    return encode_payload(spec, {"w": tree["w"] * scale}, chunk_bytes=4096)


def frame_bytes(sender: int, recipient: int, round_: int, scale: float) -> list[bytes]:
    p = payload(scale)
    frames = p.frames(
        run=run_digest(RUN), sender=sender, recipient=recipient, round=round_, kind=Kind.WIRE
    )
    return [b"".join(memoryview(x).cast("B") for x in f) for f in frames]


def wait(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


try:
    c = cluster.up(root / "c", N + 1)  # daemon 4: the outsider
    net = network.ensure(root / "c", RUN)
    init(N, root / "k", RUN)
    eps = [
        PilotTransport(
            i, N, run_id=RUN, socket_path=c.daemons[i].socket, inbox_dir=c.daemons[i].inbox,
            registry=c.registry, network=net, identity=NodeIdentity.load(node_file(root / "k", i)),
            neighbours=[(i - 1) % N, (i + 1) % N], chunk_bytes=4096,
            revoke_after_rejected=2 if i == 0 else 0, send_timeout_s=5,
        )
        for i in range(N)
    ]  # fmt: skip
    for e in eps:
        e.expect(Kind.WIRE, spec)
        assert e.wait_ready(20), (e.node_id, e.membership.bound())
    pilot = [d.node_id for d in c.daemons]
    # 1. Trust with neighbours only.
    d0 = Driver(c.daemons[0].socket)
    wait(
        lambda: (
            {pilot[1], pilot[3]} <= {p["node_id"] for p in d0.trusted_peers().get("trusted") or []}
        )
    )
    trusted0 = {p["node_id"] for p in d0.trusted_peers().get("trusted") or []}
    assert pilot[2] not in trusted0, trusted0
    assert eps[0].membership.bound() == {1: pilot[1], 3: pilot[3]}

    def exchange(round_, from_nodes=(1, 3), scale=1.0, deadline=10.0):
        for j in from_nodes:
            eps[j].send(0, round_, Kind.WIRE, payload(scale + j))
        return eps[0].receive(round_, [1, 3], time.monotonic() + deadline)

    got = exchange(0)
    assert got.missing == [] and got.rejections == [], got

    # 2. The outsider, with another CA's key for "node 1" of this run id and node 1's tag.
    out = Driver(c.daemons[4].socket)
    out.set_tags(["dfl-node-1"])
    other = RunCA.generate(RUN).issue(1)  # same run id and node id, but not this run's CA
    from dfl.pilot.membership import unb64_std

    fake = other.pilot_binding(pilot[4], unb64_std(out.info()["public_key"]))
    # 2a. Outside the run's network its request waits for node 0's answer: rejected.
    out.handshake(pilot[0], fake)
    wait(lambda: eps[0].membership.rejected_requests >= 1)
    assert pilot[4] not in {p["node_id"] for p in d0.trusted_peers().get("trusted") or []}
    # 2b. With the run's (leaked) join token, the daemons auto-approve its handshake (Pilot
    # 1.18.0 does so inside a shared network): it holds Pilot trust with node 0.
    out.network_join(net.network_id, net.token)
    out.handshake(pilot[0], fake)
    wait(lambda: pilot[4] in {p["node_id"] for p in d0.trusted_peers().get("trusted") or []})
    addr0 = c.daemons[0].address
    replay = eps[1].membership.binding  # captured from a justification
    refused0 = eps[0].refused
    forged = frame_bytes(1, 0, 1, 100.0)
    assert len(forged) == 3  # 12,000 payload bytes in chunks of 4096
    for data in (BINDING_PREFIX + fake.encode(), BINDING_PREFIX + replay.encode(), *forged):
        assert "ack" in out.send_message(addr0, data, "binary")
    got = exchange(1)
    assert got.missing == [] and got.rejected == {}, got
    np.testing.assert_array_equal(got.messages[1][0], tree["w"] * 2.0)  # the genuine one
    wait(lambda: eps[0].refused - refused0 == len(forged))
    reasons = [r.reason for r in got.rejections]
    assert sum("refused" in r for r in reasons) == 2, reasons
    assert any("presented by Pilot node" in r for r in reasons), reasons
    assert eps[0].membership.sender_of(pilot[4]) is None
    assert eps[0].rejected_by_peer == {}

    # 3. Member 1 forges member 3's sender id: rejected, counted against 1.
    d1 = Driver(c.daemons[1].socket)
    for data in frame_bytes(3, 0, 2, 1e30):
        assert "ack" in d1.send_message(addr0, data, "binary")
    got = exchange(2, from_nodes=(3,))
    wait(lambda: eps[0].rejected_by_peer.get(1, 0) >= 1)
    assert 3 not in eps[0].rejected_by_peer
    assert any("sender 3 on the connection of node 1" in r.reason for r in got.rejections), got
    np.testing.assert_array_equal(got.messages[3][0], tree["w"] * 4.0)

    # 4. A second forgery reaches K=2: node 0 revokes node 1 (Pilot trust and dfl's own check).
    for data in frame_bytes(3, 0, 3, 1e30):
        d1.send_message(addr0, data, "binary")
    wait(lambda: 1 in eps[0].membership.revoked)
    wait(lambda: pilot[1] not in {p["node_id"] for p in d0.trusted_peers().get("trusted") or []})
    assert 3 not in eps[0].membership.revoked
    # 1's valid frames over the still-open tunnel: delivered by Pilot, refused by dfl.
    before = eps[0].refused
    direct = frame_bytes(1, 0, 3, 2.0)
    acks = [d1.send_message(addr0, data, "binary") for data in direct]
    got = exchange(3, from_nodes=(1, 3), deadline=2.0)
    assert got.missing == [1], got
    assert any("frame from node 1, revoked by node 0" in r.reason for r in got.rejections), got
    np.testing.assert_array_equal(got.messages[3][0], tree["w"] * 4.0)
    wait(lambda: eps[0].refused - before >= 2 * len(direct))  # direct and transport frames
    print(
        json.dumps(
            {"acked_after_revocation": all("ack" in a for a in acks), "refused": eps[0].refused}
        )
    )
    for e in eps:
        e.close()
    cluster.down(root / "c")
finally:
    shutil.rmtree(root, ignore_errors=True)
print("ok")
