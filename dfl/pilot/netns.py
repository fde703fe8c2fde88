"""The safety check every Pilot process start goes through: only ``lo`` in this namespace.

The daemons default to public servers (registry, beacon, telemetry, feeds). dfl
overrides each default, and on top of that refuses to start anything unless the
network namespace has no interface but loopback, so a missed default cannot
reach the internet.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

HOWTO = (
    "run it in a loopback-only network namespace, e.g. "
    "`sudo unshare --net --pid --mount-proc --fork --kill-child bash -c "
    "'ip link set lo up; python -m dfl.pilot up --nodes 4 --dir D; ...'`"
)


def interfaces(proc_net_dev: str | Path = "/proc/net/dev") -> list[str]:
    """The network interfaces of this process's namespace (``/proc/net/dev`` is per namespace)."""
    lines = Path(proc_net_dev).read_text().splitlines()[2:]
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line]


def require_loopback_only(proc_net_dev: str | Path = "/proc/net/dev") -> None:
    """Raises unless ``lo`` is the only interface here.

    Raises:
      RuntimeError: naming the other interfaces and how to get a namespace without them.
    """
    others = [name for name in interfaces(proc_net_dev) if name != "lo"]
    if others:
        raise RuntimeError(
            f"refusing to start Pilot daemons: this network namespace has interfaces "
            f"{others} besides lo, and the daemons' defaults point at public servers; {HOWTO}"
        )


def bring_up_loopback() -> None:
    """Sets ``lo`` up in this (fresh) namespace, like ``ip link set lo up`` (needs root)."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, request)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def exit_on_termination() -> None:
    """Makes SIGTERM and SIGINT end this process even when it is a namespace's PID 1.

    The kernel drops every signal without a handler that is sent to a PID namespace's
    init, so a Python process started by ``unshare --pid --fork`` would ignore
    ``timeout``'s SIGTERM and keep its daemons running; with a handler it exits, and
    ``--kill-child`` and the namespace's end take the daemons down with it.
    """
    if os.getpid() != 1:
        return

    def leave(signum: int, frame: object) -> None:
        del frame
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
