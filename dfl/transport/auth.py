"""The insecure mode's gate (``transport.insecure=true``): a shared secret and the
tcp connection's challenge–response. By default tcp uses mutual TLS instead
(:mod:`dfl.transport.tls`); a shared secret proves membership, not identity.

With a secret, a node accepting a connection answers the peer's ``HELLO`` with a
random 32-byte nonce, and the peer must reply with

.. math::  \\mathrm{HMAC\\text{-}SHA256}(\\text{secret},\\ \\texttt{dfl-tcp-hello} \\,\\|\\,
    \\text{run} \\,\\|\\, \\text{sender} \\,\\|\\, \\text{recipient} \\,\\|\\, \\text{nonce})

before any frame of it is read. The connection is then bound to that sender
(:func:`dfl.transport.validate.addressing_problem` refuses frames naming
another), so nobody without the secret can send as a node of the run, and a
recorded handshake is useless (fresh nonce); but any holder of the secret can
claim any node. Frames are not encrypted or signed after the handshake.

The secret comes from ``transport.secret_file`` or the :data:`SECRET_ENV`
environment variable; ``python -m dfl.launch transport=tcp transport.insecure=true``
draws a fresh one for the node processes it starts when neither is set.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
from pathlib import Path

SECRET_ENV = "DFL_TRANSPORT_SECRET"
"""Environment variable holding the shared secret (when ``transport.secret_file`` is empty)."""

NONCE_NBYTES = 32
"""Bytes of the acceptor's challenge."""

PROOF_NBYTES = 32
"""Bytes of the connector's answer (an HMAC-SHA256 digest)."""

_CONTEXT = b"dfl-tcp-hello"


def load_secret(secret_file: str = "", *, environ: dict[str, str] | None = None) -> bytes | None:
    """The shared secret: the file's bytes, else ``$DFL_TRANSPORT_SECRET``, else ``None``.

    Args:
      secret_file: path of a file holding the secret (surrounding whitespace is
        stripped); empty: use the environment.
      environ: the environment to read (default ``os.environ``).

    Raises:
      ValueError: if ``secret_file`` is set but missing, unreadable or empty.
    """
    if secret_file:
        path = Path(secret_file).expanduser()
        try:
            secret = path.read_bytes().strip()
        except OSError as e:
            raise ValueError(f"transport.secret_file={secret_file!r} cannot be read: {e}") from e
        if not secret:
            raise ValueError(f"transport.secret_file={secret_file!r} is empty")
        return secret
    value = (os.environ if environ is None else environ).get(SECRET_ENV, "").strip()
    return value.encode() if value else None


def new_secret() -> str:
    """A fresh random secret (64 hex characters) for the nodes of one launch."""
    return secrets.token_hex(32)


def new_nonce() -> bytes:
    """A fresh challenge."""
    return secrets.token_bytes(NONCE_NBYTES)


def proof(secret: bytes, run: bytes, sender: int, recipient: int, nonce: bytes) -> bytes:
    """The connector's answer to ``nonce`` (see the module docstring)."""
    message = _CONTEXT + run + struct.pack("<II", sender, recipient) + nonce
    return hmac.new(secret, message, hashlib.sha256).digest()


def verify(
    secret: bytes, run: bytes, sender: int, recipient: int, nonce: bytes, answer: bytes
) -> bool:
    """Whether ``answer`` proves that ``sender`` holds ``secret`` (constant time)."""
    return hmac.compare_digest(proof(secret, run, sender, recipient, nonce), answer)
