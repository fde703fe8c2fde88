"""Registers the structured-config schemas with Hydra's ConfigStore, and dfl's resolvers."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from dfl.config import algorithm_schema, byzantine_schema, compression_schema
from dfl.config.schema import Config

SCHEMA_NAME = "config_schema"

MAX_DIRNAME = 200
"""Longest sweep-job directory name before :func:`run_dirname` shortens it (file
systems allow 255 bytes per name; the rest is room for suffixes)."""


def register() -> None:
    """Stores the schemas and adds the ``mul`` and ``run_dirname`` resolvers.

    :class:`Config` is stored as ``config_schema``; each algorithm's and
    compressor's and robust rule's schema as ``schema/algorithm/NAME``,
    ``schema/compression/NAME`` and ``schema/byzantine/NAME``
    (the group files start from them). ``${mul:a,b}`` multiplies numbers (e.g. a
    schedule's ``decay_steps: ${mul:${rounds},${algorithm.local_steps}}``);
    ``${run_dirname:${hydra.job.override_dirname}}`` names a sweep job's directory
    (:func:`run_dirname`).
    """
    cs = ConfigStore.instance()
    cs.store(name=SCHEMA_NAME, node=Config)
    for name, node in algorithm_schema.SCHEMAS.items():
        cs.store(group="schema/algorithm", name=name, node=node)
    for name, node in compression_schema.SCHEMAS.items():
        cs.store(group="schema/compression", name=name, node=node)
    for name, node in byzantine_schema.SCHEMAS.items():
        cs.store(group="schema/byzantine", name=name, node=node)
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", lambda *xs: _product(xs))
    if not OmegaConf.has_resolver("run_dirname"):
        OmegaConf.register_new_resolver("run_dirname", run_dirname)


def run_dirname(overrides: str, limit: int = MAX_DIRNAME) -> str:
    """A directory name for a sweep job made of its overrides (Hydra's ``override_dirname``).

    ``/`` (a path in a value) becomes ``%2F`` so one job is one directory; a job
    without overrides is ``default``. A name longer than ``limit`` characters keeps
    its first ``limit - 17`` characters and ends in ``-`` and 16 hex digits of the
    SHA-256 of the whole name, so distinct override sets stay distinct.

    Examples:
      >>> run_dirname("algorithm=choco,seed=1")
      'algorithm=choco,seed=1'
      >>> len(run_dirname("x=" + "a" * 300))
      200
    """
    name = str(overrides).replace("/", "%2F") or "default"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: limit - 17]}-{digest}"


def _product(xs) -> float | int:
    result = 1
    for x in xs:
        result *= x
    return result


def conf_dir() -> Path:
    """The ``conf/`` directory: inside the installed wheel, or beside the source tree."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"dfl's conf/ directory is missing (looked in {here} and its parent)")
