"""The Pilot Protocol transport: dfl frames over each node's own Pilot daemon.

Each node process talks to its daemon through the SDK ``Driver`` (IPC socket),
finds and authenticates its neighbours with :class:`dfl.pilot.membership.Membership`
(run network, tags, CA-signed bindings, trust handshakes), and moves the same
frames as tcp (headers, chunking, validation, counters: :class:`FramedTransport`).

Data path, chosen by measurement on 1.18.0 daemons (loopback, README "Pilot"):
stream connections (``dial``/``listen``) broke the Driver's IPC connection after
~3 MiB on one stream, whatever the write size, while port-1001 messages
(``send_message``) carried 8 MiB frames acked in 0.26–0.36 s. So every frame is
one port-1001 message (frames are at most ``chunk_bytes``, default 8 MiB, below
the daemon's 64 MiB message cap), sent by one thread per peer, acknowledged by
the receiving daemon or retried with exponential backoff until
``send_timeout_s``; a broken Driver connection is replaced and the send retried.
The daemon saves received messages into its inbox directory (base64 JSON, one
file each, capped at 256 MiB / 10,000 files); a reader thread drains it as they
come, so large models pass chunk by chunk.

The tunnel names the peer: the daemon records which Pilot node delivered each
message, and a frame is accepted only if that Pilot node is bound by a verified
binding to a neighbour and the header's sender is that neighbour. After
``revoke_after_rejected`` rejected frames from one bound peer, this node revokes
its trust and refuses its frames from then on (Pilot keeps open tunnels alive
after a revocation, so dfl enforces it itself).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from dfl.keys.ca import NodeIdentity
from dfl.keys.compact import unb64
from dfl.pilot.membership import IDLE_POLL_S, POLL_S, Membership, node_of_address
from dfl.pilot.network import RunNetwork
from dfl.transport.base import FramedTransport
from dfl.transport.faults import FaultInjector, FrameParts
from dfl.transport.sender import PeerSender, SenderPool
from dfl.transport.wire import DEFAULT_CHUNK_BYTES, HEADER_NBYTES, WireError, parse_header

log = logging.getLogger("dfl.transport.pilot")

MAX_FRAME_BYTES = 48 << 20
"""Largest frame sent as one message (the daemon refuses messages over 64 MiB)."""
INBOX_POLL_S = 0.003
PARTIAL_FILE_GRACE_S = 5.0
"""A message file that does not parse yet may still be being written; after this, it is junk."""
BINDING_PREFIX = b"DFLBIND:"
"""A message carrying the sender's Pilot binding (then ``?``: please answer with yours)."""
HELLO = b"hello"
REPLY = b"reply"
"""Queue markers: send this node's binding asking for the peer's / answering a request."""


DATAEXCHANGE_PORT = 1001
TYPE_BINARY = 2
MIN_ATTEMPT_S = 0.5
MAX_ATTEMPT_S = 10.0
"""One attempt (dial, write, ack) gives up after this, then the message is retried: a
stalled tunnel (the daemon drops packets when its queue is full) must not hold it longer."""


def send_message(driver: Any, address: str, data: bytes, timeout: float) -> bool:
    """One port-1001 binary message, like ``Driver.send_message`` but bounded in time:
    the dial and the wait for the receiving daemon's ack each give up after ``timeout``.

    Returns:
      Whether the receiving daemon acknowledged the message.
    """
    with driver.dial(f"{address}:{DATAEXCHANGE_PORT}", timeout=timeout) as conn:
        conn.write(struct.pack(">II", TYPE_BINARY, len(data)) + data)
        conn.set_read_deadline(time.time() + timeout)
        head = conn.read_full(8)
        if len(head) != 8:
            return False
        _, n = struct.unpack(">II", head)
        return n <= 1024 and conn.read_full(n).startswith(b"ACK")


def _connect(socket_path: str) -> Any:
    from dfl.pilot.cluster import use_bundled_library

    use_bundled_library()
    from pilotprotocol import Driver

    return Driver(socket_path)


