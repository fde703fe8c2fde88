"""Structured-config schemas of the ``compression`` group: one dataclass per compressor.

As for algorithms, every ``conf/compression/NAME.yaml`` starts from its own schema,
so an option of another compressor (``compression.levels=4`` under
``compression=top_k``) fails at compose time. Only algorithms that compress
(``dsgd_ef``, ``choco``) accept a compressor other than ``identity``.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class CompressionConfig:
    """The compressor applied to gossiped messages (``conf/compression/*.yaml``).

    Attributes:
      name: ``identity``, ``top_k``, ``rand_k``, ``qsgd``, ``sign`` or ``low_rank``.
    """

    name: str = "identity"


@dataclasses.dataclass
class TopKConfig(CompressionConfig):
    """Top-k sparsification.

    Attributes:
      fraction: kept fraction of every leaf, in (0, 1].
      k: kept entries per leaf (overrides ``fraction``); ``None`` uses ``fraction``.
    """

    name: str = "top_k"
    fraction: float = 0.1
    k: int | None = None


@dataclasses.dataclass
class RandKConfig(TopKConfig):
    """Random-k sparsification.

    Attributes:
      unbiased: send the unbiased operator (scaled by d/k) instead of the
        contractive one error feedback and CHOCO-SGD need (the default, ``false``).
    """

    name: str = "rand_k"
    unbiased: bool = False


@dataclasses.dataclass
class QSGDConfig(CompressionConfig):
    """QSGD quantisation.

    Attributes:
      levels: quantisation levels s ≥ 1 (int8 on the wire up to 127, int16 up to 32767).
      bucket_size: entries per norm; ``None`` = one norm per leaf.
      unbiased: plain (unbiased) QSGD instead of the contractive form.
    """

    name: str = "qsgd"
    levels: int = 16
    bucket_size: int | None = None
    unbiased: bool = False


@dataclasses.dataclass
class SignConfig(CompressionConfig):
    """Scaled sign (no options)."""

    name: str = "sign"


@dataclasses.dataclass
class LowRankConfig(CompressionConfig):
    """Rank-r power-iteration factors (PowerGossip-style).

    Attributes:
      rank: rank r of the factors of every weight matrix.
      warm_start: start each power-iteration step from the last factor
        (PowerGossip) instead of a fresh Gaussian.
    """

    name: str = "low_rank"
    rank: int = 1
    warm_start: bool = True


@dataclasses.dataclass
class IdentityConfig(CompressionConfig):
    """No compression (no options)."""

    name: str = "identity"


SCHEMAS: dict[str, type[CompressionConfig]] = {
    "identity": IdentityConfig,
    "top_k": TopKConfig,
    "rand_k": RandKConfig,
    "qsgd": QSGDConfig,
    "sign": SignConfig,
    "low_rank": LowRankConfig,
}
"""The schema of each ``conf/compression/NAME.yaml`` (stored as ``schema/compression/NAME``)."""
