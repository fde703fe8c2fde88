"""Compact signed statements of a run's identities (fixed layouts, domain-separated).

Node certificate (120 bytes), signed by the run CA::

    b"DFC1" | run digest (16) | node id (u32 LE) | node public key (32) | CA signature (64)

Pilot binding (224 bytes, sent base64url as the Pilot handshake justification and
as the first message to each peer), signed by the node's own key::

    b"DFP1" | node certificate (120) | Pilot node id (u32 LE) | Pilot public key (32)
            | node signature (64)

A verifier holding the CA's public key checks the CA's signature, the run, that
the statement names the Pilot node that presented it (and its key, where known),
and the node's signature: a captured binding replayed by another Pilot node
names the wrong Pilot node, and nobody without a member's key can make one.
"""

from __future__ import annotations

import base64
import dataclasses
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dfl.transport.wire import run_digest

CERT_MAGIC = b"DFC1"
BINDING_MAGIC = b"DFP1"
CERT_DOMAIN = b"dfl node certificate v1\0"
BINDING_DOMAIN = b"dfl pilot binding v1\0"
CERT_BODY = struct.Struct("<4s16sI32s")
CERT_NBYTES = CERT_BODY.size + 64
BINDING_BODY = struct.Struct(f"<4s{CERT_NBYTES}sI32s")
BINDING_NBYTES = BINDING_BODY.size + 64
MAX_JUSTIFICATION_CHARS = 1024


class BindingError(ValueError):
    """A compact statement failed verification (the reason says which check)."""


def b64(data: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    """Inverse of :func:`b64`.

    Raises:
      BindingError: for text that is not base64url.
    """
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as e:
        raise BindingError(f"not base64url: {e}") from None


def cert_body(run_id: str, node_id: int, public_key: bytes) -> bytes:
    """The signed part of a node certificate."""
    return CERT_BODY.pack(CERT_MAGIC, run_digest(run_id), node_id, public_key)


def binding_body(cert: bytes, pilot_node_id: int, pilot_public_key: bytes) -> bytes:
    """The signed part of a Pilot binding."""
    return BINDING_BODY.pack(BINDING_MAGIC, cert, pilot_node_id, pilot_public_key)


@dataclasses.dataclass(frozen=True)
class PilotBinding:
    """A verified binding: dfl node ``node_id`` speaks as Pilot node ``pilot_node_id``."""

    node_id: int
    node_public_key: bytes
    pilot_node_id: int
    pilot_public_key: bytes


def _verify(key: bytes, signature: bytes, message: bytes, what: str) -> None:
    domain = CERT_DOMAIN if what == "CA" else BINDING_DOMAIN
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, domain + message)
    except InvalidSignature:
        raise BindingError(f"bad {what} signature") from None


def verify_certificate(cert: bytes, *, ca_public_key: bytes, run_id: str) -> tuple[int, bytes]:
    """Checks a node certificate; returns its ``(node id, node public key)``.

    Raises:
      BindingError: wrong length, magic, run, or CA signature.
    """
    if len(cert) != CERT_NBYTES:
        raise BindingError(f"node certificate of {len(cert)} bytes, expected {CERT_NBYTES}")
    magic, run, node_id, key = CERT_BODY.unpack_from(cert)
    if magic != CERT_MAGIC:
        raise BindingError("not a dfl node certificate")
    if run != run_digest(run_id):
        raise BindingError("node certificate of another run")
    _verify(ca_public_key, cert[CERT_BODY.size :], cert[: CERT_BODY.size], "CA")
    return node_id, key


def verify_pilot_binding(
    text: str,
    *,
    ca_public_key: bytes,
    run_id: str,
    pilot_node_id: int,
    pilot_public_key: bytes | None = None,
) -> PilotBinding:
    """Verifies a Pilot binding presented by Pilot node ``pilot_node_id``.

    Args:
      text: the base64url binding (a handshake justification or first message).
      ca_public_key: the run CA's raw Ed25519 public key.
      run_id: the run the binding must belong to.
      pilot_node_id: the Pilot node that presented it (from the daemon, not the text).
      pilot_public_key: that node's Pilot public key where known (registry, handshake).

    Raises:
      BindingError: naming the failed check.
    """
    if len(text) > MAX_JUSTIFICATION_CHARS:
        raise BindingError(f"binding of {len(text)} characters, over {MAX_JUSTIFICATION_CHARS}")
    raw = unb64(text)
    if len(raw) != BINDING_NBYTES:
        raise BindingError(f"binding of {len(raw)} bytes, expected {BINDING_NBYTES}")
    magic, cert, pilot_id, pilot_key = BINDING_BODY.unpack_from(raw)
    if magic != BINDING_MAGIC:
        raise BindingError("not a dfl Pilot binding")
    node_id, node_key = verify_certificate(cert, ca_public_key=ca_public_key, run_id=run_id)
    if pilot_id != pilot_node_id:
        raise BindingError(
            f"binding names Pilot node {pilot_id} but was presented by Pilot node {pilot_node_id}"
        )
    if pilot_public_key is not None and pilot_key != pilot_public_key:
        raise BindingError(f"binding names another public key than Pilot node {pilot_node_id}'s")
    _verify(node_key, raw[BINDING_BODY.size :], raw[: BINDING_BODY.size], "node")
    return PilotBinding(node_id, node_key, pilot_id, pilot_key)
