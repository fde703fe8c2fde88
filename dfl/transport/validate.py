"""Pure checks of a parsed frame header: each returns why a frame is refused, or ``None``.

Sans-I/O, in the manner of h11's readers: these functions see a
:class:`~dfl.transport.wire.Header` and plain values (who this node is, what it
expects, where its round is) and never touch sockets, threads, clocks or inbox
state, so every backend (loopback, tcp, pilot) and tcp's connection handshake
share one set of checks and one wording of every reason.

:func:`~dfl.transport.wire.parse_header` has already checked the header itself
(magic, version, header checksum, flags, chunk fields). The checks here come in
the order the inbox applies them, because the order decides what a frame
costs its sender:

1. :func:`addressing_problem`: the run, the recipient, the sender's id, the
   sender a connection is bound to. A frame failing here comes from outside the
   run (or from a confused peer) and never settles anybody's message.
2. :func:`notice_problem`: a ``WAITING`` notice is header-only.
3. (the inbox: a frame of a message already finished is a duplicate, ignored.)
4. :func:`message_problem`: the round window, the sender's right to send at
   that round, the payload schema, size and chunk count, and last whether the
   round is closed (only a frame valid in every other respect is ``late``). Its
   :class:`Problem` says whether the message of ``(sender, round, kind)`` is
   thereby rejected (the receiver stops waiting for it) or only this frame is
   dropped (outside the window, or from a node not sending at that round).

On a channel bound to a sender (tcp, Pilot, loopback), a frame failing any
check but the window's settles the bound sender's message of the frame's round
as rejected at once: a member can only affect its own messages. A frame bound
to no member never ends a wait.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

from dfl.transport.wire import Header, Kind, WireSpec

Senders = Callable[[int], Collection[int]]
"""``senders(round)``: the nodes allowed to send a message kind at ``round``."""


@dataclasses.dataclass(frozen=True)
class Receiver:
    """Who a frame must be addressed to.

    Attributes:
      node_id: this node.
      num_nodes: nodes of the run (senders must lie in ``[0, num_nodes)``).
      run: the run digest (:func:`dfl.transport.wire.run_digest`).
    """

    node_id: int
    num_nodes: int
    run: bytes


@dataclasses.dataclass(frozen=True)
class Window:
    """The rounds a node accepts frames for: ``[floor, floor + max_rounds_ahead]``.

    Attributes:
      floor: the node's current round (older rounds are closed).
      max_rounds_ahead: how far ahead of ``floor`` a frame may be (bounds what a
        peer can make the node buffer).
    """

    floor: int
    max_rounds_ahead: int

    @property
    def last(self) -> int:
        """The furthest round accepted."""
        return self.floor + self.max_rounds_ahead


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why a frame is refused by :func:`message_problem`.

    Attributes:
      reason: logged and reported in :class:`~dfl.transport.inbox.Rejection`.
      settles: the message of the frame's ``(sender, round, kind)`` is rejected
        as a whole (its receiver stops waiting for it); ``False``: only this
        frame is dropped (e.g. a round outside the window, a non-neighbour).
      late: a valid-looking message of a round already closed (its sender is
        behind), not a malformed one.
    """

    reason: str
    settles: bool = False
    late: bool = False


def addressing_problem(h: Header, me: Receiver, *, bound: int | None = None) -> str | None:
    """Whether ``h`` belongs to this run, this node and a sender of the run.

    Args:
      h: the parsed header.
      me: this node.
      bound: the sender the frame's connection is bound to (tcp, after its
        handshake), checked when given.
    """
    if h.run != me.run:
        return "wrong run id (a message from another run)"
    if h.recipient != me.node_id:
        return f"addressed to node {h.recipient}, not {me.node_id}"
    if not 0 <= h.sender < me.num_nodes or h.sender == me.node_id:
        return f"unknown sender {h.sender} (nodes are 0..{me.num_nodes - 1})"
    if bound is not None and h.sender != bound:
        return f"sender {h.sender} on the connection of node {bound}"
    return None


def hello_problem(h: Header, me: Receiver) -> str | None:
    """Whether ``h`` is a valid tcp connection handshake (``HELLO``) to this node."""
    if h.kind != Kind.HELLO:
        return f"connection did not start with HELLO (kind {h.kind})"
    problem = addressing_problem(h, me)
    return None if problem is None else f"connection handshake: {problem}"


def notice_problem(h: Header, spec: WireSpec) -> str | None:
    """Whether a ``WAITING`` notice is well formed (header only, the empty schema)."""
    if h.length == 0 and h.total == 0 and h.schema == spec.digest:
        return None
    return "malformed WAITING notice"


def message_problem(
    h: Header,
    spec: WireSpec,
    window: Window,
    *,
    senders: Senders | None = None,
    max_message_bytes: int = 1 << 31,
) -> Problem | None:
    """Whether a frame of a message not yet finished may be reassembled.

    Args:
      h: the parsed header (already addressed to this node, see
        :func:`addressing_problem`).
      spec: the layout expected for ``h.kind``.
      window: the rounds accepted now.
      senders: ``senders(round)`` for ``h.kind`` (``None``: any node of the run).
      max_message_bytes: larger messages are refused.
    """
    control = h.kind in (Kind.BYE, Kind.WAITING)
    if h.round > window.last:
        return Problem(
            f"round {h.round} is more than {window.max_rounds_ahead} rounds ahead of {window.floor}"
        )
    if senders is not None and h.sender not in senders(h.round):
        return Problem(
            f"node {h.sender} is not an in-neighbour of node {h.recipient} at round {h.round}"
        )
    if h.schema != spec.digest:
        return Problem(
            "payload schema digest mismatch (different shapes, dtypes or pytree "
            f"structure; expected {spec.description[:200]})",
            settles=True,
        )
    if h.total != spec.nbytes or h.total > max_message_bytes:
        return Problem(f"payload of {h.total} bytes, expected {spec.nbytes}", settles=True)
    if h.chunk_count > max(1, h.total):
        return Problem(f"{h.chunk_count} chunks for {h.total} bytes", settles=True)
    # Last: only a frame valid in every other respect is a straggler's late message.
    if h.round < window.floor and not control:
        return Problem(
            f"old round {h.round} (this node is at round {window.floor})", settles=True, late=True
        )
    return None
