"""The run CA and the node bundles (``python -m dfl.keys init``).

Files written into ``DIR``:

* ``ca.json``: the run id and the CA's public key (public);
* ``ca.pem``: the CA's self-signed X.509 certificate (public; the only trust root
  of the run's TLS connections on tcp);
* ``ca.key``: the CA's private key, PEM (0600; needed only to issue more);
* ``node-<i>.json``: node ``i``'s bundle (0600): its private key, its compact
  certificate, its X.509 certificate, the CA's public key and certificate, and
  the run id. A node needs only its own bundle.

The CA is an Ed25519 key: it signs compact node certificates
(:mod:`dfl.keys.compact`) and, for TLS, X.509 certificates
(:func:`x509_certificate`) of the same Ed25519 node keys (OpenSSL 3 speaks TLS 1.3
with Ed25519 certificates on both ends).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dfl.keys.compact import BINDING_DOMAIN, CERT_DOMAIN, b64, binding_body, cert_body, unb64
from dfl.transport.tls import node_name

CA_FILE = "ca.json"
CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.pem"
CERT_DAYS = 365
"""Validity of the CA's and the nodes' X.509 certificates."""


def raw_public(key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of ``key``'s public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_private(key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of ``key``."""
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


@dataclasses.dataclass(frozen=True)
class RunCA:
    """A run's certificate authority.

    Attributes:
      run_id: the run.
      key: the CA's Ed25519 key.
      certificate_pem: the CA's self-signed X.509 certificate (PEM); empty: made now.
    """

    run_id: str
    key: Ed25519PrivateKey
    certificate_pem: bytes = b""

    def __post_init__(self) -> None:
        if not self.certificate_pem:
            pem = _ca_certificate(self).public_bytes(serialization.Encoding.PEM)
            object.__setattr__(self, "certificate_pem", pem)

    @classmethod
    def generate(cls, run_id: str) -> RunCA:
        return cls(run_id, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> bytes:
        return raw_public(self.key)

    def certify(self, node_id: int, public_key: bytes) -> bytes:
        """The compact certificate of ``public_key`` as node ``node_id`` of this run."""
        body = cert_body(self.run_id, node_id, public_key)
        return body + self.key.sign(CERT_DOMAIN + body)

    def issue(self, node_id: int) -> NodeIdentity:
        """A fresh key for node ``node_id``, certified (compact and X.509)."""
        key = Ed25519PrivateKey.generate()
        identity = NodeIdentity(
            self.run_id, node_id, key, self.certify(node_id, raw_public(key)), self.public_key
        )
        tls = x509_certificate(self, identity).public_bytes(serialization.Encoding.PEM)
        return dataclasses.replace(
            identity, tls_certificate=tls, ca_certificate=self.certificate_pem
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(directory / CA_KEY_FILE, pem)
        info = {"run_id": self.run_id, "ca_public_key": b64(self.public_key)}
        (directory / CA_FILE).write_text(json.dumps(info, indent=1))
        (directory / CA_CERT_FILE).write_bytes(self.certificate_pem)

    @classmethod
    def load(cls, directory: Path) -> RunCA:
        info = json.loads((directory / CA_FILE).read_text())
        key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{directory / CA_KEY_FILE} is not an Ed25519 key")
        cert = directory / CA_CERT_FILE
        return cls(info["run_id"], key, cert.read_bytes() if cert.exists() else b"")


@dataclasses.dataclass(frozen=True)
class NodeIdentity:
    """One node's bundle: its key, its certificates, and the CA it trusts.

    Attributes:
      run_id: the run.
      node_id: the node.
      key: the node's Ed25519 key (Pilot bindings and TLS).
      certificate: its compact CA-signed certificate (:mod:`dfl.keys.compact`).
      ca_public_key: the run CA's raw public key.
      tls_certificate: its X.509 certificate (PEM) from the run CA (empty in a
        bundle made before TLS on tcp: make the run's keys again).
      ca_certificate: the run CA's X.509 certificate (PEM), the TLS trust root.
    """

    run_id: str
    node_id: int
    key: Ed25519PrivateKey
    certificate: bytes
    ca_public_key: bytes
    tls_certificate: bytes = b""
    ca_certificate: bytes = b""

    def key_pem(self) -> bytes:
        """The node's private key as unencrypted PKCS#8 PEM (for the TLS context)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def pilot_binding(self, pilot_node_id: int, pilot_public_key: bytes) -> str:
        """This node's binding to its Pilot identity, base64url (299 characters)."""
        body = binding_body(self.certificate, pilot_node_id, pilot_public_key)
        return b64(body + self.key.sign(BINDING_DOMAIN + body))

    def save(self, path: Path) -> None:
        bundle = {
            "run_id": self.run_id,
            "node_id": self.node_id,
            "private_key": b64(raw_private(self.key)),
            "public_key": b64(raw_public(self.key)),
            "certificate": b64(self.certificate),
            "ca_public_key": b64(self.ca_public_key),
            "tls_certificate": self.tls_certificate.decode(),
            "ca_certificate": self.ca_certificate.decode(),
        }
        _write_private(path, json.dumps(bundle, indent=1).encode())

    @classmethod
    def load(cls, path: str | Path) -> NodeIdentity:
        """Reads a ``node-<i>.json`` bundle.

        Raises:
          PermissionError: if others than its owner may read it.
        """
        path = Path(path)
        if path.stat().st_mode & 0o077:
            raise PermissionError(f"{path} is readable by others: chmod 600 it")
        b = json.loads(path.read_text())
        key = Ed25519PrivateKey.from_private_bytes(unb64(b["private_key"]))
        return cls(
            b["run_id"],
            int(b["node_id"]),
            key,
            unb64(b["certificate"]),
            unb64(b["ca_public_key"]),
            b.get("tls_certificate", "").encode(),
            b.get("ca_certificate", "").encode(),
        )


def node_file(directory: str | Path, node_id: int) -> Path:
    """Where ``init`` writes node ``node_id``'s bundle."""
    return Path(directory) / f"node-{node_id}.json"


def init(nodes: int, out: str | Path, run_id: str = "") -> RunCA:
    """Makes a run CA and ``nodes`` bundles in ``out`` (see the module docstring).

    Raises:
      FileExistsError: if ``out`` already holds a CA (never overwritten).
    """
    if nodes < 1:
        raise ValueError(f"--nodes must be >= 1, found {nodes}")
    directory = Path(out)
    if (directory / CA_FILE).exists():
        raise FileExistsError(f"{directory / CA_FILE} exists; not overwriting a run's CA")
    ca = RunCA.generate(run_id or f"run-{secrets.token_hex(8)}")
    ca.save(directory)
    for i in range(nodes):
        ca.issue(i).save(node_file(directory, i))
    return ca


def _ca_name(run_id: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "dfl run CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, run_id),
        ]
    )


def _ca_certificate(ca: RunCA, *, days: int = CERT_DAYS) -> x509.Certificate:
    """The CA's self-signed X.509 certificate (may sign node certificates, nothing else)."""
    now = datetime.datetime.now(datetime.UTC)
    name = _ca_name(ca.run_id)
    public = ca.key.public_key()
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(ca.key, None)
    )


def x509_certificate(
    ca: RunCA, identity: NodeIdentity, *, days: int = CERT_DAYS
) -> x509.Certificate:
    """An X.509 certificate of ``identity``'s key signed by the run CA (for TLS on tcp).

    The subject names the node (``CN=dfl-node-<i>``, also its DNS subject
    alternative name, which the connecting side checks) and the run
    (``O=<run id>``); the issuer is the CA (``CN=dfl run CA``). It serves both
    ends of a connection (server and client authentication).
    """
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, node_name(identity.node_id)),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.run_id),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    purposes = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(_ca_name(ca.run_id))
        .public_key(identity.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(node_name(identity.node_id))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, None)
    )
