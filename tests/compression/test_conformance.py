"""Every compressor: pure, jittable, vmappable over nodes, honest about its bytes."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dfl.compression import COMPRESSORS, build_compressor, encoded_nbytes

OPTIONS = {
    "identity": {},
    "top_k": {"fraction": 0.25},
    "rand_k": {"fraction": 0.25},
    "rand_k_unbiased": {"fraction": 0.25, "unbiased": True},
    "qsgd": {"levels": 4},
    "qsgd_bucketed": {"levels": 4, "bucket_size": 16},
    "sign": {},
    "low_rank": {"rank": 2},
    "low_rank_fresh": {"rank": 2, "warm_start": False},
}
N_NODES = 3


def make(case: str):
    return build_compressor(
        case.removesuffix("_unbiased").removesuffix("_bucketed").removesuffix("_fresh"),
        **OPTIONS[case],
    )


def params(seed: int = 7, nodes: tuple[int, ...] = ()):
    """A small model's parameters (numpy-generated: no eager JAX ops to compile)."""
    rng = np.random.default_rng(seed)
    shapes = {"kernel": (40, 24), "bias": (24,), "conv": (3, 3, 4, 8)}
    p = {k: jnp.asarray(rng.normal(size=nodes + s), jnp.float32) for k, s in shapes.items()}
    return {"dense": {"kernel": p["kernel"], "bias": p["bias"]}, "conv": p["conv"]}


def expected_bytes(case: str, x) -> int:
    """The wire size written out by hand from each format's definition."""
    total = 0
    for leaf in jax.tree.leaves(x):
        d = leaf.size
        if case == "identity":
            total += 4 * d
        elif case.startswith(("top_k", "rand_k")):
            k = math.ceil(0.25 * d)
            total += 4 * k + (1 if d <= 256 else 2) * k
        elif case == "qsgd":
            total += d + 4
        elif case == "qsgd_bucketed":
            total += d + 4 * math.ceil(d / 16)
        elif case == "sign":
            total += math.ceil(d / 8) + 4
        elif case.startswith("low_rank"):
            if leaf.ndim < 2:
                total += 4 * d
            else:
                m, n = math.prod(leaf.shape[:-1]), leaf.shape[-1]
                total += 4 * 2 * (m + n) if 2 * (m + n) < m * n else 4 * d
    return total


@pytest.mark.parametrize("case", list(OPTIONS))
def test_bytes_are_the_wire_format(case):
    """The message's bytes (from shapes alone, as the runner counts them) match the format."""
    comp = make(case)
    x = params()
    one = jax.eval_shape(
        lambda x, key: comp.compress(x, comp.init(x, key))[0], x, jax.random.key(0)
    )
    assert encoded_nbytes(one) == expected_bytes(case, x)
    if case != "identity":
        assert encoded_nbytes(one) < encoded_nbytes(x)


@pytest.mark.parametrize(
    "case", ["identity", "top_k", "rand_k", "qsgd_bucketed", "sign", "low_rank"]
)
def test_vmapped_nodes_match_per_node_calls(case):
    comp = make(case)

    def encode(x, key):
        return comp.compress(x, comp.init(x, key))[0]

    @jax.jit
    def both(xs, keys):
        # vmap (simulation) against lax.map, which runs the unbatched per-node
        # function (deployment) node by node.
        looped = jax.lax.map(lambda a: comp.decompress(encode(*a)), (xs, keys))
        return jax.vmap(encode)(xs, keys), looped

    xs = params(1, (N_NODES,))
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(3), jnp.arange(N_NODES))
    encoded, looped = both(xs, keys)
    decoded = jax.jit(jax.vmap(comp.decompress))(encoded)  # the message alone suffices
    assert jax.tree.structure(decoded) == jax.tree.structure(xs)
    for x, a, b in zip(
        jax.tree.leaves(xs), jax.tree.leaves(decoded), jax.tree.leaves(looped), strict=True
    ):
        assert a.shape == x.shape and a.dtype == x.dtype
        assert bool(jnp.all(jnp.isfinite(a)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ["rand_k", "qsgd", "low_rank_fresh"])
def test_nodes_draw_independent_randomness(case):
    """Same input, different node keys ⇒ different messages; same key ⇒ same message."""
    comp = make(case)
    x = params()

    @jax.jit
    def twice(x, node):
        state = comp.init(x, jax.random.fold_in(jax.random.key(0), node))
        state = comp.compress(x, state)[1]  # the state's key advances between calls
        return jnp.concatenate(
            [v.ravel() for v in jax.tree.leaves(comp.decompress(comp.compress(x, state)[0]))]
        )

    out = [np.asarray(twice(x, node)) for node in (0, 1, 0)]
    assert not np.allclose(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def test_build_compressor_passes_only_accepted_options():
    every = {
        "fraction": 0.5,
        "k": None,
        "unbiased": True,
        "levels": 8,
        "bucket_size": None,
        "rank": 3,
        "warm_start": False,
    }
    for name in COMPRESSORS:
        assert build_compressor(name, **every).name == name
    with pytest.raises(ValueError, match="unknown compressor 'nope'"):
        build_compressor("nope")
    with pytest.raises(ValueError, match="fraction"):
        build_compressor("top_k", fraction=1.5)
    with pytest.raises(ValueError, match="levels"):
        build_compressor("qsgd", levels=0)
    with pytest.raises(ValueError, match="rank"):
        build_compressor("low_rank", rank=0)
