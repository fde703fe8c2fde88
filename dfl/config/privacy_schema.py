"""Structured-config schema of the ``privacy`` group."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class PrivacyConfig:
    """Differential privacy at every node (``conf/privacy/*.yaml``).

    Attributes:
      enabled: run DP-SGD (per-example clipping and Gaussian noise).
    """

    enabled: bool = False
