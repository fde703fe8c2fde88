"""Transports: the only I/O between deployed nodes (loopback and tcp) and their wire format.

* :mod:`dfl.transport.wire`: frames, headers, checksums, :class:`WireSpec`,
  :func:`message_nbytes` (the exact bytes of one message on the wire).
* :mod:`dfl.transport.validate`: pure header checks, each returning a reason
  (shared by every backend and tcp's connection handshake).
* :mod:`dfl.transport.reassembly`: chunks into messages, and who owns each buffer.
* :mod:`dfl.transport.ledger`: per-message states, delivered and rejected messages.
* :mod:`dfl.transport.inbox`: the lock, the wait for a round, the liveness notices.
* :mod:`dfl.transport.counts`: frames, messages and bytes received.
* :mod:`dfl.transport.faults`: reproducible fault injection.
* :mod:`dfl.transport.base`: the :class:`Transport` protocol and
  :class:`FramedTransport`, which the backends build on.
* :mod:`dfl.transport.loopback`, :mod:`dfl.transport.tcp`: the backends.
* :mod:`dfl.transport.factory`: the registry of backends and ``make_network``.

Transports import no algorithm: they move validated bytes.
"""

from dfl.transport.base import FramedTransport, SendStats, Transport
from dfl.transport.factory import (
    Backend,
    NetworkOptions,
    make_network,
    make_transport,
    register,
)
from dfl.transport.faults import FaultInjector, FaultStats, straggler_delay
from dfl.transport.inbox import Inbox, Received, Rejection, TransportClosedError
from dfl.transport.loopback import LoopbackNetwork, LoopbackTransport
from dfl.transport.wire import (
    DEFAULT_CHECKSUM,
    DEFAULT_CHUNK_BYTES,
    HEADER_NBYTES,
    Checksum,
    Kind,
    Payload,
    WireError,
    WireSpec,
    encode_payload,
    header_nbytes,
    message_nbytes,
    parse_header,
    run_digest,
)

__all__ = [
    "DEFAULT_CHECKSUM",
    "DEFAULT_CHUNK_BYTES",
    "HEADER_NBYTES",
    "Backend",
    "Checksum",
    "FaultInjector",
    "FaultStats",
    "FramedTransport",
    "Inbox",
    "Kind",
    "LoopbackNetwork",
    "LoopbackTransport",
    "NetworkOptions",
    "Payload",
    "Received",
    "Rejection",
    "SendStats",
    "Transport",
    "TransportClosedError",
    "WireError",
    "WireSpec",
    "encode_payload",
    "header_nbytes",
    "make_network",
    "make_transport",
    "message_nbytes",
    "parse_header",
    "register",
    "run_digest",
    "straggler_delay",
]
