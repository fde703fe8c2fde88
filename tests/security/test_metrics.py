"""Metrics count validated bytes and frames (issue 13, finding 7).

Before: ``bytes_received_per_node`` counted each header's declared length before
any check (one header made it 1.1e12), and forged old-round frames counted as
``messages_late``.
"""

from __future__ import annotations

import time

from dfl.transport import HEADER_NBYTES, Kind, message_nbytes
from tests.security.frames import TREE, feed, frames, inbox
from tests.transport.forge import reheader


def test_a_header_declaring_2_to_the_40_bytes_inflates_nothing():
    box = inbox()
    huge = reheader(frames(round_=1)[0], total=1 << 40, length=1 << 40)
    slot = box.begin(huge[:HEADER_NBYTES], sender=1)
    assert slot is not None and slot.view is None  # rejected: nothing to read into
    feed(box, frames(round_=0), 1)
    box.collect(0, Kind.WIRE, [1], time.monotonic() + 5)
    assert box.received_bytes(Kind.WIRE) == message_nbytes(TREE, 1 << 20)
    assert box.rejected_bytes() == HEADER_NBYTES  # the header alone: its length is unbelievable


def test_forged_old_rounds_are_not_late_messages():
    box = inbox()
    box.collect(5, Kind.WIRE, [], time.monotonic())
    feed(box, frames(round_=2), None)  # bound to no member
    feed(box, frames(round_=3, sender=2), 1)  # node 2's old round on node 1's channel
    feed(box, [reheader(frames(round_=1)[0], schema=b"\1" * 16)], 1)  # old and malformed
    got = box.collect(5, Kind.WIRE, [], time.monotonic())
    assert got.rejected_count == 3 and got.late_count == 0
    feed(box, frames(round_=4), 1)  # a straggler: valid, on its own channel
    got = box.collect(5, Kind.WIRE, [], time.monotonic())
    assert got.rejected_count == 1 and got.late_count == 1
    assert box.received_bytes(Kind.WIRE) == 0  # none of it was used
