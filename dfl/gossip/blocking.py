"""Helpers shared by the mixers: dtypes and cache-blocked in-place mixing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Block = int | Literal["auto"] | None
"""A mixer's column blocking: columns per block, ``"auto"`` (:func:`resolve_block`) or ``None``."""

BLOCK_BYTES = 1 << 20
"""Target size of one ``[N, B]`` column block on CPU: small enough to stay in the L2 cache."""

MIN_BLOCK, MAX_BLOCK = 128, 8192
"""Bounds on the automatic number of columns per block."""


def weight_dtype() -> jnp.dtype:
    """float32, or float64 when ``jax_enable_x64`` is on."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def compute_dtype(x: jax.Array) -> jnp.dtype:
    """The dtype a leaf is mixed in: at least float32 (bf16/f16 leaves are upcast)."""
    return jnp.promote_types(x.dtype, weight_dtype())


def to_device(a: np.ndarray, dtype) -> jax.Array:
    """A numpy array as a jax array of ``dtype``."""
    return jnp.asarray(np.asarray(a), dtype=dtype)


def resolve_block(block: Block, n: int, dtype: jnp.dtype) -> int | None:
    """Columns per block for mixing ``n`` rows of ``dtype``, or ``None`` for no blocking.

    ``"auto"`` blocks only on a single CPU device (where it keeps the ``S`` shifted or
    gathered reads of a block in cache and lets XLA update the leaf in place instead
    of writing a fresh ``N · P`` buffer): the largest power of two of columns whose
    ``[n, B]`` block in the compute dtype fits :data:`BLOCK_BYTES`, clipped to
    [:data:`MIN_BLOCK`, :data:`MAX_BLOCK`]. On accelerators and on several devices
    (a sharded node axis) the plain fused form is already one pass, so ``"auto"`` is
    ``None`` there.
    """
    if block is None:
        return None
    if block == "auto":
        if jax.default_backend() != "cpu" or jax.device_count() != 1:
            return None
        cols = BLOCK_BYTES // max(n * jnp.dtype(dtype).itemsize, 1)
        return int(np.clip(1 << max(int(cols).bit_length() - 1, 0), MIN_BLOCK, MAX_BLOCK))
    if int(block) < 1:
        raise ValueError(f"mixer block must be a positive number of columns, found {block!r}")
    return int(block)


def _chunk(length: int, target: int) -> int:
    """Rows of the blocked axis per block: a divisor of ``length`` near ``target``, else ``target``.

    The largest divisor of ``length`` that is at most ``target`` if it is at least half
    of it (no partial block), else ``target`` itself (the rest is one partial block).
    """
    target = max(min(length, target), 1)
    divisor = max(d for d in range(1, target + 1) if length % d == 0)
    return divisor if 2 * divisor >= target else target


def mix_rows(
    x: jax.Array,
    mix: Callable[[jax.Array], jax.Array],
    block: Block,
    keep: tuple[jax.Array, jax.Array] | None = None,
) -> jax.Array:
    """Applies the node-axis operator ``mix`` to leaf ``x`` ``[N, ...]``, block by block.

    ``mix`` maps ``[N, B]`` (the leaf's trailing axes flattened to ``B`` columns,
    cast to :func:`compute_dtype`) to ``[N, B]`` and must treat every column
    independently, as every gossip operator does (``out[:, j]`` depends on
    ``x[:, j]`` only). The result is cast back to ``x``'s dtype.

    With a block size (:func:`resolve_block`) and a leaf of at least two blocks, a
    ``fori_loop`` slices one block out of the leaf (about ``block`` columns, small
    enough to stay in cache; XLA copies it to a small temporary because ``mix`` reads
    it at other rows), mixes it and writes it back with ``dynamic_update_slice``, so
    XLA updates the leaf in place: one read and one write of the leaf whatever the
    number of shifted or gathered reads ``mix`` makes, and no fresh ``N · P`` buffer
    (on CPU a fresh buffer that large costs a page fault per 4 KiB every round).
    Blocks are slices along one axis of the leaf (the first whose trailing axes hold
    at most ``block`` columns; the loop also walks the axes before it), never a
    reshape of the whole leaf, which would make XLA copy the loop's result; a partial
    last block along that axis gets a second loop. Without a block size it is one
    fused ``mix`` over the whole leaf.

    ``keep = (online, old)`` (bool ``[N]``, a leaf like ``x``) makes row ``i`` of the
    result ``old[i]`` where ``online[i]`` is false, ``jnp.where`` on each block as it is
    written (the network round's offline rule without a second pass over the leaf).
    """
    n = x.shape[0]
    dtype = compute_dtype(x)
    size = resolve_block(block, n, dtype)

    def run(part: jax.Array, old: jax.Array | None = None) -> jax.Array:
        out = mix(part.reshape(n, -1).astype(dtype)).reshape(part.shape).astype(x.dtype)
        if keep is None or old is None:
            return out
        return jnp.where(keep[0].reshape((n,) + (1,) * (out.ndim - 1)), out, old)

    shape = x.shape
    if size is None or math.prod(shape[1:]) < 2 * size:
        return run(x, None if keep is None else keep[1])
    axis = next(a for a in range(1, x.ndim) if math.prod(shape[a + 1 :]) <= size)
    outer = shape[1:axis]
    chunk = _chunk(shape[axis], size // math.prod(shape[axis + 1 :]))

    def blocks(y: jax.Array, first: int, rows: int, count: int) -> jax.Array:
        """Mixes ``count`` blocks of ``rows`` along ``axis`` from ``first``, at every
        position of the ``outer`` axes."""
        sizes = (n, *(1,) * len(outer), rows, *shape[axis + 1 :])

        def body(i: jax.Array, y: jax.Array) -> jax.Array:
            starts = [first + (i % count) * rows, *(0,) * (x.ndim - axis - 1)]
            rest = i // count
            for dim in reversed(outer):
                starts.insert(0, rest % dim)
                rest = rest // dim
            starts.insert(0, 0)
            if keep is None:  # in place in x itself
                part = lax.dynamic_slice(y, starts, sizes)
                return lax.dynamic_update_slice(y, run(part), starts)
            # in place in ``old`` (x is only read): the result takes old's buffer
            part = lax.dynamic_slice(x, starts, sizes)
            return lax.dynamic_update_slice(
                y, run(part, lax.dynamic_slice(y, starts, sizes)), starts
            )

        return lax.fori_loop(0, math.prod(outer) * count, body, y)

    full, rest = divmod(shape[axis], chunk)
    y = x if keep is None else keep[1]
    y = blocks(y, 0, chunk, full)
    return blocks(y, full * chunk, rest, 1) if rest else y


class RoundData:
    """A mixer's per-round data: every round of a period built up front, random ones per call.

    Building a period eagerly checks every ``W`` of it when the mixer is made.

    Args:
      period: the schedule's period (``None`` for random schedules).
      make: ``make(round) -> data`` for one round.
    """

    def __init__(self, period: int | None, make: Callable[[int], Any]):
        self.period = period
        self.make = make
        self._cache = {t: make(t) for t in range(period or 0)}

    def __call__(self, round: int) -> Any:
        if self.period is None:
            return self.make(int(round))
        return self._cache[int(round) % self.period]
