"""``sim.distributed``: the arguments dfl passes to ``jax.distributed.initialize``."""

from __future__ import annotations

import dataclasses

import jax
import pytest

from dfl.config.schema import SimConfig
from dfl.sim import distributed
from dfl.sim.distributed import initialize_args

SIM = SimConfig(distributed=True)
README_ENV = {
    "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
    "JAX_NUM_PROCESSES": "2",
    "JAX_PROCESS_ID": "1",
}


def test_the_readme_environment_becomes_explicit_arguments():
    assert initialize_args(SIM, README_ENV) == {
        "coordinator_address": "10.0.0.1:1234",
        "num_processes": 2,
        "process_id": 1,
    }


def test_config_keys_win_over_the_environment():
    sim = dataclasses.replace(SIM, coordinator_address="h0:99", num_processes=4, process_id=3)
    assert initialize_args(sim, README_ENV) == {
        "coordinator_address": "h0:99",
        "num_processes": 4,
        "process_id": 3,
    }
    # process_id=0 is a value, not "unset"
    assert initialize_args(dataclasses.replace(SIM, process_id=0), README_ENV)["process_id"] == 0


def test_nothing_set_lets_jax_detect_a_cluster():
    assert initialize_args(SIM, {}) == {}
    assert initialize_args(SIM, {"SLURM_JOB_ID": "7", "JAX_COORDINATOR_ADDRESS": "h:1"}) == {
        "coordinator_address": "h:1"
    }


@pytest.mark.parametrize(
    "env, message",
    [
        ({"JAX_COORDINATOR_ADDRESS": "h:1"}, "sim.num_processes and sim.process_id"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, "needs sim.process_id"),
        ({"JAX_NUM_PROCESSES": "two"}, "'two'"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "sim.process_id=2 is outside 0..1"),
        ({"JAX_NUM_PROCESSES": "0"}, "must be >= 1, found 0"),
    ],
)
def test_incomplete_or_bad_settings_name_the_key(env, message):
    with pytest.raises(ValueError, match=message):
        initialize_args(SIM, env)


def test_initialize_passes_them_to_jax(monkeypatch):
    seen = {}
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: seen.update(kw))
    for k, v in README_ENV.items():
        monkeypatch.setenv(k, v)
    distributed.initialize(SIM)
    assert seen == {"coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}


def test_the_bind_address_is_passed_only_when_set():
    local = dataclasses.replace(SIM, coordinator_bind_address="127.0.0.1:1234")
    assert initialize_args(local, README_ENV)["coordinator_bind_address"] == "127.0.0.1:1234"
    assert "coordinator_bind_address" not in initialize_args(SIM, README_ENV)
