"""Orbax checkpoints: round trips with typed keys, extra trees, and resume paths."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from dfl.checkpoint import Checkpointer, resolve_resume
from tests.node.common import assert_equal


def state():
    return {
        "w": jnp.arange(6.0).reshape(2, 3),
        "key": jax.random.key(7),
        "opt": (jnp.zeros(3, jnp.int32), ()),
    }


def test_round_trip_with_keys_and_extra(tmp_path):
    ckpt = Checkpointer(tmp_path / "ck", every=2, max_to_keep=2)
    assert [r for r in range(1, 8) if ckpt.due(r, 7)] == [2, 4, 6, 7]
    s = state()
    extra = {"3": {"m": jnp.ones(4)}}
    for step in (2, 4, 6):
        ckpt.save(step, jax.tree.map(lambda x: x, s), meta={"round": step}, extra=extra)
    ckpt.close()
    again = Checkpointer(tmp_path / "ck")
    assert again.latest_step() == 6
    restored, got_extra, meta = again.restore(state(), like_extra=extra)
    assert meta["round"] == 6
    assert_equal(jax.random.key_data(restored["key"]), jax.random.key_data(s["key"]))
    assert_equal(restored["w"], s["w"])
    assert_equal(got_extra, extra)
    again.close()


def test_resolve_resume_paths(tmp_path):
    run = tmp_path / "run"
    ckpt = Checkpointer(run / "nodes" / "node_2" / "checkpoints", every=1)
    ckpt.save(1, state(), meta={"round": 1})
    ckpt.close()
    node_dir = run / "nodes" / "node_2" / "checkpoints"
    assert resolve_resume(run, node=2) == node_dir
    assert resolve_resume(node_dir) == node_dir
    assert resolve_resume(run / "nodes" / "node_2") == node_dir
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        resolve_resume(run, node=1)
