"""QSGD: stochastic quantisation of every bucket to s levels of its norm.

Each leaf is split (flat) into buckets of ``b`` entries (the whole leaf when
``bucket_size`` is ``None``). For a bucket v with norm ‖v‖ and entry v_i let
r_i = s|v_i|/‖v‖ and ξ_i = ⌊r_i⌋ + Bernoulli(r_i − ⌊r_i⌋); then

.. math::  Q(v)_i = \\|v\\| \\, \\mathrm{sign}(v_i) \\, \\xi_i / s,

which is unbiased with (Alistarh et al. 2017, Lemma 3.1)

.. math::  E\\|Q(v) - v\\|^2 \\le \\min(b/s^2, \\sqrt{b}/s)\\,\\|v\\|^2 \\qquad
           (c = \\min(b/s^2, \\sqrt{b}/s)).

``unbiased=False`` (default; CHOCO-SGD's form) sends Q(v)/τ with
τ = 1 + c, a contraction with ω = 1/τ (Koloskova et al. 2019, Remark 3):
E‖Q/τ − v‖² = (E‖Q‖² − 2τ‖v‖² + τ²‖v‖²)/τ² ≤ (1 − 1/τ)‖v‖² since E‖Q‖² ≤ τ‖v‖².

Wire: the signed levels sign(v_i)·ξ_i ∈ [−s, s] as int8 (s ≤ 127) or int16
(s ≤ 32767), one per entry, and one float32 norm per bucket. The scale 1/τ and
s are static metadata, not sent.

References:
  Alistarh, Grubic, Li, Tomioka, Vojnovic, "QSGD: Communication-Efficient SGD via
  Gradient Quantization and Encoding", NeurIPS 2017.
  Koloskova, Stich, Jaggi, "Decentralized Stochastic Optimization and Gossip
  Algorithms with Compressed Communication", ICML 2019.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.compression.base import Compressor, KeyState, key_init, next_key


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class QuantizedLeaf:
    """One leaf as signed integer levels and per-bucket norms.

    Attributes:
      levels: ``sign(v_i)·ξ_i`` for every entry ``[d]`` (int8 or int16).
      norms: float32 norm of every bucket ``[ceil(d/b)]``.
      shape: the dense leaf's shape (static).
      dtype: the dense leaf's dtype name (static).
      s: number of levels (static).
      bucket: bucket size b (static).
      scale: 1 (unbiased) or 1/τ (contractive), applied on decode (static).
    """

    levels: jax.Array
    norms: jax.Array
    shape: tuple[int, ...] = dataclasses.field(metadata={"static": True})
    dtype: str = dataclasses.field(metadata={"static": True})
    s: int = dataclasses.field(metadata={"static": True})
    bucket: int = dataclasses.field(metadata={"static": True})
    scale: float = dataclasses.field(metadata={"static": True})


def level_dtype(s: int) -> np.dtype:
    """The smallest signed integer dtype holding levels in ``[−s, s]``."""
    if s <= np.iinfo(np.int8).max:
        return np.dtype(np.int8)
    if s <= np.iinfo(np.int16).max:
        return np.dtype(np.int16)
    raise ValueError(f"qsgd supports at most 32767 levels, found {s=}")


def qsgd_variance(b: int, s: int) -> float:
    """The variance factor ``c = min(b/s², √b/s)`` of QSGD on buckets of size ``b``."""
    return min(b / s**2, math.sqrt(b) / s)


def _pad_buckets(flat: jax.Array, b: int) -> jax.Array:
    pad = (-flat.size) % b
    return jnp.pad(flat, (0, pad)).reshape(-1, b)


def qsgd(*, levels: int = 16, bucket_size: int | None = None, unbiased: bool = False) -> Compressor:
    """QSGD with ``levels`` = s quantisation levels per bucket.

    Args:
      levels: s ≥ 1; levels are sent as int8 up to 127, int16 up to 32767.
      bucket_size: entries per norm (``None``: the whole leaf). Smaller buckets
        lower the variance factor min(b/s², √b/s) at 4 bytes per bucket.
      unbiased: send Q(v) (unbiased, factor c) instead of Q(v)/(1 + c)
        (contraction ω = 1/(1 + c)).

    Returns:
      A :class:`~dfl.compression.base.Compressor` whose state is the node's key.
    """
    if levels < 1:
        raise ValueError(f"qsgd needs levels >= 1, found {levels=}")
    if bucket_size is not None and bucket_size < 1:
        raise ValueError(f"qsgd needs bucket_size >= 1 or None, found {bucket_size=}")
    ldtype = level_dtype(levels)

    def compress_leaf(x: jax.Array, key: jax.Array) -> QuantizedLeaf:
        flat = x.reshape(-1)
        d = flat.size
        b = d if bucket_size is None else min(bucket_size, d)
        v = _pad_buckets(flat.astype(jnp.float32), b)
        norms = jnp.linalg.norm(v, axis=1)
        safe = jnp.where(norms > 0, norms, 1.0)
        r = jnp.abs(v) / safe[:, None] * levels
        low = jnp.floor(r)
        xi = low + (jax.random.uniform(key, r.shape) < (r - low))
        xi = jnp.minimum(xi, levels)  # float rounding can push r past s
        signed = (jnp.sign(v) * xi).reshape(-1)[:d].astype(ldtype)
        scale = 1.0 if unbiased else 1.0 / (1.0 + qsgd_variance(b, levels))
        return QuantizedLeaf(signed, norms, tuple(x.shape), str(x.dtype), levels, b, scale)

    def compress(x: Any, state: KeyState) -> tuple[Any, KeyState]:
        key, state = next_key(state)
        leaves, treedef = jax.tree.flatten(x)
        encoded = [compress_leaf(v, jax.random.fold_in(key, i)) for i, v in enumerate(leaves)]
        return jax.tree.unflatten(treedef, encoded), state

    def decompress_leaf(q: QuantizedLeaf) -> jax.Array:
        d = math.prod(q.shape)
        v = _pad_buckets(q.levels.astype(jnp.float32), q.bucket)
        dense = v * (q.norms * (q.scale / q.s))[:, None]
        return dense.reshape(-1)[:d].reshape(q.shape).astype(q.dtype)

    def decompress(encoded: Any) -> Any:
        return jax.tree.map(
            decompress_leaf, encoded, is_leaf=lambda n: isinstance(n, QuantizedLeaf)
        )

    return Compressor("qsgd", key_init, compress, decompress)