class _Sender(PeerSender[tuple[float, bytes]]):
    """Delivers one peer's messages (``(queued at, data)``), each acked or retried."""

    def __init__(self, t: PilotTransport, peer: int):
        super().__init__(peer, f"dfl-pilot-{t.node_id}->{peer}")
        self.t = t
        self.driver: Any = None
        self.binding_sent = False

    def deliver(self, item: tuple[float, bytes]) -> None:
        """Delivers one message (this node's binding first, before any frame)."""
        queued, data = item
        if not self.binding_sent:
            # The peer learns who this Pilot node is before any frame of it.
            self.binding_sent = self._deliver(queued, self.t.binding_message(hello=True))
            if data is HELLO or data is REPLY:
                return
        if data is HELLO:
            return
        if data is REPLY:
            data = self.t.binding_message(hello=False)
        if not self._deliver(queued, data):
            self.t.undelivered += 1

    def finish(self) -> None:
        """Closes this sender's Driver connection."""
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.close()

    def _deliver(self, queued: float, data: bytes) -> bool:
        from pilotprotocol import PilotError

        give_up = queued + self.t.send_timeout_s
        backoff = 0.02
        attempt = 0
        while not self.t.closing.is_set():
            left = give_up - time.monotonic()
            address = self.t.membership.address_of(self.peer, max(0.0, left))
            if address is None:
                log.warning(
                    "node %d: node %d not found in the run's network within %.1f s; message lost",
                    self.t.node_id,
                    self.peer,
                    self.t.send_timeout_s,
                )
                return False
            attempt += 1
            problem = ""
            try:
                if self.driver is None:
                    self.driver = _connect(self.t.socket_path)
                timeout = max(MIN_ATTEMPT_S, min(MAX_ATTEMPT_S, give_up - time.monotonic()))
                if send_message(self.driver, address, data, timeout):
                    self.t.retries += attempt - 1
                    return True
                problem = "no ack"
            except PilotError as e:
                problem = str(e)
                if self.driver is not None:
                    with contextlib.suppress(Exception):
                        self.driver.close()
                self.driver = None  # reconnect: the IPC connection may be broken
            if time.monotonic() + backoff > give_up:
                log.warning(
                    "node %d lost a message to node %d after %d attempts: %s",
                    self.t.node_id,
                    self.peer,
                    attempt,
                    problem,
                )
                return False
            log.debug("node %d -> %d attempt %d: %s", self.t.node_id, self.peer, attempt, problem)
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
        return False


