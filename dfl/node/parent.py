"""A node process started by ``python -m dfl.launch`` dies with its launcher.

The launcher puts its PID in ``$DFL_LAUNCHER_PID``; the node asks the kernel for
SIGTERM when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``), which covers a
SIGKILLed launcher (no handler of its own runs then). A parent-death signal and not
a process group the launcher kills: the kernel sends it whatever killed the
launcher, and the nodes keep their own session so a terminal's Ctrl-C reaches only
the launcher (which stops them itself). It is set in the node, not in a
``preexec_fn``: forking a process that runs JAX's threads and then running Python
before ``exec`` risks a deadlock. The signal follows the thread that started the
node: the launcher starts nodes from its main thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Mapping

PARENT_ENV = "DFL_LAUNCHER_PID"
"""The launcher's PID, in the environment of the node processes it starts."""

PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal a process gets when its parent (thread) dies."""


def die_with_launcher(environ: Mapping[str, str] = os.environ) -> None:
    """Under a launcher (``$DFL_LAUNCHER_PID``, Linux): SIGTERM this process when it dies;
    exits at once (status 1) if it has died already. Elsewhere: nothing."""
    launcher = environ.get(PARENT_ENV)
    if not launcher or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        print(f"dfl: warning: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}", file=sys.stderr)
        return
    if os.getppid() != int(launcher):  # it died before prctl: no signal will come
        print(f"dfl: error: the launcher (pid {launcher}) is gone", file=sys.stderr)
        raise SystemExit(1)
