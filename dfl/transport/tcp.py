"""The tcp transport: TCP sockets between node processes, mutual TLS 1.3 by default.

Every node listens on its address. To send, a node opens one connection per
peer (lazily, retrying for ``connect_timeout_s`` while the peer starts), does a
TLS 1.3 handshake in which both ends show their run-CA certificate
(:mod:`dfl.transport.tls`; the connecting side refuses a listener whose
certificate does not name the node it meant to reach), says ``HELLO`` (a
header-only frame naming it and the run), then writes frames: the 96-byte
header is the length prefix of the chunk that follows. Sends are queued to one
thread per peer (:mod:`dfl.transport.sender`), so a slow or dead peer never blocks
the node.

The listener and every connection not yet authenticated live in one thread
(:class:`~dfl.transport.gate.Gate`): a cap on pending connections
(``max_pending``), one total handshake deadline (``handshake_timeout_s``), no
thread or buffer before authentication. An authenticated connection is bound to
the node its certificate names (``HELLO`` must name the same node) and gets a
reader thread that validates every header, the bound sender included (a frame
claiming another sender is rejected, :func:`dfl.transport.validate.addressing_problem`),
then reads the chunk straight into the reassembly buffer (``recv_into``, no copy)
and verifies it (:class:`~dfl.transport.inbox.Inbox`). A node keeps at most
:data:`MAX_CONNECTIONS_PER_PEER` connections per peer: a newer one closes the
one idle longest if it has been idle :data:`IDLE_EVICT_S` (a stale connection left by a
restart), else it is refused, so a member's own extra connections never cut off one
that is carrying its messages; a sender checks that its connection is still open
before each message, and resends a message once on a new connection if the old one
broke while it was written. A frame whose header fails its checksum closes the connection (its
length cannot be trusted); the sender reconnects with its next message.

Without credentials (``transport.insecure=true``) connections are plain TCP,
authenticated at most by a shared secret (:mod:`dfl.transport.auth`), which
proves membership, not identity: any holder of the secret can speak as any node.

This is the baseline that the Pilot backend is benchmarked against
(``bench/transport.py``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from dfl.transport.auth import proof
from dfl.transport.base import FramedTransport
from dfl.transport.faults import FaultInjector, FrameParts
from dfl.transport.gate import Gate
from dfl.transport.handshake import (
    Handshake,
    HandshakeError,
    HandshakeTimeoutError,
    drive,
    secret_accept,
    secret_connect,
    tls_accept,
    tls_connect,
)
from dfl.transport.sender import PeerSender, SenderPool
from dfl.transport.tls import TlsCredentials, client_context, node_name, server_context
from dfl.transport.wire import (
    CHECKSUM_MASK,
    DEFAULT_CHUNK_BYTES,
    FORMAT_VERSION,
    HEADER_NBYTES,
    Hasher,
    Header,
    Kind,
)
from dfl.transport.wire import Frame as WireFrame

log = logging.getLogger("dfl.transport.tcp")

MAX_IOV = 512
RECV_PIECE = 16777216
"""Bytes received (and checksummed while in cache) per ``recv_into`` call."""
RECONNECT_TIMEOUT_S = 1.0
"""A peer that was reachable once gets one connection attempt this long; if it fails,
messages to it are dropped for as long again (a dead peer must not build a backlog)."""
MAX_CONNECTIONS_PER_PEER = 2
"""Authenticated connections kept per peer (a reconnect may overlap the old one)."""
IDLE_EVICT_S = 1.0
"""A peer's connection idle this long may be closed for a newer one over the cap."""
COALESCE_BYTES = 65536
"""TLS: buffers smaller than this are joined before they are written (fewer records)."""


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
    """Writes every buffer of ``parts`` with as few ``sendmsg`` calls as possible
    (on TLS, as few records: small buffers are joined, large ones written in place)."""
    views = [memoryview(p).cast("B") for p in parts]
    views = [v for v in views if v.nbytes]
    if isinstance(sock, ssl.SSLSocket):
        _send_all_tls(sock, views)
        return
    while views:
        sent = sock.sendmsg(views[:MAX_IOV])
        while sent:
            if sent >= views[0].nbytes:
                sent -= views[0].nbytes
                views.pop(0)
            else:
                views[0] = views[0][sent:]
                sent = 0


