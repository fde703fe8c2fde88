"""Mutual TLS 1.3 for the tcp transport: a node's credentials and its two TLS contexts.

Both ends of a connection present an X.509 certificate issued by the run CA
(:func:`dfl.keys.ca.x509_certificate`) and require one from the other
(``CERT_REQUIRED``); the run CA's certificate is the only trust root (no system
store). The connecting side checks that the listener's certificate names the
node it meant to reach (``dfl-node-<i>``, the certificate's DNS name, checked by
OpenSSL's host name verification); the accepting side binds the connection to
the node id its peer's certificate names (:func:`peer_node`). Records are
encrypted and authenticated by TLS (AES-GCM or ChaCha20-Poly1305).

The module knows PEM bytes, never the key bundles (``dfl.keys`` imports the
wire format, so the transport package takes its credentials as plain values).
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
import tempfile
from typing import Any

NODE_NAME = re.compile(r"dfl-node-(\d+)")
"""A node certificate's DNS name (:func:`dfl.keys.ca.node_name`)."""


def node_name(node_id: int) -> str:
    """The name node ``node_id``'s certificate carries."""
    return f"dfl-node-{node_id}"


@dataclasses.dataclass(frozen=True)
class TlsCredentials:
    """What one node needs for TLS: its key and certificate, and the run CA's certificate.

    Attributes:
      node_id: the node the certificate names.
      certificate: the node's X.509 certificate, PEM.
      key: the node's private key, unencrypted PKCS#8 PEM.
      ca_certificate: the run CA's certificate, PEM (the only trust root).
    """

    node_id: int
    certificate: bytes
    key: bytes = dataclasses.field(repr=False)
    ca_certificate: bytes = b""

    @classmethod
    def from_identity(cls, identity: Any) -> TlsCredentials:
        """The credentials of a :class:`dfl.keys.NodeIdentity` bundle.

        Raises:
          ValueError: if the bundle has no X.509 certificates (made before TLS on tcp).
        """
        if not identity.tls_certificate or not identity.ca_certificate:
            raise ValueError(
                f"the key bundle of node {identity.node_id} has no TLS certificate; make the "
                "run's keys again with `python -m dfl.keys init`"
            )
        return cls(
            identity.node_id,
            identity.tls_certificate,
            identity.key_pem(),
            identity.ca_certificate,
        )


def _context(credentials: TlsCredentials, purpose: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=credentials.ca_certificate.decode())
    # ssl loads a key only from a file: a private temporary directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="dfl-tls-") as d:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        for path, data in ((cert, credentials.certificate), (key, credentials.key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert, key)
    return ctx


def server_context(credentials: TlsCredentials) -> ssl.SSLContext:
    """The accepting side's context: TLS 1.3 only, a run-CA client certificate required."""
    ctx = _context(credentials, ssl.PROTOCOL_TLS_SERVER)
    ctx.num_tickets = 0  # no session resumption: every connection shows its certificate
    return ctx


def client_context(credentials: TlsCredentials) -> ssl.SSLContext:
    """The connecting side's context: TLS 1.3 only, the listener's run-CA certificate
    required and checked against the node name passed as ``server_hostname``."""
    ctx = _context(credentials, ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = True
    return ctx


def peer_node(sock: ssl.SSLSocket) -> int | None:
    """The node id the (verified) peer certificate of ``sock`` names, or ``None``.

    A certificate must carry exactly one ``dfl-node-<i>`` DNS name.
    """
    cert = sock.getpeercert()
    if not cert:
        return None
    names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    found = [m.group(1) for m in (NODE_NAME.fullmatch(str(n)) for n in names) if m]
    return int(found[0]) if len(found) == 1 else None
