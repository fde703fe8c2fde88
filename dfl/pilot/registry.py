"""The registry calls dfl makes itself: length-prefixed JSON over TCP.

The SDK reaches the registry only through the daemon, and two calls dfl needs
are not there: ``create_network`` (wants the registry's admin token and a
registered node id) and ``lookup`` (a node's tags and public key).
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

MAX_REPLY_BYTES = 16 << 20


class RegistryError(RuntimeError):
    """The registry answered with an error."""


def parse_hostport(text: str) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)``.

    Raises:
      ValueError: for anything else.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected a registry address 'host:port', found {text!r}")
    return host.strip("[]"), int(port)


def call(address: str, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Sends one JSON request to the registry at ``address``; returns its reply.

    Raises:
      RegistryError: if the reply carries an ``error``.
      OSError: if the registry cannot be reached.
    """
    body = json.dumps(message).encode()
    with socket.create_connection(parse_hostport(address), timeout=timeout) as sock:
        sock.sendall(struct.pack(">I", len(body)) + body)
        (n,) = struct.unpack(">I", _recv(sock, 4))
        if n > MAX_REPLY_BYTES:
            raise RegistryError(f"registry reply of {n} bytes, over {MAX_REPLY_BYTES}")
        reply = json.loads(_recv(sock, n))
    if "error" in reply:
        raise RegistryError(f"registry {message.get('type')}: {reply['error']}")
    return reply


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        piece = sock.recv(n - len(buf))
        if not piece:
            raise ConnectionError("registry closed the connection")
        buf += piece
    return bytes(buf)


def create_network(address: str, *, name: str, token: str, admin_token: str, node_id: int) -> int:
    """Creates a private network joined with ``token``; returns its id.

    ``node_id`` must be registered (it becomes the network's owner and member).
    """
    reply = call(
        address,
        {
            "type": "create_network",
            "node_id": node_id,
            "name": name,
            "join_rule": "token",
            "token": token,
            "admin_token": admin_token,
        },
    )
    return int(reply["network_id"])


def lookup(address: str, node_id: int) -> dict[str, Any]:
    """The registry's record of ``node_id`` (``tags``, ``public_key``, ``hostname``...)."""
    return call(address, {"type": "lookup", "node_id": node_id})
