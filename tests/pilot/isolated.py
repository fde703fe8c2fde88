"""Runs a scenario script in its own loopback-only network and PID namespace.

``run_isolated(name, ...)`` re-executes ``tests/pilot/scenarios/<name>.py`` under
``unshare --net --pid --fork --kill-child --mount-proc`` (root): the Pilot
daemons it starts can reach nothing but each other, and every process it left
behind dies with it. The scenario asserts; a non-zero exit fails the test with
its output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def shared_dir() -> Path | None:
    """The project's ``../shared/pilot`` (beside the repository, or beside its worktrees)."""
    env = os.environ.get("DFL_PILOT_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "pilot", REPO.parent.parent / "shared" / "pilot"]
    for c in candidates:
        if (c / "build-rendezvous.sh").exists():
            return c
    return None


def missing_prerequisite() -> str | None:
    """Why the Pilot tests cannot run here, or ``None``."""
    if not sys.platform.startswith("linux"):
        return "Pilot tests need Linux network namespaces"
    if os.geteuid() != 0:
        return "Pilot tests need root (unshare --net)"
    if shutil.which("unshare") is None:
        return "Pilot tests need util-linux `unshare`"
    try:
        import pilotprotocol  # noqa: F401
    except ImportError:
        return "pilotprotocol is not installed (pip install -e '.[dev]')"
    if not os.environ.get("DFL_PILOT_RENDEZVOUS"):
        if shutil.which("go") is None:
            return "Go is not installed (needed to build the Pilot rendezvous)"
        if shared_dir() is None:
            return "../shared/pilot (the rendezvous source) is missing"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"unshare --net fails here: {probe.stderr.decode().strip()}"
    return None


def run_isolated(
    scenario: str, *args: str, rendezvous: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Runs ``scenarios/<scenario>.py args...`` in a fresh loopback-only namespace."""
    env = dict(os.environ, DFL_PILOT_RENDEZVOUS=rendezvous, PYTHONPATH=str(REPO))
    env.pop("PILOT_REGISTRY", None)
    env.pop("PILOT_BEACON", None)
    cmd = [
        "unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
        sys.executable, str(HERE / "scenarios" / "inside.py"),
        str(HERE / "scenarios" / f"{scenario}.py"), *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def check(result: subprocess.CompletedProcess[str]) -> str:
    """The scenario's stdout; fails with its whole output when it did not exit 0."""
    if result.returncode != 0:
        raise AssertionError(
            f"scenario exited with {result.returncode}\n--- stdout\n{result.stdout[-6000:]}"
            f"\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result.stdout
