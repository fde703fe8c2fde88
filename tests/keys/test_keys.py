"""The run CA, node bundles and the compact Pilot binding."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dfl.keys import BindingError, NodeIdentity, RunCA, verify_pilot_binding
from dfl.keys.ca import node_file, raw_public, x509_certificate
from dfl.keys.compact import BINDING_NBYTES, CERT_NBYTES, MAX_JUSTIFICATION_CHARS, b64, unb64

PILOT_KEY = bytes(range(32))


def raw(key) -> bytes:
    """The raw bytes of an Ed25519 public key (of a certificate)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    assert isinstance(key, Ed25519PublicKey), type(key)
    return key.public_bytes_raw()


def test_init_command_writes_a_ca_and_private_bundles(tmp_path):
    out = tmp_path / "keys"
    cmd = [sys.executable, "-m", "dfl.keys", "init", "--nodes", "3", "--out", str(out)]
    subprocess.run([*cmd, "--run-id", "r1"], check=True, capture_output=True)
    ca = RunCA.load(out)
    assert ca.run_id == "r1"
    assert (out / "ca.key").stat().st_mode & 0o777 == 0o600
    for i in range(3):
        path = node_file(out, i)
        assert path.stat().st_mode & 0o777 == 0o600
        ident = NodeIdentity.load(path)
        assert (ident.node_id, ident.run_id, ident.ca_public_key) == (i, "r1", ca.public_key)
    again = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert again.returncode == 1 and "not overwriting" in again.stderr


def test_a_bundle_readable_by_others_is_refused(tmp_path):
    ca = RunCA.generate("r")
    path = tmp_path / "node-0.json"
    ca.issue(0).save(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        NodeIdentity.load(path)


def test_binding_fits_the_justification_and_verifies():
    ca = RunCA.generate("run-a")
    ident = ca.issue(2)
    text = ident.pilot_binding(17, PILOT_KEY)
    assert len(unb64(text)) == BINDING_NBYTES == 4 + CERT_NBYTES + 4 + 32 + 64 == 224
    assert len(text) == 299 <= MAX_JUSTIFICATION_CHARS  # ceil(224 * 4 / 3), unpadded
    b = verify_pilot_binding(
        text,
        ca_public_key=ca.public_key,
        run_id="run-a",
        pilot_node_id=17,
        pilot_public_key=PILOT_KEY,
    )
    assert (b.node_id, b.pilot_node_id, b.pilot_public_key) == (2, 17, PILOT_KEY)
    assert b.node_public_key == raw_public(ident.key)


def _check(text, ca, **kw):
    args = {"ca_public_key": ca.public_key, "run_id": "run-a", "pilot_node_id": 17}
    args.update(kw)
    return verify_pilot_binding(text, **args)


def test_every_forgery_is_rejected_with_its_reason():
    ca = RunCA.generate("run-a")
    text = ca.issue(2).pilot_binding(17, PILOT_KEY)
    # Replayed by another Pilot node, or naming another key.
    with pytest.raises(BindingError, match="presented by Pilot node 18"):
        _check(text, ca, pilot_node_id=18)
    with pytest.raises(BindingError, match="another public key"):
        _check(text, ca, pilot_public_key=bytes(32))
    # Another run's CA, or another run id.
    with pytest.raises(BindingError, match="bad CA signature"):
        _check(text, RunCA.generate("run-a"))
    with pytest.raises(BindingError, match="another run"):
        _check(text, ca, run_id="run-b")
    # A member's certificate with a binding signed by someone else's key.
    raw = bytearray(unb64(text))
    thief = Ed25519PrivateKey.generate()
    from dfl.keys.compact import BINDING_DOMAIN

    raw[-64:] = thief.sign(BINDING_DOMAIN + bytes(raw[:-64]))
    with pytest.raises(BindingError, match="bad node signature"):
        _check(b64(bytes(raw)), ca)
    # A certificate made by the node itself (not the CA) for another node id.
    fake = RunCA("run-a", thief).issue(0).pilot_binding(17, PILOT_KEY)
    with pytest.raises(BindingError, match="bad CA signature"):
        _check(fake, ca)
    # Every single flipped byte fails.
    for i in range(0, BINDING_NBYTES, 7):
        bad = bytearray(unb64(text))
        bad[i] ^= 1
        with pytest.raises(BindingError):
            _check(b64(bytes(bad)), ca)
    with pytest.raises(BindingError, match="expected 224"):
        _check(text[:-4], ca)
    with pytest.raises(BindingError, match="over 1024"):
        _check("A" * 2000, ca)


def test_the_same_ca_issues_x509_certificates_for_tls():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    ca = RunCA.generate("run-a")
    ident = ca.issue(3)
    cert = x509_certificate(ca, ident)
    assert cert.subject.rfc4514_string() == "O=run-a,CN=dfl-node-3"
    Ed25519PublicKey.from_public_bytes(ca.public_key).verify(
        cert.signature, cert.tbs_certificate_bytes
    )
    assert raw(cert.public_key()) == raw_public(ident.key)


def test_bundles_carry_tls_certificates_of_the_node_key_from_the_run_ca(tmp_path):
    from cryptography import x509

    from dfl.keys import init

    ca = init(2, tmp_path, "run-a")
    root = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert root.subject == root.issuer and raw(root.public_key()) == ca.public_key
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for i in range(2):
        ident = NodeIdentity.load(node_file(tmp_path, i))
        assert ident.ca_certificate == (tmp_path / "ca.pem").read_bytes()
        cert = x509.load_pem_x509_certificate(ident.tls_certificate)
        cert.verify_directly_issued_by(root)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [f"dfl-node-{i}"]
        assert raw(cert.public_key()) == raw_public(ident.key)
    assert RunCA.load(tmp_path).certificate_pem == (tmp_path / "ca.pem").read_bytes()
