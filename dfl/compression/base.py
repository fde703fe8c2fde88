"""The compressor interface: pure ``init`` / ``compress`` / ``decompress``.

A compressor acts on a whole pytree (a model's parameters or a difference of
them). ``compress`` returns the *encoded* message, a pytree of the arrays that
actually go on the wire, and the compressor's new per-node state (its own PRNG
key, warm starts). Encoded pytrees carry their static metadata (original shapes
and dtypes) as pytree aux data, so ``decompress(encoded)`` needs nothing else and
works under ``jit`` and ``vmap``; the bytes a message costs are the sizes of its
leaves (:func:`encoded_nbytes`), the same bytes a transport sends.

Quality of a compressor Q is stated as one of two constants, both checked by
Monte Carlo in ``tests/compression``:

* contraction ω ∈ (0, 1]: ``E||Q(x) − x||² ≤ (1 − ω)||x||²`` (biased operators
  such as top-k, sign and low-rank, and the rescaled rand-k / QSGD that CHOCO
  and error feedback need);
* variance factor c ≥ 0 of an unbiased operator: ``E Q(x) = x`` and
  ``E||Q(x) − x||² ≤ c·||x||²`` (rand-k with d/k scaling, QSGD).

An unbiased Q with factor c becomes contractive with ω = 1/(1 + c) when scaled by
1/(1 + c) (Koloskova et al. 2019, Remark 3).

Example::

    comp = top_k(fraction=0.1)
    state = comp.init(params, jax.random.fold_in(key, node_id))
    encoded, state = comp.compress(params, state)
    approx = comp.decompress(encoded)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np


class Compressor(NamedTuple):
    """A compression operator Q as three pure functions.

    Attributes:
      name: registry name.
      init: ``init(x, key) -> state`` for a template pytree ``x``; ``key`` is
        already specific to the node.
      compress: ``compress(x, state) -> (encoded, state)``.
      decompress: ``decompress(encoded) -> x̂`` with the structure of ``x``.
    """

    name: str
    init: Callable[[Any, jax.Array], Any]
    compress: Callable[[Any, Any], tuple[Any, Any]]
    decompress: Callable[[Any], Any]


class KeyState(NamedTuple):
    """State of a compressor whose only state is its own PRNG key."""

    key: jax.Array


def encoded_nbytes(encoded: Any) -> int:
    """Bytes of an encoded message: the sum of its leaves' sizes (static shapes)."""
    return int(sum(np.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(encoded)))


def index_dtype(size: int) -> np.dtype:
    """The smallest unsigned integer dtype that indexes ``size`` entries."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def next_key(state: KeyState) -> tuple[jax.Array, KeyState]:
    """Splits a :class:`KeyState`: a fresh key for this call, and the next state."""
    key, use = jax.random.split(state.key)
    return use, KeyState(key)


def key_init(x: Any, key: jax.Array) -> KeyState:
    """``init`` of a compressor whose state is only its node's PRNG key."""
    del x
    return KeyState(key)
