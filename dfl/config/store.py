"""Registers the structured-config schema with Hydra's ConfigStore."""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from dfl.config.schema import Config

SCHEMA_NAME = "config_schema"


def register() -> None:
    """Stores :class:`Config` as ``config_schema`` and adds the ``mul`` resolver.

    ``${mul:a,b}`` multiplies numbers in a config (e.g. a schedule's
    ``decay_steps: ${mul:${rounds},${algorithm.local_steps}}``).
    """
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", lambda *xs: _product(xs))


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
