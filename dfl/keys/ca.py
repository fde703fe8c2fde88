"""The run CA and the node bundles (``python -m dfl.keys init``).

Files written into ``DIR``:

* ``ca.json``: the run id and the CA's public key (public);
* ``ca.key``: the CA's private key, PEM (0600; needed only to issue more);
* ``node-<i>.json``: node ``i``'s bundle (0600): its private key, its compact
  certificate, the CA's public key and the run id.

The CA is an Ed25519 key: it signs compact node certificates
(:mod:`dfl.keys.compact`) and, for TLS, X.509 certificates
(:func:`x509_certificate`) of the same node keys.
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
from cryptography.x509.oid import NameOID

from dfl.keys.compact import BINDING_DOMAIN, CERT_DOMAIN, b64, binding_body, cert_body, unb64

CA_FILE = "ca.json"
CA_KEY_FILE = "ca.key"


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
    """A run's certificate authority."""

    run_id: str
    key: Ed25519PrivateKey

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
        """A fresh key for node ``node_id``, certified."""
        key = Ed25519PrivateKey.generate()
        return NodeIdentity(
            self.run_id, node_id, key, self.certify(node_id, raw_public(key)), self.public_key
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

    @classmethod
    def load(cls, directory: Path) -> RunCA:
        info = json.loads((directory / CA_FILE).read_text())
        key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{directory / CA_KEY_FILE} is not an Ed25519 key")
        return cls(info["run_id"], key)


@dataclasses.dataclass(frozen=True)
class NodeIdentity:
    """One node's bundle: its key, its certificate, and the CA it trusts."""

    run_id: str
    node_id: int
    key: Ed25519PrivateKey
    certificate: bytes
    ca_public_key: bytes

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
            b["run_id"], int(b["node_id"]), key, unb64(b["certificate"]), unb64(b["ca_public_key"])
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


def x509_certificate(ca: RunCA, identity: NodeIdentity, *, days: int = 30) -> x509.Certificate:
    """An X.509 certificate of ``identity``'s key signed by the run CA (for TLS on tcp).

    The subject names the node (``CN=dfl-node-<i>``) and the run
    (``O=<run id>``); the issuer is the CA (``CN=dfl run CA``).
    """
    now = datetime.datetime.now(datetime.UTC)
    issuer = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "dfl run CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.run_id),
        ]
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"dfl-node-{identity.node_id}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.run_id),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(identity.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca.key, None)
    )
