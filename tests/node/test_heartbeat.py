"""A waiting standalone node says, every few seconds, what it waits for."""

from __future__ import annotations

import threading
import time

from dfl.node.heartbeat import HEARTBEAT_S, Heartbeat


def test_a_quiet_node_logs_what_it_waits_for_and_a_finished_round_resets_the_clock():
    lines: list[str] = []
    got = threading.Event()

    def emit(line: str) -> None:
        lines.append(line)
        got.set()

    beat = Heartbeat(3, lambda t: {4, 2} if t == 0 else {2}, lambda t: "up to 300s", every_s=0.05)
    beat.emit = emit
    beat.start()
    try:
        assert got.wait(5.0)
        assert lines[0].startswith("node 3: no round finished for ")
        assert (
            "(at round 0: it needs the messages of node(s) [2, 4] and waits up to 300s)" in lines[0]
        )
        beat.beat(7)
        assert "at round 7: it needs the messages of node(s) [2]" in beat.line()
        assert beat.line(now=time.monotonic() + 12.0).count("for 12s") == 1
    finally:
        beat.stop()
    count = len(lines)
    time.sleep(0.2)
    assert len(lines) == count  # stopped


def test_no_line_while_rounds_keep_finishing():
    lines: list[str] = []
    beat = Heartbeat(0, lambda t: {1}, lambda t: "", every_s=0.2, emit=lines.append).start()
    try:
        for t in range(10):
            time.sleep(0.05)
            beat.beat(t + 1)
    finally:
        beat.stop()
    assert lines == []
    assert HEARTBEAT_S <= 5.0  # "at least every few seconds"
