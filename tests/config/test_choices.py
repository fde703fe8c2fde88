"""Per-choice schemas, closed keys (also with '+'), Enums and the learning-rate check."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from dfl.algorithms import ALGORITHMS
from dfl.cli import to_config
from dfl.compression import COMPRESSORS
from dfl.config import algorithm_schema, compression_schema
from dfl.config.choices import Accountant, Partition, Sampling
from dfl.config.optimizer_checks import learning_rate_problem
from dfl.config.store import conf_dir
from dfl.data import SCHEMES
from dfl.experiment import validate_config
from dfl.privacy.accounting import ACCOUNTANTS, SAMPLINGS
from tests.conftest import compose_config

COMPOSE_ERRORS = (ConfigCompositionException, ValidationError)


@pytest.mark.parametrize(
    "overrides",
    [
        ["algorithm=dsgd", "algorithm.gamma=0.3"],
        ["algorithm=dsgdm", "algorithm.order=cta"],
        ["algorithm=choco", "algorithm.momentum=0.5"],
        ["compression=top_k", "compression.levels=4"],
        ["compression=qsgd", "compression.fraction=0.1"],
        ["compression=sign", "compression.rank=2"],
    ],
)
def test_option_of_another_choice_fails_at_compose(overrides):
    with pytest.raises(COMPOSE_ERRORS, match=overrides[-1].split("=")[0].split(".")[-1]):
        compose_config(overrides)


def test_option_of_the_choice_reaches_its_schema():
    cfg = to_config(compose_config(["algorithm=choco", "algorithm.gamma=0.3", "compression=qsgd"]))
    assert isinstance(cfg.algorithm, algorithm_schema.ChocoConfig)
    assert (cfg.algorithm.gamma, cfg.algorithm.local_steps) == (0.3, 1)
    assert isinstance(cfg.compression, compression_schema.QSGDConfig)
    assert (cfg.compression.levels, cfg.compression.bucket_size) == (16, 512)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("+topolgy.n=8", "'topolgy' (did you mean 'topology'?)"),
        ("+topology.nn=8", "'topology.nn' (did you mean 'topology.n'?)"),
        (
            "+algorithm.gamma=0.3",
            "'algorithm.gamma' (algorithm=dsgd takes: name, local_steps, order)",
        ),
        ("+data.batchsize=8", "'data.batchsize' (did you mean 'data.batch_size'?)"),
    ],
)
def test_key_added_with_plus_outside_the_schema_is_an_error(override, named):
    cfg = compose_config([override])  # Hydra's '+' bypasses the schema's key check ...
    with pytest.raises(ValueError, match="unknown config key") as e:
        to_config(cfg)  # ... so building the Config refuses it
    assert named in str(e.value)


def test_plus_typo_is_an_error_from_the_command_line(capsys):
    from dfl.inspect import main

    with pytest.raises(SystemExit) as e:
        main(["+topolgy.n=8"])
    assert e.value.code == 2
    assert "dfl: error: unknown config key 'topolgy'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("algorithm.order=ctx", "atc, cta"),
        ("model.init=shared", "same, independent"),
        ("data.partition=dirichelt", "iid, dirichlet, shards, natural"),
        ("privacy.accountant=gdp", "rdp, pld"),
    ],
)
def test_string_choices_are_enums_checked_at_compose(override, allowed):
    with pytest.raises(COMPOSE_ERRORS) as e:
        compose_config([override])
    cause = e.value.__cause__ or e.value
    assert allowed in str(cause)


def test_enums_list_what_the_library_accepts():
    assert set(Partition) == set(SCHEMES)
    assert set(Accountant) == set(ACCOUNTANTS) and set(Sampling) == set(SAMPLINGS)


def test_every_group_file_has_its_schema_and_every_field_reaches_the_builder():
    algorithms = {p.stem for p in (conf_dir() / "algorithm").glob("*.yaml")}
    compressors = {p.stem for p in (conf_dir() / "compression").glob("*.yaml")}
    assert algorithms == set(algorithm_schema.SCHEMAS) and algorithms <= set(ALGORITHMS)
    assert compressors == set(compression_schema.SCHEMAS) == set(COMPRESSORS)
    for name, schema in algorithm_schema.SCHEMAS.items():
        fields = {f.name for f in dataclasses.fields(schema)} - {"name", "local_steps"}
        assert fields <= set(inspect.signature(ALGORITHMS[name]).parameters), name
        assert to_config(compose_config([f"algorithm={name}"])).algorithm.name == name
    for name, schema in compression_schema.SCHEMAS.items():
        fields = {f.name for f in dataclasses.fields(schema)} - {"name"}
        assert fields <= set(inspect.signature(COMPRESSORS[name]).parameters), name


@pytest.mark.parametrize("lr", ["-0.1", "0", "abc"])
def test_learning_rate_must_be_positive(lr):
    cfg = to_config(compose_config([f"optimizer.learning_rate={lr}"]))
    with pytest.raises(
        ValueError, match=r"optimizer\.learning_rate=.* \(expected a positive number\)"
    ):
        validate_config(cfg)


def test_learning_rate_schedules_and_positive_numbers_pass():
    assert learning_rate_problem({"_target_": "optax.sgd", "learning_rate": 0.05}) is None
    cfg = to_config(compose_config(["optimizer=sgd_cosine"]))
    validate_config(cfg)
    assert learning_rate_problem({"_target_": "optax.sgd", "learning_rate": -1}) is not None


@pytest.mark.parametrize(
    ("preset", "optimizer", "lr"),
    [
        ("ring_dsgd_digits", "adam", 0.001),
        ("ring_dsgd_digits", "sgd", 0.1),
        ("study_algorithms", "adam", 0.001),
        ("study_algorithms", "sgd", 0.05),
        ("study_compression", "adam", 0.001),
        ("study_compression", "sgd", 0.05),
    ],
)
def test_preset_learning_rate_belongs_to_its_optimizer(preset, optimizer, lr):
    cfg = compose_config([f"+experiment={preset}", f"optimizer={optimizer}"])
    assert cfg.optimizer.learning_rate == lr
    cfg = compose_config(
        [f"+experiment={preset}", f"optimizer={optimizer}", "optimizer.learning_rate=0.3"]
    )
    assert cfg.optimizer.learning_rate == 0.3


def test_topology_n_below_two_is_an_error():
    with pytest.raises(ValueError, match=r"topology\.n=1 \(expected ≥ 2"):
        validate_config(to_config(compose_config(["topology.n=1"])))
