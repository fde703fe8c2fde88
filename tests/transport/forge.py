"""Forged frames for the rejection tests."""

from __future__ import annotations

import dataclasses

from dfl.transport.wire import HEADER_NBYTES, parse_header


def reheader(frame: bytes, **changes) -> bytes:
    """``frame`` with header fields replaced (the header checksum recomputed, so
    only the receiver's deeper checks can tell)."""
    forged = dataclasses.replace(parse_header(frame), **changes)
    return forged.pack() + frame[HEADER_NBYTES:]
