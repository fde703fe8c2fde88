"""Genuine and forged frames for the security tests (one small message layout)."""

from __future__ import annotations

import numpy as np

from dfl.transport import Inbox, Kind, WireSpec, encode_payload, run_digest

RUN = run_digest("security")
TREE = {"w": np.arange(60, dtype=np.float32).reshape(6, 10), "b": np.ones(10, np.float32)}
SPEC = WireSpec.from_tree(TREE)


def frames(
    *, sender: int = 1, recipient: int = 0, round_: int = 0, chunk: int = 1 << 20, run=RUN
) -> list[bytes]:
    """The frames of one genuine message of ``TREE``."""
    payload = encode_payload(SPEC, TREE, chunk_bytes=chunk)
    return [
        b"".join(f)
        for f in payload.frames(
            run=run, sender=sender, recipient=recipient, round=round_, kind=Kind.WIRE
        )
    ]


def inbox(n: int = 4, node: int = 0, **kw) -> Inbox:
    """Node ``node``'s inbox of an ``n``-node run expecting ``TREE`` messages."""
    box = Inbox(node, n, RUN, **kw)
    box.expect(Kind.WIRE, SPEC)
    return box


def feed(box: Inbox, frames_: list[bytes], channel: int | None) -> None:
    """Feeds ``frames_`` as arriving on node ``channel``'s bound channel (``None``: unbound)."""
    for f in frames_:
        box.feed(f, sender=channel)
