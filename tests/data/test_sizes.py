"""A batch larger than a node's data is warned about, naming the node and the sizes."""

from __future__ import annotations

import warnings

import pytest

from dfl.data.sizes import check_batch_size


def test_warns_naming_the_smallest_node_and_the_sizes():
    with pytest.warns(UserWarning) as caught:
        message = check_batch_size([40, 30, 50, 31], 32)
    assert message == str(caught[0].message)
    assert message is not None
    assert message.startswith("data.batch_size=32 is larger than node 1's 30 training examples")
    assert "(2 of 4 nodes hold fewer than 32)" in message


def test_silent_when_every_node_holds_a_batch():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_batch_size([32, 40], 32) is None


def test_build_experiment_warns(compose_cfg):
    from dfl.cli import instantiate_optimizer, to_config
    from dfl.experiment import build_experiment

    cfg = compose_cfg(["topology.n=64", "data.batch_size=64", "model=logreg"])
    with pytest.warns(
        UserWarning, match=r"data.batch_size=64 is larger than node \d+'s \d+ training"
    ):
        build_experiment(to_config(cfg), instantiate_optimizer(cfg))
