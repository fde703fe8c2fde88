"""Shared helpers of the deployment tests: a tiny config and tree comparisons."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from hydra import compose, initialize_config_dir

from dfl.cli import instantiate_optimizer, to_config
from dfl.config.schema import Config
from dfl.config.store import conf_dir, register

BASE = (
    "model=logreg",
    "data=digits",
    "topology=ring",
    "topology.n=4",
    "mixing=metropolis_hastings",
    "optimizer=sgd",
    "optimizer.learning_rate=0.1",
    "rounds=20",
    "eval_every=10",
    "algorithm.local_steps=2",
    "sim.progress=false",
)
"""Logistic regression on digits, 4 nodes on a ring, 20 rounds of 2 local steps."""


def compose_config(*overrides: str) -> tuple[Config, Any]:
    """The tiny test config (with ``overrides``) and its optimizer."""
    register()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        cfg = compose("config", overrides=[*BASE, *overrides])
    return to_config(cfg), instantiate_optimizer(cfg)


def replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` with dotted paths: ``replace(cfg, **{"node.deadline_s": 1})``."""
    nested: dict[str, dict[str, Any]] = {}
    flat = {}
    for path, value in changes.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[head] = value
    for head, sub in nested.items():
        flat[head] = replace(getattr(obj, head), **sub)
    return dataclasses.replace(obj, **flat)


def node_params(result: Any, node: int) -> Any:
    """Node ``node``'s evaluated parameters from a deployment result."""
    program_params = result.experiment.algorithm.params
    return program_params(result.nodes[node].state)


def sim_params(result: Any, node: int) -> Any:
    """Node ``node``'s evaluated parameters from a simulation result."""
    params = jax.vmap(result.experiment.algorithm.params)(result.state)
    return jax.tree.map(lambda x: x[node], params)


def assert_close(a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Leaf-wise ``assert_allclose`` of two pytrees of one structure.

    Each entry may differ by ``rtol`` of itself plus ``atol`` plus ``rtol`` of
    its leaf's largest entry: entries near zero carry the rounding of the large
    ones they were computed from (e.g. through a QR in low-rank compression).
    """
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        scale = float(np.max(np.abs(y))) if y.size else 0.0
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol + rtol * scale)


def assert_equal(a: Any, b: Any) -> None:
    """Leaf-wise exact equality of two pytrees (PRNG keys by their key data)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(raw(x), raw(y))


def raw(x: Any) -> np.ndarray:
    """``x`` as a numpy array; a typed PRNG key array as its key data."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)
