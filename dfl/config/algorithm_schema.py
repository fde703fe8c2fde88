"""Structured-config schema of the ``algorithm`` group."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class AlgorithmConfig:
    """Which algorithm runs at every node (``conf/algorithm/*.yaml``).

    Every builder receives the fields whose names match its keyword arguments
    and ignores the others.

    Attributes:
      name: registered name (``dsgd``, ``dsgdm``, ``qgm``, ``gradient_tracking``,
        ``choco``, ``push_sum``, ``d2``, ``fedavg``, ``local_sgd``).
      local_steps: optimizer steps (batches) per node per round, ≥ 1. Gradient
        tracking takes one step per round on the mean gradient of these batches.
      order: ``dsgd`` only: ``atc`` (adapt then combine) or ``cta``.
      momentum: ``dsgdm``/``qgm``: the momentum ``β`` in ``[0, 1)``; use a base
        optimizer without momentum of its own (``optimizer=sgd``).
      nesterov: ``dsgdm``/``qgm``: Nesterov's direction instead of heavy ball.
      mu: ``qgm`` only: decay ``μ`` in ``[0, 1)`` of the quasi-global buffer's
        average of model differences; ``null`` uses ``momentum`` (the paper's
        choice).
      gamma: ``choco`` and ``dsgd_ef``: consensus step size ``γ`` in ``(0, 1]``; ``1`` with
        ``compression=identity`` is D-SGD, strong compression needs a small one.
    """

    name: str = "dsgd"
    local_steps: int = 1
    order: str = "atc"
    momentum: float = 0.9
    nesterov: bool = False
    mu: float | None = None
    gamma: float = 1.0
