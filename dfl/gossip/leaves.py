"""Helpers shared by the mixers: weight dtype, per-node broadcasting, compute dtype."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def weight_dtype() -> jnp.dtype:
    """float32, or float64 when ``jax_enable_x64`` is on."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def compute_dtype(x: jax.Array) -> jnp.dtype:
    """The dtype a leaf is mixed in: at least float32 (bf16/f16 leaves are upcast)."""
    return jnp.promote_types(x.dtype, weight_dtype())


def per_node(v: jax.Array, x: jax.Array) -> jax.Array:
    """Reshapes a ``[N, ...]`` per-node array to broadcast against leaf ``x`` ``[N, ...]``."""
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def to_device(a: np.ndarray, dtype) -> jax.Array:
    """A numpy array as a jax array of ``dtype``."""
    return jnp.asarray(np.asarray(a), dtype=dtype)
