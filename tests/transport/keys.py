"""Run keys for tcp tests: TLS credentials of every node, made in memory by a run CA."""

from __future__ import annotations

from dfl.keys import RunCA
from dfl.transport.tls import TlsCredentials


def credentials(num_nodes: int, run_id: str = "t", ca: RunCA | None = None) -> list[TlsCredentials]:
    """The TLS credentials of nodes ``0..num_nodes-1`` of ``run_id`` (one fresh CA,
    or ``ca``)."""
    ca = ca if ca is not None else RunCA.generate(run_id)
    return [TlsCredentials.from_identity(ca.issue(i)) for i in range(num_nodes)]
