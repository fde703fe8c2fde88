"""The pure header checks: one reason per problem, shared by the inbox and tcp's hello."""

from __future__ import annotations

import dataclasses

import numpy as np

from dfl.transport import Kind, WireSpec, encode_payload, run_digest
from dfl.transport.validate import (
    Receiver,
    Window,
    addressing_problem,
    hello_problem,
    message_problem,
    notice_problem,
)
from dfl.transport.wire import parse_header

RUN = run_digest("t")
ME = Receiver(node_id=0, num_nodes=3, run=RUN)
TREE = {"w": np.array([1.0, 2.0], np.float32)}
SPEC = WireSpec.from_tree(TREE)


def header(**changes):
    payload = encode_payload(SPEC, TREE)
    frame = payload.frames(run=RUN, sender=1, recipient=0, round=4, kind=Kind.WIRE)[0]
    return dataclasses.replace(parse_header(frame.header()), **changes)


def test_addressing():
    assert addressing_problem(header(), ME) is None
    assert addressing_problem(header(), ME, bound=1) is None
    assert "wrong run id" in str(addressing_problem(header(run=run_digest("x")), ME))
    assert addressing_problem(header(recipient=2), ME) == "addressed to node 2, not 0"
    assert addressing_problem(header(sender=0), ME) == "unknown sender 0 (nodes are 0..2)"
    assert addressing_problem(header(sender=3), ME) == "unknown sender 3 (nodes are 0..2)"
    assert addressing_problem(header(), ME, bound=2) == "sender 1 on the connection of node 2"


def test_hello_reuses_the_addressing_checks():
    hello = header(kind=Kind.HELLO, length=0, total=0)
    assert hello_problem(hello, ME) is None
    assert hello_problem(header(), ME) == "connection did not start with HELLO (kind 1)"
    assert hello_problem(dataclasses.replace(hello, recipient=2), ME) == (
        "connection handshake: addressed to node 2, not 0"
    )


def test_notice_must_be_header_only():
    empty = WireSpec.empty()
    notice = header(kind=Kind.WAITING, length=0, total=0, schema=empty.digest)
    assert notice_problem(notice, empty) is None
    assert notice_problem(dataclasses.replace(notice, total=8), empty) == "malformed WAITING notice"


def test_message_checks_and_which_settle():
    window = Window(floor=4, max_rounds_ahead=2)
    assert message_problem(header(), SPEC, window) is None
    old = message_problem(header(round=3), SPEC, window)
    assert old is not None and old.late and old.settles and "old round 3" in old.reason
    ahead = message_problem(header(round=7), SPEC, window)
    assert ahead is not None and not ahead.settles and "more than 2 rounds ahead" in ahead.reason
    stranger = message_problem(header(), SPEC, window, senders=lambda r: {2})
    assert stranger is not None and not stranger.settles
    assert "node 1 is not an in-neighbour of node 0 at round 4" in stranger.reason
    schema = message_problem(header(schema=b"\0" * 16), SPEC, window)
    assert schema is not None and schema.settles and "schema digest" in schema.reason
    size = message_problem(header(), SPEC, window, max_message_bytes=4)
    assert size is not None and size.settles and size.reason == "payload of 8 bytes, expected 8"
    chunks = message_problem(header(chunk_count=9), SPEC, window)
    assert chunks is not None and chunks.reason == "9 chunks for 8 bytes"
