"""The tcp transport: plain TCP sockets between node processes (threads, no asyncio).

Every node listens on its address. To send, a node opens one connection per
peer (lazily, retrying for ``connect_timeout_s`` while the peer starts), says
``HELLO`` (a header-only frame naming it and the run), answers the peer's
challenge when the run has a shared secret (:mod:`dfl.transport.auth`: without
the secret nobody can connect as a node), then writes frames: the
96-byte header is the length prefix of the chunk that follows. Sends are queued
to one thread per peer, so a slow or dead peer never blocks the node; payload
bytes go from the arrays to the socket with ``sendmsg`` (no copy). Each
accepted connection has a reader thread that validates the header, then reads
the chunk straight into the reassembly buffer (``recv_into``, no copy) and
verifies it (:class:`~dfl.transport.inbox.Inbox`). A frame whose header fails
its checksum closes the connection (its length cannot be trusted); the sender
reconnects with its next message.

This is the baseline that a later Pilot backend is benchmarked against
(``bench/transport.py``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from dfl.transport.auth import (
    HANDSHAKE_TIMEOUT_S,
    NONCE_NBYTES,
    PROOF_NBYTES,
    new_nonce,
    proof,
    verify,
)
from dfl.transport.base import FramedTransport
from dfl.transport.faults import FaultInjector, FrameParts
from dfl.transport.validate import hello_problem
from dfl.transport.wire import (
    CHECKSUM_MASK,
    DEFAULT_CHUNK_BYTES,
    FORMAT_VERSION,
    HEADER_NBYTES,
    Hasher,
    Header,
    Kind,
    WireError,
    parse_header,
)
from dfl.transport.wire import Frame as WireFrame

log = logging.getLogger("dfl.transport.tcp")

MAX_IOV = 512
RECV_PIECE = 16777216
"""Bytes received (and checksummed while in cache) per ``recv_into`` call."""
RECONNECT_TIMEOUT_S = 1.0
"""A peer that was reachable once gets one connection attempt this long; if it fails,
messages to it are dropped for as long again (a dead peer must not build a backlog)."""


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)``.

    Raises:
      ValueError: for a malformed address.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected a tcp address 'host:port', found {text!r}")
    return host.strip("[]"), int(port)


def addresses_from(
    num_nodes: int,
    *,
    addresses: Sequence[str] = (),
    host: str = "127.0.0.1",
    base_port: int = 29500,
) -> list[tuple[str, int]]:
    """Every node's listening address: ``addresses`` if given, else ``host:base_port+i``.

    Raises:
      ValueError: if ``addresses`` does not list exactly ``num_nodes`` nodes.
    """
    if addresses:
        if len(addresses) != num_nodes:
            raise ValueError(
                f"transport.addresses lists {len(addresses)} nodes, expected {num_nodes}"
            )
        return [parse_address(a) for a in addresses]
    if base_port <= 0:
        raise ValueError(f"transport.base_port must be > 0 here, found {base_port}")
    return [(host, base_port + i) for i in range(num_nodes)]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` ports that were free on ``host`` a moment ago (for tests and the launcher)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tune(sock: socket.socket) -> None:
    # Nagle off; buffer sizes stay with the kernel's autotuning (setting them caps it).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def send_all(sock: socket.socket, parts: Sequence[Any]) -> None:
    """Writes every buffer of ``parts`` with as few ``sendmsg`` calls as possible."""
    views = [memoryview(p).cast("B") for p in parts]
    views = [v for v in views if v.nbytes]
    while views:
        sent = sock.sendmsg(views[:MAX_IOV])
        while sent:
            if sent >= views[0].nbytes:
                sent -= views[0].nbytes
                views.pop(0)
            else:
                views[0] = views[0][sent:]
                sent = 0


def recv_into(sock: socket.socket, view: memoryview) -> None:
    """Fills ``view`` from ``sock``.

    Raises:
      ConnectionError: if the peer closes first.
    """
    while view.nbytes:
        n = sock.recv_into(view)
        if n == 0:
            raise ConnectionError("connection closed by the peer")
        view = view[n:]


def recv_checksum_into(
    sock: socket.socket, view: memoryview, algorithm: int, piece: int = RECV_PIECE
) -> int:
    """Fills ``view`` from ``sock``; returns its checksum, computed piece by piece as it lands.

    Raises:
      ConnectionError: if the peer closes first.
    """
    hasher = Hasher(algorithm)
    while view.nbytes:
        n = sock.recv_into(view[:piece])
        if n == 0:
            raise ConnectionError("connection closed by the peer")
        hasher.update(view[:n])
        view = view[n:]
    return hasher.digest()


class _Peer:
    """The outgoing connection to one peer and its sender thread."""

    def __init__(self, transport: TcpTransport, peer: int):
        self.t = transport
        self.peer = peer
        self.queue: queue.SimpleQueue[list[FrameParts] | None] = queue.SimpleQueue()
        self.sock: socket.socket | None = None
        self.connected_once = False
        self.down_until = 0.0
        self.thread = threading.Thread(
            target=self._loop, name=f"dfl-tcp-{transport.node_id}->{peer}", daemon=True
        )
        self.thread.start()

    def _connect(self) -> socket.socket | None:
        address = self.t.addresses[self.peer]
        if time.monotonic() < self.down_until:
            return None
        patience = 0.0 if self.connected_once else self.t.connect_timeout_s
        give_up = time.monotonic() + patience
        while not self.t.closing.is_set():
            try:
                sock = socket.create_connection(address, timeout=RECONNECT_TIMEOUT_S)
            except OSError as e:
                if time.monotonic() >= give_up:
                    self.down_until = time.monotonic() + RECONNECT_TIMEOUT_S
                    log.warning(
                        "node %d cannot reach node %d at %s: %s",
                        self.t.node_id,
                        self.peer,
                        address,
                        e,
                    )
                    self.t.inbox.peer_lost(self.peer, f"refused ({e})")
                    return None
                time.sleep(0.05)
                continue
            sock.settimeout(None)
            _tune(sock)
            hello = Header(
                FORMAT_VERSION,
                Kind.HELLO,
                0,
                self.t.node_id,
                self.peer,
                0,
                self.t.run,
                b"\0" * 16,
                0,
                0,
                1,
                0,
                0,
                0,
            )
            send_all(sock, [hello.pack()])
            if self.t.secret is not None and not self._answer(sock):
                sock.close()
                self.down_until = time.monotonic() + RECONNECT_TIMEOUT_S
                return None
            self.connected_once = True
            return sock
        return None

    def _answer(self, sock: socket.socket) -> bool:
        """Proves the shared secret to the peer (its nonce, then our HMAC)."""
        assert self.t.secret is not None
        nonce = bytearray(NONCE_NBYTES)
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            recv_into(sock, memoryview(nonce))
            sock.sendall(proof(self.t.secret, self.t.run, self.t.node_id, self.peer, bytes(nonce)))
            sock.settimeout(None)
        except OSError as e:
            log.warning(
                "node %d: node %d sent no authentication challenge (%s); does it have the "
                "run's transport secret?",
                self.t.node_id,
                self.peer,
                e,
            )
            return False
        return True

    def _loop(self) -> None:
        while True:
            frames = self.queue.get()
            if frames is None:
                break
            if self.sock is None:
                self.sock = self._connect()
                if self.sock is None:
                    self.t.undelivered += 1
                    continue
            try:
                for frame in frames:
                    self.t.prefetch(frame)
                    send_all(self.sock, frame)
            except OSError as e:
                log.warning("node %d lost a message to node %d: %s", self.t.node_id, self.peer, e)
                self.t.undelivered += 1
                self._drop()
        self._drop(graceful=True)

    def _drop(self, graceful: bool = False) -> None:
        if self.sock is None:
            return
        try:
            if graceful:
                self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.sock.close()
        self.sock = None


class TcpTransport(FramedTransport):
    """One node's tcp endpoint.

    Args:
      node_id: this node.
      addresses: every node's ``(host, port)``, indexed by node id.
      run_id: the run's id.
      connect_timeout_s: how long the first connection to a peer is retried.
      chunk_bytes: the run's chunk size; longer frames close the connection.
      max_rounds_ahead, max_message_bytes: inbox limits.
      faults: fault injector for sent messages (``None``: none).
      dropped_wait_s: see :class:`~dfl.transport.base.FramedTransport`.
      secret: the run's shared secret (:func:`dfl.transport.auth.load_secret`):
        every connection must prove it before its frames are read, and this
        node proves it to its peers; ``None``: connections are not authenticated.
    """

    def __init__(
        self,
        node_id: int,
        addresses: Sequence[tuple[str, int]],
        *,
        run_id: str,
        connect_timeout_s: float = 60.0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_rounds_ahead: int = 1024,
        max_message_bytes: int = 1 << 31,
        faults: FaultInjector | None = None,
        dropped_wait_s: float | None = None,
        secret: bytes | None = None,
    ):
        super().__init__(
            node_id,
            len(addresses),
            run_id=run_id,
            max_rounds_ahead=max_rounds_ahead,
            max_message_bytes=max_message_bytes,
            faults=faults,
            dropped_wait_s=dropped_wait_s,
        )
        self.addresses = [(str(host), int(port)) for host, port in addresses]
        self.connect_timeout_s = connect_timeout_s
        self.chunk_bytes = chunk_bytes
        self.secret = secret
        self.closing = threading.Event()
        self.undelivered = 0
        self._peers: dict[int, _Peer] = {}
        self._lock = threading.Lock()
        self._readers: list[tuple[threading.Thread, socket.socket]] = []
        # Checksums the next chunk of a message while the current one is sent.
        self._crc_pool = concurrent.futures.ThreadPoolExecutor(1, f"dfl-tcp-crc-{node_id}")
        self._listener = socket.create_server(
            self.addresses[node_id], reuse_port=False, backlog=max(16, len(addresses))
        )
        self._listener.settimeout(0.2)
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"dfl-tcp-accept-{node_id}", daemon=True
        )
        self._accepter.start()

    @property
    def port(self) -> int:
        """The port this node listens on."""
        return self._listener.getsockname()[1]

    def prefetch(self, frame: Any) -> None:
        """Starts checksumming the chunk after ``frame``'s in the background."""
        if isinstance(frame, WireFrame) and frame.k + 1 < len(frame.payload.chunks):
            with contextlib.suppress(RuntimeError):  # pool shut down at close
                self._crc_pool.submit(frame.payload.crc, frame.k + 1)

    def _transmit(self, peer: int, frames: Sequence[FrameParts]) -> None:
        with self._lock:
            if self.closing.is_set():
                return
            p = self._peers.get(peer)
            if p is None:
                p = self._peers[peer] = _Peer(self, peer)
        p.queue.put(list(frames))

    # -- receiving -----------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            _tune(conn)
            thread = threading.Thread(
                target=self._read_loop,
                args=(conn,),
                daemon=True,
                name=f"dfl-tcp-read-{self.node_id}",
            )
            with self._lock:
                self._readers = [(t, s) for t, s in self._readers if t.is_alive()]
                self._readers.append((thread, conn))
            thread.start()

    def _hello(self, conn: socket.socket) -> int | None:
        buf = bytearray(HEADER_NBYTES)
        recv_into(conn, memoryview(buf))
        try:
            h = parse_header(buf)
        except WireError as e:
            self.inbox.reject_frame(f"bad connection handshake: {e.reason}")
            return None
        problem = hello_problem(h, self.inbox.me)
        if problem is None and self.secret is not None:
            problem = self._challenge(conn, h.sender)
        if problem is not None:
            self.inbox.reject_frame(problem)
            return None
        return h.sender

    def _challenge(self, conn: socket.socket, sender: int) -> str | None:
        """Asks ``sender`` to prove the shared secret; the problem, or ``None``."""
        assert self.secret is not None
        nonce = new_nonce()
        answer = bytearray(PROOF_NBYTES)
        try:
            conn.settimeout(HANDSHAKE_TIMEOUT_S)
            conn.sendall(nonce)
            recv_into(conn, memoryview(answer))
            conn.settimeout(None)
        except OSError as e:
            return f"node {sender} did not answer the authentication challenge ({e})"
        if not verify(self.secret, self.run, sender, self.node_id, nonce, bytes(answer)):
            return f"node {sender} failed the authentication (wrong or no transport secret)"
        return None

    def _read_loop(self, conn: socket.socket) -> None:
        header = bytearray(HEADER_NBYTES)
        scratch = memoryview(bytearray(min(self.chunk_bytes, 1 << 20)))
        sender = None
        try:
            sender = self._hello(conn)
            if sender is None:
                return
            self.inbox.channel_opened(sender)
            while not self.closing.is_set():
                recv_into(conn, memoryview(header))
                slot = self.inbox.begin(header, sender=sender)
                if slot is None:
                    log.warning(
                        "node %d closes the connection of node %d after a bad header",
                        self.node_id,
                        sender,
                    )
                    return
                if slot.view is not None:
                    algorithm = slot.header.flags & CHECKSUM_MASK
                    self.inbox.end(slot, crc=recv_checksum_into(conn, slot.view, algorithm))
                    continue
                if slot.header.length > self.chunk_bytes:
                    log.warning(
                        "node %d closes the connection of node %d: frame of %d bytes "
                        "over transport.chunk_bytes",
                        self.node_id,
                        sender,
                        slot.header.length,
                    )
                    return
                left = slot.header.length
                while left:
                    take = min(left, scratch.nbytes)
                    recv_into(conn, scratch[:take])
                    left -= take
        except (ConnectionError, OSError) as e:
            if not self.closing.is_set():
                log.debug("node %d: connection from node %s ended: %s", self.node_id, sender, e)
        finally:
            conn.close()
            if sender is not None and not self.closing.is_set():
                self.inbox.channel_closed(sender)

    # -- lifecycle -----------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> None:
        """Waits until every queued message is written (or ``timeout``)."""
        with self._lock:
            peers = list(self._peers.values())
            self._peers = {}
        for p in peers:
            p.queue.put(None)
        end = time.monotonic() + timeout
        for p in peers:
            p.thread.join(max(0.0, end - time.monotonic()))

    def crash(self) -> None:
        """Stops abruptly, as a killed process would: queued sends are lost."""
        with self._delayer_lock:
            if self._delayer is not None:
                self._delayer.close(drain=False)
        self.closing.set()
        with self._lock:
            peers, self._peers = list(self._peers.values()), {}
        for p in peers:
            p.queue.put(None)
            if p.sock is not None:
                with contextlib.suppress(OSError):
                    p.sock.shutdown(socket.SHUT_RDWR)
        self.close()

    def close(self, *, drain: bool = True) -> None:
        """Flushes delayed and queued sends, then closes every socket and thread."""
        with self._delayer_lock:
            if self._delayer is not None:
                self._delayer.close(drain=drain and not self.closing.is_set())
        if not self.closing.is_set():
            self.flush()
        self.closing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            readers = list(self._readers)
        for _, conn in readers:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread, _ in readers:
            thread.join(timeout=2)
        self._accepter.join(timeout=2)
        self._crc_pool.shutdown(wait=False, cancel_futures=True)
        super().close(drain=False)
