"""Shared fixtures: composing configs the way ``python -m dfl.train`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from dfl.config.store import conf_dir, register

register()

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def compose_config(overrides: list[str]) -> DictConfig:
    """Composes ``conf/config.yaml`` with ``overrides`` (Hydra's compose API)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
