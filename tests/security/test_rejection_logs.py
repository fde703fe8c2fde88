"""Rejections cost a bounded amount of log and memory (issue 13, finding 6).

Before: every rejected 96-byte frame wrote a ~260-byte log line (a 200k-frame
flood: +51-60 MB of logs), and the rejections of a long wait piled up in memory.
"""

from __future__ import annotations

import logging
import time

from dfl.transport import Kind
from dfl.transport.rejections import KEEP_RECENT, LOG_FIRST, RejectionLog, reason_kind
from tests.security.frames import feed, frames, inbox
from tests.transport.forge import reheader


def test_ten_thousand_rejected_frames_log_a_bounded_number_of_lines(caplog):
    box = inbox()
    genuine = frames(round_=0)[0]
    outsider = reheader(genuine, run=b"\1" * 16)  # bound to no member: never settles
    member = [reheader(genuine, round=r) for r in range(2000, 2005)]  # past the window
    with caplog.at_level(logging.INFO, logger="dfl.transport"):
        for i in range(5_000):
            feed(box, [outsider], None)
            feed(box, [member[i % 5]], 1)  # the numbers differ, the reason is one
        got = box.collect(0, Kind.WIRE, [1], time.monotonic())
    lines = [r for r in caplog.records if "rejected" in r.getMessage()]
    # LOG_FIRST in full per (sender, reason), and at most a summary line.
    assert len(lines) <= 2 * LOG_FIRST + 1, len(lines)
    assert got.rejected_count == 10_000 == box.stats.rejected
    assert len(got.rejections) == KEEP_RECENT  # what the receive hands over is bounded


def test_the_summary_counts_what_was_not_logged(caplog):
    now = [0.0]
    rl = RejectionLog(0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="dfl.transport"):
        for r in range(LOG_FIRST + 7):
            rl.rejected(f"old round {r} (this node is at round 99)", 1, r)
        now[0] = 1e6
        rl.flush()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == LOG_FIRST + 1
    assert "rejected 7 more frames" in messages[-1]
    assert reason_kind("old round 4 (at 12)") == reason_kind("old round 5 (at 13)")
