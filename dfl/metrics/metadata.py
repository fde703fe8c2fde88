"""Run metadata written beside the metrics: commit, versions, devices, seed."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import jax

PACKAGES = ("dfl", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "hydra-core", "numpy")


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The checked-out commit of the dfl source tree (``None`` outside git)."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on."""
    result: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            result[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            result[name] = None
    return result


def run_metadata(seed: int, **extra: Any) -> dict[str, Any]:
    """Everything needed to tell where a result came from."""
    return {
        "seed": seed,
        "git_commit": git_commit(),
        "versions": versions(),
        "python": platform.python_version(),
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_backend": jax.default_backend(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(),
        **extra,
    }
