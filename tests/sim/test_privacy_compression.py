"""DP-SGD, message noise and compression through the simulation runner."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from dfl.cli import instantiate_optimizer, to_config
from dfl.privacy import dp_sgd_epsilon
from dfl.sim.runner import simulate
from tests.conftest import compose_config

TINY = ["data=digits", "model=logreg", "topology.n=4", "rounds=4", "eval_every=2"]


def run(overrides):
    cfg = compose_config(TINY + overrides)
    return simulate(to_config(cfg), instantiate_optimizer(cfg), progress=False)


def test_epsilon_per_node_uses_each_nodes_rate_and_all_local_steps():
    result = run(
        [
            "privacy=dp_sgd",
            "data.partition=dirichlet",
            "data.alpha=0.5",
            "algorithm.local_steps=3",
            "data.batch_size=16",
        ]
    )
    counts = np.asarray(result.experiment.federated.train.counts)
    assert len(set(counts.tolist())) > 1  # non-IID sizes: rates differ
    for record in result.records:
        steps = record["round"] * 3
        want = [dp_sgd_epsilon(1.0, 16 / n, steps, 1e-5, accountant="rdp") for n in counts]
        np.testing.assert_allclose(record["epsilon_per_node"], want, rtol=1e-9)
        assert record["epsilon"] == max(want)
        assert record["delta"] == 1e-5
    # The node with the fewest examples has the largest rate and the largest ε.
    eps = result.records[-1]["epsilon_per_node"]
    assert int(np.argmax(eps)) == int(np.argmin(counts))


def test_target_epsilon_is_met_by_the_worst_node():
    result = run(["privacy=dp_sgd", "privacy.target_epsilon=8.0"])
    assert result.records[-1]["epsilon"] == pytest.approx(8.0, rel=1e-2)
    assert result.records[-1]["epsilon"] <= 8.0 + 1e-6


def test_message_noise_changes_the_run_reproducibly():
    plain, noisy, again = (
        run([]),
        run(["privacy.message_noise=0.05"]),
        run(["privacy.message_noise=0.05"]),
    )
    a, b, c = (jax.tree.leaves(r.state)[0] for r in (plain, noisy, again))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(b, c)


def test_compressed_bytes_are_the_encoded_size():
    result = run(["algorithm=dsgd_ef", "compression=top_k", "compression.fraction=0.1"])
    # logreg on digits: kernel 640 entries → 64 float32 values + 64 uint16 indices;
    # bias 10 entries → 1 float32 value + 1 uint8 index. Two ring neighbours per round.
    per_message = 64 * 4 + 64 * 2 + 1 * 4 + 1 * 1 + 96  # + one 96-byte frame header
    assert [r["bytes_sent_per_node"] for r in result.records] == [
        2 * 2 * per_message,
        4 * 2 * per_message,
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["compression=top_k"], "does not compress"),
        (["algorithm=dsgd_ef", "compression=top_k", "privacy.message_noise=0.1"], "dense"),
        (["privacy=dp_sgd", "privacy.accountant=pld", "privacy.sampling=fixed"], "fixed"),
    ],
)
def test_unsupported_combinations_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        run(overrides)
