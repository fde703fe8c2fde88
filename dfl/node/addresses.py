"""Up-front checks of ``transport.addresses`` (before any node starts)."""

from __future__ import annotations

import socket

from dfl.config.schema import Config
from dfl.transport.tcp import parse_address


def check_addresses(cfg: Config) -> None:
    """Checks that every host of ``transport.addresses`` (tcp) resolves.

    A typo in a host name would otherwise surface as ``OSError: Name or service
    not known`` deep in a node's transport, once per node.

    Raises:
      ValueError: naming the entry whose host does not resolve.
    """
    t = cfg.transport
    if t.name != "tcp":
        return
    for i, entry in enumerate(t.addresses):
        host, port = parse_address(entry)
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise ValueError(
                f"transport.addresses[{i}]={entry!r}: host {host!r} does not resolve "
                f"({e.strerror}); give a host name or IP address that every node can resolve"
            ) from None
