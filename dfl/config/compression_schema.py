"""Structured-config schema of the ``compression`` group."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class CompressionConfig:
    """The compressor applied to gossiped messages (``conf/compression/*.yaml``).

    Holds the options of every compressor; ``dfl.compression.build_compressor``
    passes each builder only the fields its signature names (the rest are ignored).
    Only algorithms that compress (``dsgd_ef``, ``choco``) accept a compressor
    other than ``identity``.

    Attributes:
      name: ``identity``, ``top_k``, ``rand_k``, ``qsgd``, ``sign`` or ``low_rank``.
      fraction: ``top_k``/``rand_k``: kept fraction of every leaf, in (0, 1].
      k: ``top_k``/``rand_k``: kept entries per leaf (overrides ``fraction``);
        ``None`` uses ``fraction``.
      unbiased: ``rand_k``/``qsgd``: send the unbiased operator (rand-k scaled by
        d/k; plain QSGD) instead of the contractive one error feedback and
        CHOCO-SGD need (the default, ``false``).
      levels: ``qsgd``: quantisation levels s ≥ 1 (int8 on the wire up to 127,
        int16 up to 32767).
      bucket_size: ``qsgd``: entries per norm; ``None`` = one norm per leaf.
      rank: ``low_rank``: rank r of the factors of every weight matrix.
      warm_start: ``low_rank``: start each power-iteration step from the last
        factor (PowerGossip) instead of a fresh Gaussian.
    """

    name: str = "identity"
    fraction: float = 0.1
    k: int | None = None
    unbiased: bool = False
    levels: int = 16
    bucket_size: int | None = None
    rank: int = 1
    warm_start: bool = True
