"""The structured schema rejects typos and wrong types at compose time."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from dfl.cli import to_config
from dfl.config import Config
from tests.conftest import compose_config

COMPOSE_ERRORS = (ConfigCompositionException, ValidationError)


def test_default_config_composes_to_schema():
    cfg = to_config(compose_config([]))
    assert isinstance(cfg, Config)
    assert (cfg.topology.name, cfg.topology.n) == ("ring", 16)
    assert cfg.optimizer["_target_"] == "optax.sgd"


@pytest.mark.parametrize(
    "override",
    ["topology.nn=4", "rounds_typo=3", "algorithm.local_step=2", "data.batchsize=8"],
)
def test_unknown_key_fails_at_compose_time(override):
    with pytest.raises(COMPOSE_ERRORS):
        compose_config([override])


@pytest.mark.parametrize(
    "override", ["rounds=many", "topology.n=1.5", "eval_every=[1]", "seed=abc"]
)
def test_wrong_type_fails_at_compose_time(override):
    with pytest.raises(COMPOSE_ERRORS):
        compose_config([override])


def test_unknown_group_option_fails():
    with pytest.raises(COMPOSE_ERRORS, match="topology"):
        compose_config(["topology=ringg"])


def test_stable_top_level_names():
    cfg = compose_config(["topology.n=7", "rounds=3", "seed=5", "eval_every=2"])
    assert (cfg.topology.n, cfg.rounds, cfg.seed, cfg.eval_every) == (7, 3, 5, 2)
    for key in ("algorithm", "topology", "mixing", "data", "model"):
        assert key in cfg


def test_schedule_resolver_multiplies():
    cfg = compose_config(["optimizer=sgd_cosine", "rounds=10", "algorithm.local_steps=3"])
    assert cfg.optimizer.learning_rate.decay_steps == 30
