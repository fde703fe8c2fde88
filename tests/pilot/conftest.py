"""Pilot fixtures: the rendezvous binary, built once per test run.

The tests skip, with the reason printed, only where root, ``unshare``, Go or
``../shared/pilot`` are missing, and never under ``CI=true`` (there they fail).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.pilot.isolated import missing_prerequisite, shared_dir


@pytest.fixture(scope="session")
def rendezvous(tmp_path_factory) -> str:
    """The path of a rendezvous binary (``$DFL_PILOT_RENDEZVOUS``, else built from ../shared)."""
    reason = missing_prerequisite()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Pilot tests cannot run under CI=true: {reason}")
        print(f"\nskipping the Pilot tests: {reason}")
        pytest.skip(reason)
    given = os.environ.get("DFL_PILOT_RENDEZVOUS")
    if given:
        return given
    shared = shared_dir()
    assert shared is not None
    out = tmp_path_factory.mktemp("rendezvous") / "rendezvous"
    subprocess.run(
        [str(shared / "build-rendezvous.sh"), str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return str(out)
