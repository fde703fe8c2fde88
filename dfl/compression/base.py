"""The compressor interface: pure ``init`` / ``compress`` / ``decompress``.

A compressor acts on a whole pytree (a model's parameters or a difference of
them). ``compress`` returns the *encoded* message, a pytree of the arrays that
actually go on the wire, and the compressor's new per-node state (its own PRNG
key, warm starts). Encoded pytrees carry their static metadata (original shapes
and dtypes) as pytree aux data, so ``decompress(encoded)`` needs nothing else and
works under ``jit`` and ``vmap``; the bytes a message costs are the sizes of its
leaves (:func:`encoded_nbytes`), the same bytes a transport sends.

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
