"""Structured-config schema of the ``compression`` group."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class CompressionConfig:
    """The compressor applied to gossiped messages (``conf/compression/*.yaml``).

    Attributes:
      name: ``identity`` (no compression) or ``top_k``.
      fraction: ``top_k``: kept fraction of every leaf.
    """

    name: str = "identity"
    fraction: float = 0.1
