"""A node whose state turns non-finite stops at once, naming the round and the peers
(issue 13: "a node whose own state turns non-finite says so at once").

Node 1 of a 4-node ring (loopback) sends valid frames of 3e38 (finite float32) from
round 2 on. Its neighbours 0 and 2 mix them (still finite: a convex mix cannot
overflow), their next step overflows, and after round 3 their state is NaN: the node
must fail there, blaming node 1, instead of finishing the run on NaN.
"""

from __future__ import annotations

import re
import threading

import jax
import jax.numpy as jnp
import pytest

import dfl.node.exchange as exchange_module
from dfl.node import run_loopback
from dfl.node.finite import MixSeen, NonFiniteStateError, health, non_finite_error
from tests.node.common import compose_config

POISON = 3e38
POISONER = 1
FIRST_POISONED = 2  # node 1's round from which its sent messages are poison


def poisoning(real):
    """``encode_payload`` that encodes node 1's wire messages from round 2 as all ``POISON``."""
    calls = {"n": 0}

    def encode(spec, wire, **kwargs):
        if threading.current_thread().name == f"dfl-node-{POISONER}" and jax.tree.leaves(wire):
            calls["n"] += 1
            if calls["n"] > FIRST_POISONED:
                wire = jax.tree.map(lambda x: jnp.full_like(x, POISON), wire)
        return real(spec, wire, **kwargs)

    return encode


def test_a_poisoned_neighbour_stops_the_run_naming_round_and_peer(monkeypatch):
    cfg, opt = compose_config(
        "rounds=8",
        "eval_every=4",
        "node.deadline_s=2",
        "node.first_deadline_s=60",
        "node.wait_timeout_s=30",
    )
    monkeypatch.setattr(
        exchange_module, "encode_payload", poisoning(exchange_module.encode_payload)
    )
    with pytest.raises(RuntimeError) as caught:
        run_loopback(cfg, opt)
    error = caught.value.__cause__
    assert isinstance(error, NonFiniteStateError), caught.value
    text = str(error)
    named = re.match(r"node (\d+):", text)
    assert named is not None, text
    node = int(named.group(1))
    assert node in (0, 2)  # node 1's out-neighbours on the ring
    assert f"non-finite after round {FIRST_POISONED + 1}" in text
    assert f"round {FIRST_POISONED}: " in text and "node 1 max|x|=3e+38" in text
    assert text.endswith("robust aggregation is what bounds finite poison)")
    assert "the largest came from node 1" in text


def test_health_is_one_reduction_over_state_and_messages():
    state = {"w": jnp.ones((3,)), "step": jnp.int32(4)}
    finite, sizes = health(state, [{"w": jnp.asarray([1.0, -5.0])}, {"w": jnp.asarray([2.0])}])
    assert bool(finite) and sizes.tolist() == [5.0, 2.0]
    finite, _ = health({"w": jnp.asarray([1.0, jnp.inf])}, [])
    assert not bool(finite)
    keyed = {"key": jax.random.key(0), "w": jnp.ones(2)}  # PRNG keys are not numbers: skipped
    finite, sizes = health(keyed, [keyed])
    assert bool(finite) and sizes.tolist() == [1.0]
    mixes = [MixSeen(7, [0, 1, 3], jnp.asarray([0.5, 3e38, 0.2]))]
    text = str(non_finite_error(0, 8, mixes))
    assert (
        "after round 8" in text
        and "round 7: itself max|x|=0.5, node 1 max|x|=3e+38, node 3 max|x|=0.2" in text
    )
    assert "largest came from node 1" in text
