"""Every compression and privacy preset composes against the schema and builds."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from dfl.compression import build_compressor
from dfl.config.compression_schema import CompressionConfig
from dfl.config.privacy_schema import PrivacyConfig
from dfl.config.store import conf_dir
from dfl.privacy import plan_privacy
from tests.conftest import compose_config

COMPRESSION = sorted(p.stem for p in (conf_dir() / "compression").glob("*.yaml"))
PRIVACY = sorted(p.stem for p in (conf_dir() / "privacy").glob("*.yaml"))


def test_presets_compose_and_build():
    for name in COMPRESSION:
        cfg = compose_config([f"compression={name}"])
        compression = OmegaConf.to_object(cfg.compression)
        assert isinstance(compression, CompressionConfig)
        options = dataclasses.asdict(compression)
        assert build_compressor(options.pop("name"), **options).name == name
    for name in PRIVACY:
        cfg = compose_config([f"privacy={name}"])
        privacy = OmegaConf.to_object(cfg.privacy)
        assert isinstance(privacy, PrivacyConfig)
        if privacy.enabled:
            plan = plan_privacy(privacy, counts=[300, 200], batch_size=8, rounds=5, local_steps=1)
            assert plan.noise_multiplier > 0


def test_schema_rejects_typos():
    with pytest.raises(Exception, match="levls"):
        compose_config(["compression=qsgd", "compression.levls=4"])
    with pytest.raises(Exception, match="noise_multiplier"):
        compose_config(["privacy=dp_sgd", "privacy.noise_multiplier=lots"])