def _send_all_tls(sock: ssl.SSLSocket, views: list[memoryview]) -> None:
    small = bytearray()
    for v in views:
        if v.nbytes < COALESCE_BYTES:
            small += v
            if len(small) >= COALESCE_BYTES:
                sock.sendall(small)
                small = bytearray()
            continue
        if small:
            sock.sendall(small)
            small = bytearray()
        sock.sendall(v)
    if small:
        sock.sendall(small)


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


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the peer has closed ``sock`` (checked without blocking, before a write:
    data written to a connection the peer closed is lost without an error)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""  # the listener never sends data; TLS tickets are consumed
    except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


class _Peer(PeerSender[list[FrameParts]]):
    """The outgoing connection to one peer, written by its sender thread."""

    def __init__(self, transport: TcpTransport, peer: int):
        super().__init__(peer, f"dfl-tcp-{transport.node_id}->{peer}")
        self.t = transport
        self.sock: socket.socket | None = None
        self.connected_once = False
        self.down_until = 0.0

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
            _tune(sock)
            sock = self._handshake(sock)
            if sock is None:
                self.down_until = time.monotonic() + RECONNECT_TIMEOUT_S
                return None
            self.connected_once = True
            return sock
        return None

    def _handshake(self, sock: socket.socket) -> socket.socket | None:
        """TLS (the listener must show node ``peer``'s certificate), ``HELLO``, and in
        insecure mode the shared-secret answer, all within one total deadline
        (``handshake_timeout_s``); the socket to write to, or ``None``."""
        t = self.t
        sock.setblocking(False)
        try:
            if t.client_tls is not None:
                sock = t.client_tls.wrap_socket(
                    sock, server_hostname=node_name(self.peer), do_handshake_on_connect=False
                )
                steps = tls_connect(sock, self._hello())
            else:
                steps = secret_connect(sock, self._hello(), self._answer)
            drive(sock, steps, t.handshake_timeout_s)
        except HandshakeTimeoutError:
            host, port = t.addresses[self.peer]
            log.warning(
                "node %d gave up the connection handshake with node %d at %s:%d: not "
                "finished within transport.handshake_timeout_s=%gs",
                t.node_id,
                self.peer,
                host,
                port,
                t.handshake_timeout_s,
            )
            sock.close()
            return None
        except ssl.SSLCertVerificationError as e:
            log.warning(
                "node %d refuses the listener at %s: it is not node %d of this run (%s)",
                t.node_id,
                t.addresses[self.peer],
                self.peer,
                e.verify_message or e,
            )
            sock.close()
            return None
        except (HandshakeError, OSError) as e:
            log.warning(
                "node %d: connection handshake with node %d failed (%s)%s",
                t.node_id,
                self.peer,
                e,
                ""
                if t.client_tls is not None or t.secret is None
                else "; does it have the run's transport secret?",
            )
            sock.close()
            return None
        sock.setblocking(True)
        return sock

    @property
    def _answer(self) -> Callable[[bytes], bytes] | None:
        """Insecure mode with a secret: this node's answer to the listener's nonce."""
        t, secret = self.t, self.t.secret
        if secret is None:
            return None
        return lambda nonce: proof(secret, t.run, t.node_id, self.peer, nonce)

    def _hello(self) -> bytes:
        t = self.t
        return Header(
            FORMAT_VERSION,
            Kind.HELLO,
            0,
            t.node_id,
            self.peer,
            0,
            t.run,
            b"\0" * 16,
            0,
            0,
            1,
            0,
            0,
            0,
        ).pack()

    def deliver(self, item: list[FrameParts]) -> None:
        """Writes one message's frames, connecting first if need be; a connection the
        peer closed is replaced first, and one that breaks mid-message is replaced and
        the message written once more."""
        if self.sock is not None and closed_by_peer(self.sock):
            self._drop()
        for attempt in range(2):
            if self.sock is None:
                self.sock = self._connect()
                if self.sock is None:
                    self.t.undelivered += 1
                    return
            try:
                for frame in item:
                    self.t.prefetch(frame)
                    send_all(self.sock, frame)
                return
            except OSError as e:
                self._drop()
                if attempt:
                    log.warning(
                        "node %d lost a message to node %d: %s", self.t.node_id, self.peer, e
                    )
                    self.t.undelivered += 1
                else:
                    log.info(
                        "node %d resends a message to node %d on a new connection: %s",
                        self.t.node_id,
                        self.peer,
                        e,
                    )

    def finish(self) -> None:
        """Closes the connection after the last message (the peer reads to its end)."""
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
      tls: this node's credentials (:class:`~dfl.transport.tls.TlsCredentials`):
        mutual TLS 1.3 with every peer; ``None``: insecure plain TCP (``secret``).
      connect_timeout_s: how long the first connection to a peer is retried.
      chunk_bytes: the run's chunk size; longer frames close the connection.
      max_rounds_ahead, max_message_bytes: inbox limits.
      faults: fault injector for sent messages (``None``: none).
      dropped_wait_s: see :class:`~dfl.transport.base.FramedTransport`.
      secret: insecure mode only: the run's shared secret
        (:func:`dfl.transport.auth.load_secret`): every connection must prove it
        before its frames are read, and this node proves it to its peers;
        ``None``: connections are not authenticated at all.
      max_pending: connections pending authentication at most (see
        :class:`~dfl.transport.gate.Gate`).
      handshake_timeout_s: the total time a connection has for its handshake
        (either side).

    Raises:
      ValueError: for both ``tls`` and ``secret``, or credentials of another node.
    """

    def __init__(
        self,
        node_id: int,
        addresses: Sequence[tuple[str, int]],
        *,
        run_id: str,
        tls: TlsCredentials | None = None,
        connect_timeout_s: float = 60.0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_rounds_ahead: int = 1024,
        max_message_bytes: int = 1 << 31,
        faults: FaultInjector | None = None,
        dropped_wait_s: float | None = None,
        secret: bytes | None = None,
        max_pending: int = 64,
        handshake_timeout_s: float = 5.0,
    ):
        if tls is not None and secret is not None:
            raise ValueError("a tcp transport takes TLS credentials or a shared secret, not both")
        if tls is not None and tls.node_id != node_id:
            raise ValueError(f"node {node_id} was given the TLS credentials of node {tls.node_id}")
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
        self.handshake_timeout_s = handshake_timeout_s
        self.chunk_bytes = chunk_bytes
        self.secret = secret
        self.tls = tls
        self.client_tls = client_context(tls) if tls is not None else None
        self._server_tls = server_context(tls) if tls is not None else None
        self.closing = threading.Event()
        self.undelivered = 0
        self._peers = SenderPool(lambda peer: _Peer(self, peer), self.closing)
        self._lock = threading.Lock()
        self._active: dict[socket.socket, float] = {}  # connection → its last header
        self._readers: dict[int, list[tuple[threading.Thread, socket.socket]]] = {}
        # Checksums the next chunk of a message while the current one is sent.
        self._crc_pool = concurrent.futures.ThreadPoolExecutor(1, f"dfl-tcp-crc-{node_id}")
        listener = socket.create_server(
            self.addresses[node_id], reuse_port=False, backlog=max(128, len(addresses))
        )
        self._port = listener.getsockname()[1]
        try:
            self.gate = Gate(
                listener,
                name=f"dfl-tcp-accept-{node_id}",
                node_id=node_id,
                start=self._start_handshake,
                admit=self._admit,
                reject=self.inbox.reject_frame,
                max_pending=max_pending,
                deadline_s=handshake_timeout_s,
            )
        except ValueError:
            listener.close()
            self._crc_pool.shutdown(wait=False)
            raise

    @property
    def port(self) -> int:
        """The port this node listens on."""
        return self._port

    @property
    def secure(self) -> bool:
        """Whether connections are mutually authenticated and encrypted (TLS)."""
        return self.tls is not None

    def prefetch(self, frame: Any) -> None:
        """Starts checksumming the chunk after ``frame``'s in the background."""
        if isinstance(frame, WireFrame) and frame.k + 1 < len(frame.payload.chunks):
            with contextlib.suppress(RuntimeError):  # pool shut down at close
                self._crc_pool.submit(frame.payload.crc, frame.k + 1)

    def _transmit(self, peer: int, frames: Sequence[FrameParts]) -> None:
        p = self._peers.get(peer)
        if p is not None:
            p.put(list(frames))

    # -- receiving -----------------------------------------------------------------

    def _start_handshake(self, conn: socket.socket) -> tuple[socket.socket, Handshake]:
        """The gate's first step with an accepted (non-blocking) connection."""
        if self._server_tls is None:
            return conn, secret_accept(conn, self.inbox.me, self.secret)
        sock = self._server_tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return sock, tls_accept(sock, self.inbox.me)

    def _admit(self, conn: socket.socket, sender: int) -> None:
        """Starts the reader of a connection bound to ``sender`` (the gate's thread)."""
        thread = threading.Thread(
            target=self._read_loop,
            args=(conn, sender),
            daemon=True,
            name=f"dfl-tcp-read-{self.node_id}<-{sender}",
        )
        with self._lock:
            if self.closing.is_set():
                conn.close()
                return
            live = [(t, s) for t, s in self._readers.get(sender, []) if t.is_alive()]
            if len(live) >= MAX_CONNECTIONS_PER_PEER:
                now = time.monotonic()
                idle = min(live, key=lambda e: self._active.get(e[1], 0.0))
                if now - self._active.get(idle[1], 0.0) < IDLE_EVICT_S:
                    log.info(
                        "node %d refuses another connection of node %d (%d open, all active)",
                        self.node_id,
                        sender,
                        len(live),
                    )
                    with contextlib.suppress(OSError):
                        conn.close()
                    return
                live.remove(idle)
                log.info(
                    "node %d closes an idle connection of node %d (a newer one arrived)",
                    self.node_id,
                    sender,
                )
                with contextlib.suppress(OSError):
                    idle[1].shutdown(socket.SHUT_RDWR)
            self._active[conn] = time.monotonic()
            live.append((thread, conn))
            self._readers[sender] = live
        thread.start()

    def _read_loop(self, conn: socket.socket, sender: int) -> None:
        header = bytearray(HEADER_NBYTES)
        scratch: memoryview | None = None  # for frames read only to be dropped
        try:
            self.inbox.channel_opened(sender)
            while not self.closing.is_set():
                recv_into(conn, memoryview(header))
                self._active[conn] = time.monotonic()
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
                if scratch is None:
                    scratch = memoryview(bytearray(min(self.chunk_bytes, 1 << 20)))
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
            self._active.pop(conn, None)
            if sender is not None and not self.closing.is_set():
                self.inbox.channel_closed(sender)

    # -- lifecycle -----------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> None:
        """Waits until every queued message is written (or ``timeout``)."""
        self._peers.flush(timeout)

    def crash(self) -> None:
        """Stops abruptly, as a killed process would: queued sends are lost."""
        self._stop_delayer(drain=False)
        self.closing.set()
        for p in self._peers.stop_all():
            if p.sock is not None:
                with contextlib.suppress(OSError):
                    p.sock.shutdown(socket.SHUT_RDWR)
        self.close()

    def close(self, *, drain: bool = True) -> None:
        """Flushes delayed and queued sends, then closes every socket and thread."""
        self._stop_delayer(drain=drain and not self.closing.is_set())
        if not self.closing.is_set():
            self.flush()
        self.closing.set()
        self.gate.close()
        with self._lock:
            readers = [r for rs in self._readers.values() for r in rs]
        for _, conn in readers:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread, _ in readers:
            thread.join(timeout=2)
        self._crc_pool.shutdown(wait=False, cancel_futures=True)
        super().close(drain=False)
