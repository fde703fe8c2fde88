"""One identity root per run: a run CA (Ed25519) and one key bundle per node.

* :mod:`dfl.keys.ca`: ``python -m dfl.keys init --nodes N --out DIR`` writes the
  run's CA (``ca.pem``: its X.509 certificate) and ``node-<i>.json`` bundles (0600),
  each with the node's X.509 certificate from the same CA
  (:func:`dfl.keys.ca.x509_certificate`, for mutual TLS on tcp).
* :mod:`dfl.keys.compact`: the compact statements that travel where a certificate
  does not fit: a node certificate (120 bytes) and the binding of a node's Pilot
  identity (node id and public key) to its dfl node id, 224 bytes (299 base64
  characters), inside Pilot's 1024-byte handshake justification.
"""

from dfl.keys.ca import NodeIdentity, RunCA, init
from dfl.keys.compact import BindingError, PilotBinding, verify_pilot_binding

__all__ = [
    "BindingError",
    "NodeIdentity",
    "PilotBinding",
    "RunCA",
    "init",
    "verify_pilot_binding",
]
