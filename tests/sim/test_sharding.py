"""Sharding the node axis over 4 CPU devices gives the one-device result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from dfl.sim.sharding import node_mesh

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from dfl.cli import instantiate_optimizer, to_config
    from tests.conftest import compose_config
    from dfl.sim.runner import simulate

    assert len(jax.devices()) == 4, jax.devices()
    out = {}
    for shard in (False, True):
        cfg = compose_config(["data=digits", "model=logreg", "topology.n=8", "rounds=6",
                              "eval_every=3", "algorithm.local_steps=2",
                              f"sim.shard_nodes={shard}", f"topology={sys.argv[1]}"])
        result = simulate(to_config(cfg), instantiate_optimizer(cfg), progress=False)
        leaves = jax.tree.leaves(result.state)
        sharded = [len(leaf.sharding.device_set) for leaf in leaves]
        out[str(shard)] = {"params": [np.asarray(x).tolist() for x in leaves],
                           "records": result.records, "devices": sharded}
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.parametrize("topology", ["ring", "complete"])
def test_four_devices_match_one(topology, repo_root):
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(repo_root),
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, topology],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=repo_root,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.split("RESULT", 1)[1])
    one, four = result["False"], result["True"]
    assert all(d == 4 for d in four["devices"]) and all(d == 1 for d in one["devices"])
    for a, b in zip(one["params"], four["params"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for ra, rb in zip(one["records"], four["records"], strict=True):
        assert ra["test_accuracy_mean"] == pytest.approx(rb["test_accuracy_mean"], abs=1e-6)
        assert ra["bytes_sent_per_node"] == rb["bytes_sent_per_node"]


def test_uneven_split_is_refused():
    with pytest.raises(ValueError, match=r"topology\.n=5"):
        node_mesh(5, [jax.devices()[0]] * 2)