class PilotTransport(FramedTransport):
    """One node's endpoint over its Pilot daemon.

    Args:
      node_id: this node.
      num_nodes: nodes of the run.
      run_id: the run's id (bindings and frames must name it).
      socket_path: the daemon's IPC socket.
      inbox_dir: where the daemon saves received messages (``$HOME/.pilot/inbox``
        of the daemon's user); drained by this transport.
      registry: the registry's ``host:port`` (member tags and public keys).
      network: the run's private network.
      identity: this node's key bundle (:func:`dfl.keys.init`).
      neighbours: the nodes this node exchanges with (in- and out-neighbours over
        the whole schedule): only these are asked for trust and heard.
      chunk_bytes: the run's chunk size (frames over :data:`MAX_FRAME_BYTES` refused).
      revoke_after_rejected: revoke a bound peer after this many rejected frames
        (0: never).
      send_timeout_s: how long one message is retried before it is lost.
      max_rounds_ahead, max_message_bytes: inbox limits.
      faults: fault injector for sent messages (``None``: none).
    """

    def __init__(
        self,
        node_id: int,
        num_nodes: int,
        *,
        run_id: str,
        socket_path: str,
        inbox_dir: str | Path,
        registry: str,
        network: RunNetwork,
        identity: NodeIdentity,
        neighbours: Collection[int] | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        revoke_after_rejected: int = 0,
        send_timeout_s: float = 30.0,
        max_rounds_ahead: int = 1024,
        max_message_bytes: int = 1 << 31,
        faults: FaultInjector | None = None,
    ):
        super().__init__(
            node_id,
            num_nodes,
            run_id=run_id,
            max_rounds_ahead=max_rounds_ahead,
            max_message_bytes=max_message_bytes,
            faults=faults,
        )
        if chunk_bytes + HEADER_NBYTES > MAX_FRAME_BYTES:
            raise ValueError(
                f"transport.chunk_bytes={chunk_bytes} is over the Pilot message limit "
                f"({MAX_FRAME_BYTES - HEADER_NBYTES})"
            )
        if revoke_after_rejected < 0:
            raise ValueError(
                f"transport.revoke_after_rejected must be >= 0, found {revoke_after_rejected}"
            )
        self.socket_path = socket_path
        self.inbox_dir = Path(inbox_dir)
        self.chunk_bytes = chunk_bytes
        self.revoke_after_rejected = revoke_after_rejected
        self.send_timeout_s = send_timeout_s
        self.closing = threading.Event()
        self.undelivered = 0
        self.retries = 0
        self.refused = 0
        self.rejected_by_peer: dict[int, int] = {}
        peers = range(num_nodes) if neighbours is None else neighbours
        self._purge_inbox()
        self.membership = Membership(
            node_id,
            run_id=run_id,
            identity=identity,
            network=network,
            registry_address=registry,
            driver=_connect(socket_path),
            neighbours=[p for p in peers if p != node_id],
            reconnect=lambda: _connect(socket_path),
        )
        self._senders = SenderPool(lambda peer: _Sender(self, peer), self.closing)
        self._threads = [
            threading.Thread(
                target=self._control_loop, name=f"dfl-pilot-ctl-{node_id}", daemon=True
            ),
            threading.Thread(target=self._inbox_loop, name=f"dfl-pilot-in-{node_id}", daemon=True),
        ]
        for th in self._threads:
            th.start()

    # -- sending ---------------------------------------------------------------------

    def _transmit(self, peer: int, frames: Sequence[FrameParts]) -> None:
        s = self._senders.get(peer)
        if s is None:
            return
        now = time.monotonic()
        for frame in frames:
            s.put((now, b"".join(memoryview(p).cast("B") for p in frame)))

    def binding_message(self, *, hello: bool) -> bytes:
        """This node's binding as a message; ``hello`` asks the peer for its own."""
        return BINDING_PREFIX + (b"?" if hello else b"") + self.membership.binding.encode()

    def _send_binding(self, peer: int, marker: bytes = HELLO) -> None:
        s = self._senders.get(peer)
        if s is not None:
            s.put((time.monotonic(), marker))

    # -- control -----------------------------------------------------------------------

    def _control_loop(self) -> None:
        while not self.closing.is_set():
            self.membership.step(self._send_binding)
            self.closing.wait(IDLE_POLL_S if self.membership.complete() else POLL_S)

    # -- receiving ---------------------------------------------------------------------

    def _purge_inbox(self) -> None:
        """Drops messages left from before this transport started (other runs, old rounds)."""
        if self.inbox_dir.is_dir():
            for entry in os.scandir(self.inbox_dir):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _inbox_loop(self) -> None:
        first_seen: dict[str, float] = {}
        while not self.closing.is_set():
            try:
                # Complete messages only: the daemon writes a partial file, then renames it.
                names = sorted(
                    n for n in os.listdir(self.inbox_dir) if n.endswith(".json") and n[0] != "."
                )
            except FileNotFoundError:
                names = []
            done_any = False
            for name in names:
                if self.closing.is_set():
                    return
                path = self.inbox_dir / name
                try:
                    message = json.loads(path.read_bytes())
                except FileNotFoundError:
                    continue
                except ValueError:
                    # Possibly still being written: retry until the grace period is over.
                    seen = first_seen.setdefault(name, time.monotonic())
                    if time.monotonic() - seen < PARTIAL_FILE_GRACE_S:
                        continue
                    message = None
                first_seen.pop(name, None)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                done_any = True
                self._handle(name, message)
            if not done_any:
                self.closing.wait(INBOX_POLL_S)

    def _handle(self, name: str, message: Any) -> None:
        try:
            data = unb64(str(message["data_b64"])) if "data_b64" in message else None
            if data is None:
                data = str(message["data"]).encode()
            pilot = node_of_address(str(message["from"]))
        except (KeyError, TypeError, ValueError) as e:
            self.inbox.reject_frame(f"unreadable Pilot message {name}: {e}")
            return
        if data.startswith(BINDING_PREFIX):
            self._binding_message(data[len(BINDING_PREFIX) :], pilot)
            return
        sender = self.membership.sender_of(pilot)
        if sender is None:
            self.refused += 1
            revoked = self.membership.revoked_pilots.get(pilot)
            if revoked is not None:
                self.inbox.reject_frame(
                    f"frame from node {revoked}, revoked by node {self.node_id}"
                )
                return
            self.inbox.reject_frame(
                f"frame from Pilot node {pilot}, which holds no verified binding to a "
                f"neighbour of node {self.node_id}"
            )
            return
        self._feed(data, sender)

    def _binding_message(self, text: bytes, pilot: int) -> None:
        from dfl.keys.compact import BindingError

        hello = text.startswith(b"?")
        try:
            b = self.membership.verify(text[hello:].decode("ascii", "replace"), pilot)
        except BindingError as e:
            self.inbox.reject_frame(f"binding from Pilot node {pilot} refused: {e}")
            return
        log.info("node %d: node %d speaks as Pilot node %d", self.node_id, b.node_id, pilot)
        if hello:
            self._send_binding(b.node_id, REPLY)

    def _feed(self, data: bytes, sender: int) -> None:
        """Validates one frame delivered by ``sender``'s Pilot node (bound sender checked)."""
        view = memoryview(data)
        before = self.inbox.stats.rejected
        try:
            header = parse_header(view[:HEADER_NBYTES])
        except WireError as e:
            self.inbox.reject_frame(f"from node {sender}: {e.reason}")
            self._count_rejected(sender, 1)
            return
        body = view[HEADER_NBYTES:]
        if body.nbytes != header.length:
            self.inbox.reject_frame(
                f"from node {sender}: truncated frame of {body.nbytes} payload bytes, "
                f"header says {header.length}"
            )
        else:
            slot = self.inbox.begin(view[:HEADER_NBYTES], sender=sender)
            if slot is not None and slot.view is not None:
                slot.view[:] = body
                self.inbox.end(slot)
        rejected = self.inbox.stats.rejected - before
        if rejected and header.round >= self._current_round:  # a straggler's late frame is fine
            self._count_rejected(sender, rejected)

    def _count_rejected(self, sender: int, n: int) -> None:
        count = self.rejected_by_peer[sender] = self.rejected_by_peer.get(sender, 0) + n
        k = self.revoke_after_rejected
        if k and count >= k and sender not in self.membership.revoked:
            log.warning(
                "node %d: %d rejected frames from node %d (transport.revoke_after_rejected=%d)",
                self.node_id,
                count,
                sender,
                k,
            )
            self.membership.revoke(sender)

    def block(self, peer: int, *, revoke: bool = False) -> None:
        """Refuses ``peer``'s frames; ``revoke`` (``byzantine.revoke_flagged``) also
        revokes its Pilot trust (:meth:`dfl.pilot.membership.Membership.revoke`)."""
        super().block(peer)
        if revoke and peer not in self.membership.revoked:
            self.membership.revoke(peer)

    def receive(self, round: int, expected_peers: Collection[int], deadline: float, **kw: Any):
        """See :meth:`FramedTransport.receive` (also notes the current round, so that
        frames for rounds already closed do not count towards a revocation)."""
        self._current_round = max(self._current_round, round)
        return super().receive(round, expected_peers, deadline, **kw)

    _current_round = 0

    # -- lifecycle ---------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> bool:
        """Waits until every neighbour is bound (tests, benchmarks); the run needs no wait."""
        return self.membership.wait_bound(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Waits until every queued message is delivered or given up (or ``timeout``)."""
        self._senders.flush(timeout)

    def crash(self) -> None:
        """Stops abruptly, as a killed process would: queued sends are lost."""
        self._stop_delayer(drain=False)
        self.closing.set()
        self.close()

    def close(self, *, drain: bool = True) -> None:
        """Delivers delayed and queued sends, then stops every thread."""
        self._stop_delayer(drain=drain and not self.closing.is_set())
        if not self.closing.is_set():
            self.flush()
        self.closing.set()
        self._senders.stop_all()
        for th in self._threads:
            th.join(timeout=2)
        super().close(drain=False)
