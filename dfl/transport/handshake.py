"""tcp's connection handshake, both sides, as steps over a non-blocking socket.

Each handshake is a generator: it does as much as the socket allows, yields the
event it waits for (``selectors.EVENT_READ`` or ``EVENT_WRITE``) and finally
returns (the accepting side: the node id the connection is bound to), or raises
:class:`HandshakeError` with the reason it is refused. On the accepting side one
thread (:class:`dfl.transport.gate.Gate`) drives every pending handshake with a
selector, so an unauthenticated connection costs a few hundred bytes of Python
state and its TLS session, never a thread or a frame buffer. The connecting side
drives its own with :func:`drive`: one total deadline for the whole handshake,
however slowly the listener answers.

* :func:`tls_accept`: the TLS 1.3 handshake (the peer's run-CA certificate
  names the node), then the peer's ``HELLO``, whose sender must be that node.
* :func:`secret_accept` (``transport.insecure=true`` only): the peer's
  ``HELLO``, then, with a shared secret, the challenge of
  :mod:`dfl.transport.auth`; the connection is bound to the node ``HELLO``
  claims, which any holder of the secret can claim.
* :func:`tls_connect`, :func:`secret_connect`: the connecting side of each.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from collections.abc import Callable, Generator
from typing import TypeVar

from dfl.transport.auth import NONCE_NBYTES, PROOF_NBYTES, new_nonce, verify
from dfl.transport.tls import peer_node
from dfl.transport.validate import Receiver, hello_problem
from dfl.transport.wire import HEADER_NBYTES, WireError, parse_header

Handshake = Generator[int, None, int]
"""Yields the selector event it waits for; returns the bound node id."""

R = TypeVar("R")


class HandshakeError(Exception):
    """A connection refused during its handshake; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class HandshakeTimeoutError(HandshakeError):
    """A handshake not finished within its total deadline."""


def recv_exact(sock: socket.socket, nbytes: int) -> Generator[int, None, bytearray]:
    """Reads exactly ``nbytes`` from a non-blocking (TLS or plain) socket.

    Raises:
      HandshakeError: if the peer closes first.
    """
    buf = bytearray(nbytes)
    view = memoryview(buf)
    while view.nbytes:
        try:
            n = sock.recv_into(view)
        except ssl.SSLWantWriteError:
            yield selectors.EVENT_WRITE
            continue
        except (ssl.SSLWantReadError, BlockingIOError):
            yield selectors.EVENT_READ
            continue
        if n == 0:
            raise HandshakeError("connection closed during the handshake")
        view = view[n:]
    return buf


def send_exact(sock: socket.socket, data: bytes) -> Generator[int, None, None]:
    """Writes all of ``data`` to a non-blocking (TLS or plain) socket."""
    view = memoryview(data)
    while view.nbytes:
        try:
            n = sock.send(view)
        except ssl.SSLWantReadError:
            yield selectors.EVENT_READ
            continue
        except (ssl.SSLWantWriteError, BlockingIOError):
            yield selectors.EVENT_WRITE
            continue
        view = view[n:]


def drive(sock: socket.socket, handshake: Generator[int, None, R], timeout: float) -> R:
    """Runs ``handshake`` over the non-blocking ``sock`` to its end, within ``timeout``
    seconds in all (not per read: a peer that trickles bytes cannot stretch it).

    Raises:
      HandshakeTimeoutError: past the deadline (``sock`` is left to the caller to close).
      HandshakeError, OSError, ssl.SSLError: as the handshake raises them.
    """
    end = time.monotonic() + timeout
    try:
        want = next(handshake)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, want)
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise HandshakeTimeoutError(f"not finished within {timeout:g}s")
                if not selector.select(left):
                    continue
                step = handshake.send(None)
                if step != want:
                    selector.modify(sock, step)
                    want = step
    except StopIteration as done:
        return done.value
    finally:
        handshake.close()


def _hello(buf: bytearray, me: Receiver) -> int:
    """The sender of a valid ``HELLO`` to ``me``."""
    try:
        h = parse_header(buf)
    except WireError as e:
        raise HandshakeError(f"bad connection handshake: {e.reason}") from None
    problem = hello_problem(h, me)
    if problem is not None:
        raise HandshakeError(problem)
    return h.sender


def tls_handshake(sock: ssl.SSLSocket) -> Generator[int, None, None]:
    """The TLS handshake of a socket wrapped with ``do_handshake_on_connect=False``
    (non-blocking); a failure raises its :class:`ssl.SSLError`."""
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            yield selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            yield selectors.EVENT_WRITE


def tls_accept(sock: ssl.SSLSocket, me: Receiver) -> Handshake:
    """The TLS handshake of an accepted connection, then its ``HELLO``.

    ``sock`` was wrapped with ``do_handshake_on_connect=False`` and is non-blocking.
    """
    try:
        yield from tls_handshake(sock)
    except ssl.SSLError as e:
        raise HandshakeError(f"TLS handshake failed: {e.reason or e}") from None
    bound = peer_node(sock)
    if bound is None:
        raise HandshakeError("TLS peer certificate names no dfl node")
    sender = _hello((yield from recv_exact(sock, HEADER_NBYTES)), me)
    if sender != bound:
        raise HandshakeError(
            f"HELLO claims node {sender} on a connection whose certificate names node {bound}"
        )
    return bound


def secret_accept(sock: socket.socket, me: Receiver, secret: bytes | None) -> Handshake:
    """The insecure mode's handshake: ``HELLO``, then the shared-secret challenge if any."""
    sender = _hello((yield from recv_exact(sock, HEADER_NBYTES)), me)
    if secret is None:
        return sender
    nonce = new_nonce()
    assert len(nonce) == NONCE_NBYTES
    yield from send_exact(sock, nonce)
    answer = yield from recv_exact(sock, PROOF_NBYTES)
    if not verify(secret, me.run, sender, me.node_id, nonce, bytes(answer)):
        raise HandshakeError(
            f"node {sender} failed the authentication (wrong or no transport secret)"
        )
    return sender


def tls_connect(sock: ssl.SSLSocket, hello: bytes) -> Generator[int, None, None]:
    """The connecting side over TLS: the handshake (the listener's certificate is
    checked by the context), then this node's ``HELLO``."""
    yield from tls_handshake(sock)
    yield from send_exact(sock, hello)


def secret_connect(
    sock: socket.socket, hello: bytes, answer: Callable[[bytes], bytes] | None
) -> Generator[int, None, None]:
    """The connecting side in insecure mode: ``HELLO``, then with a secret
    ``answer(nonce)`` to the listener's challenge."""
    yield from send_exact(sock, hello)
    if answer is not None:
        nonce = yield from recv_exact(sock, NONCE_NBYTES)
        yield from send_exact(sock, answer(bytes(nonce)))
