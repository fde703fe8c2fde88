"""Compressors with real wire encodings (see :mod:`dfl.compression.base`)."""

from __future__ import annotations

from collections.abc import Callable

from dfl.compression.base import Compressor, KeyState, encoded_nbytes, index_dtype
from dfl.compression.identity import identity
from dfl.compression.top_k import SparseLeaf, top_k

COMPRESSORS: dict[str, Callable[..., Compressor]] = {"identity": identity, "top_k": top_k}
"""Registry: ``compression.name`` → builder ``(**options) -> Compressor``."""


def build_compressor(name: str, **options) -> Compressor:
    """Builds the compressor registered as ``name`` with its options."""
    if name not in COMPRESSORS:
        raise ValueError(f"unknown compressor {name!r}; expected one of {sorted(COMPRESSORS)}")
    try:
        return COMPRESSORS[name](**options)
    except TypeError as e:
        raise ValueError(f"bad options {options} for compressor {name!r}: {e}") from e


__all__ = [
    "COMPRESSORS",
    "Compressor",
    "KeyState",
    "SparseLeaf",
    "build_compressor",
    "encoded_nbytes",
    "identity",
    "index_dtype",
    "top_k",
]
