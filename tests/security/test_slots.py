"""A member can only affect its own messages (issue 13, finding 4).

Before: 16 never-finished future-round frames of "node 1" filled its 8 pending
slots, and node 0 then rejected node 1's genuine messages ("over 8 pending"); a
truncated frame held open made the genuine message of its round a silent
"duplicate"; a rejected frame did not end the wait for its round.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from dfl.transport import HEADER_NBYTES, Kind
from tests.security.frames import SPEC, TREE, feed, frames, inbox
from tests.transport.forge import reheader


def test_junk_for_other_rounds_neither_blocks_nor_evicts_genuine_messages():
    box = inbox()
    # 16 frames "of node 1" opening messages of far rounds that never finish
    # (chunk 0 of 2), on node 1's own channel, plus one of round 3.
    junk = [reheader(frames(round_=r)[0], chunk_count=2) for r in [*range(500, 516), 3]]
    feed(box, frames(round_=1), 1)  # a genuine message held for a later round
    feed(box, junk, 1)
    for r in range(3):
        if r != 1:
            feed(box, frames(round_=r), 1)
        got = box.collect(r, Kind.WIRE, [1], time.monotonic() + 5)
        assert list(got.messages) == [1], (r, got.rejections)
        np.testing.assert_array_equal(SPEC.unflatten(got.messages[1])["w"], TREE["w"])
    assert box.stats.rejected == 0


def test_a_frame_failing_on_a_bound_channel_ends_the_wait_for_its_round_at_once():
    box = inbox()
    forged = reheader(frames(round_=0)[0], sender=2)  # node 1's channel names node 2
    feed(box, [forged], 1)
    began = time.monotonic()
    got = box.collect(0, Kind.WIRE, [1, 2], began + 0.5, give_up_after={2: 0.0})
    assert time.monotonic() - began < 0.4  # not the 0.5 s deadline
    assert "sender 2 on the connection of node 1" in got.rejected[1]


def test_frames_bound_to_no_member_never_end_a_wait():
    box = inbox()
    feed(box, [reheader(frames(round_=0)[0], schema=b"\0" * 16)], None)
    threading.Timer(0.1, feed, (box, frames(round_=0), 1)).start()
    got = box.collect(0, Kind.WIRE, [1], time.monotonic() + 5)
    assert list(got.messages) == [1] and got.rejected == {}


def test_a_truncated_frame_held_open_does_not_shadow_the_genuine_message():
    box = inbox()
    genuine = frames(round_=0)[0]
    stalled = box.begin(genuine[:HEADER_NBYTES], sender=1)  # its chunk never comes
    assert stalled is not None and stalled.view is not None
    feed(box, [genuine], 1)  # the genuine copy (e.g. on a new connection)
    got = box.collect(0, Kind.WIRE, [1], time.monotonic() + 0.5)
    assert list(got.messages) == [1] and box.stats.duplicates == 0
    stalled.view[:] = genuine[HEADER_NBYTES:]
    box.end(stalled)  # the stalled copy ends into its abandoned buffer
    assert box.stats.rejected == 0
