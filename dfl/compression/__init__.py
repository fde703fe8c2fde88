"""Compressors with real wire encodings (see :mod:`dfl.compression.base`).

=============  ==============================================  ==========================
name           wire per leaf of d entries                      quality
=============  ==============================================  ==========================
``identity``   the dense leaf                                  ω = 1
``top_k``      k values + k uint indices                       ω = k/d
``rand_k``     k values + k uint indices                       ω = k/d, or unbiased
                                                               c = d/k − 1
``qsgd``       d int8/int16 levels + 1 float32 per bucket      ω = 1/(1 + c), or unbiased
                                                               c = min(b/s², √b/s)
``sign``       ceil(d/8) bytes + 1 float32                     ω = ‖x‖₁²/(d‖x‖²) ≥ 1/d
``low_rank``   (m + n)·r float32 per matrix, vectors dense     ω = r/min(m, n) (fresh
                                                               start), ≥ 0 warm-started
=============  ==============================================  ==========================

:func:`error_feedback` and :func:`ef21` wrap any of them with a per-node residual.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from dfl.compression.base import (
    Compressor,
    KeyState,
    encoded_nbytes,
    index_dtype,
    key_init,
    next_key,
)
from dfl.compression.error_feedback import (
    EF21State,
    ErrorFeedbackState,
    ef21,
    error_feedback,
    residual,
)
from dfl.compression.identity import identity
from dfl.compression.low_rank import LowRankLeaf, LowRankState, low_rank
from dfl.compression.qsgd import QuantizedLeaf, qsgd, qsgd_variance
from dfl.compression.rand_k import rand_k
from dfl.compression.sign import SignLeaf, sign
from dfl.compression.sparse import SparseLeaf
from dfl.compression.top_k import top_k

COMPRESSORS: dict[str, Callable[..., Compressor]] = {
    "identity": identity,
    "top_k": top_k,
    "rand_k": rand_k,
    "qsgd": qsgd,
    "sign": sign,
    "low_rank": low_rank,
}
"""Registry: ``compression.name`` → builder ``(**options) -> Compressor``."""


def build_compressor(name: str, **options: Any) -> Compressor:
    """Builds the compressor registered as ``name`` from the options it accepts.

    Each builder gets the keywords its signature names (a config holds only
    its compressor's own fields, :mod:`dfl.config.compression_schema`).

    Args:
      name: a key of :data:`COMPRESSORS`.
      **options: candidate keyword options (e.g. ``dataclasses.asdict`` of the
        config without ``name``).

    Returns:
      The :class:`Compressor`.

    Raises:
      ValueError: for an unknown name or an option value the builder refuses.
    """
    if name not in COMPRESSORS:
        raise ValueError(f"unknown compressor {name!r}; expected one of {sorted(COMPRESSORS)}")
    builder = COMPRESSORS[name]
    accepted = inspect.signature(builder).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted}
    try:
        return builder(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad options {kwargs} for compressor {name!r}: {e}") from e


__all__ = [
    "COMPRESSORS",
    "Compressor",
    "EF21State",
    "ErrorFeedbackState",
    "KeyState",
    "LowRankLeaf",
    "LowRankState",
    "QuantizedLeaf",
    "SignLeaf",
    "SparseLeaf",
    "build_compressor",
    "ef21",
    "encoded_nbytes",
    "error_feedback",
    "identity",
    "index_dtype",
    "key_init",
    "low_rank",
    "next_key",
    "qsgd",
    "qsgd_variance",
    "rand_k",
    "residual",
    "sign",
    "top_k",
]
