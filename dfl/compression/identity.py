"""The identity compressor: the dense message itself (ω = 1)."""

from __future__ import annotations

from typing import Any

import jax

from dfl.compression.base import Compressor


def identity() -> Compressor:
    """Sends ``x`` uncompressed; ``decompress(compress(x)) == x`` exactly."""

    def init(x: Any, key: jax.Array) -> tuple[()]:
        del x, key
        return ()

    def compress(x: Any, state: tuple[()]) -> tuple[Any, tuple[()]]:
        return x, state

    return Compressor("identity", init, compress, lambda encoded: encoded)
