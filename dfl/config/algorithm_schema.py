"""Structured-config schemas of the ``algorithm`` group: one dataclass per algorithm.

Every ``conf/algorithm/NAME.yaml`` starts from its own schema (``defaults:
[/schema/algorithm/NAME@_here_]``), so an option another algorithm takes
(``algorithm.gamma=0.5`` under ``algorithm=dsgd``) fails at compose time instead
of being ignored. The top-level :class:`~dfl.config.schema.Config` types the group
as the base :class:`AlgorithmConfig`; composing a choice turns it into the
choice's subclass.
"""

from __future__ import annotations

import dataclasses

from dfl.config.choices import Order


@dataclasses.dataclass
class AlgorithmConfig:
    """What every algorithm takes (``conf/algorithm/*.yaml``).

    Attributes:
      name: registered name (``dsgd``, ``dsgdm``, ``qgm``, ``gradient_tracking``,
        ``choco``, ``push_sum``, ``d2``, ``fedavg``, ``local_sgd``).
      local_steps: optimizer steps (batches) per node per round, ≥ 1. Gradient
        tracking takes one step per round on the mean gradient of these batches.
    """

    name: str = "dsgd"
    local_steps: int = 1


@dataclasses.dataclass
class DSGDConfig(AlgorithmConfig):
    """D-SGD.

    Attributes:
      order: ``atc`` (adapt then combine) or ``cta``.
    """

    name: str = "dsgd"
    order: Order = Order.atc


@dataclasses.dataclass
class DSGDmConfig(AlgorithmConfig):
    """D-SGD with local momentum.

    Attributes:
      momentum: the momentum ``β`` in ``[0, 1)``; use a base optimizer without
        momentum of its own (``optimizer=sgd``).
      nesterov: Nesterov's direction instead of heavy ball.
    """

    name: str = "dsgdm"
    momentum: float = 0.9
    nesterov: bool = False


@dataclasses.dataclass
class QGMConfig(DSGDmConfig):
    """Quasi-global momentum.

    Attributes:
      mu: decay ``μ`` in ``[0, 1)`` of the quasi-global buffer's average of model
        differences; ``null`` uses ``momentum`` (the paper's choice).
    """

    name: str = "qgm"
    mu: float | None = None


@dataclasses.dataclass
class ChocoConfig(AlgorithmConfig):
    """CHOCO-SGD (and, with :class:`DSGDEFConfig`'s fields, D-SGD with error feedback).

    Attributes:
      gamma: consensus step size ``γ`` in ``(0, 1]``; ``1`` with
        ``compression=identity`` is D-SGD, strong compression needs a small one.
    """

    name: str = "choco"
    gamma: float = 1.0


@dataclasses.dataclass
class DSGDEFConfig(ChocoConfig):
    """D-SGD with compressed gossip and error feedback (``gamma`` as CHOCO's)."""

    name: str = "dsgd_ef"


@dataclasses.dataclass
class GradientTrackingConfig(AlgorithmConfig):
    """Gradient tracking (no options of its own)."""

    name: str = "gradient_tracking"


@dataclasses.dataclass
class PushSumConfig(AlgorithmConfig):
    """Stochastic gradient push (no options of its own)."""

    name: str = "push_sum"


@dataclasses.dataclass
class D2Config(AlgorithmConfig):
    """D² / exact diffusion (no options of its own)."""

    name: str = "d2"


@dataclasses.dataclass
class FedAvgConfig(AlgorithmConfig):
    """FedAvg / local SGD (no options of its own)."""

    name: str = "fedavg"


SCHEMAS: dict[str, type[AlgorithmConfig]] = {
    "dsgd": DSGDConfig,
    "dsgdm": DSGDmConfig,
    "qgm": QGMConfig,
    "choco": ChocoConfig,
    "dsgd_ef": DSGDEFConfig,
    "gradient_tracking": GradientTrackingConfig,
    "push_sum": PushSumConfig,
    "d2": D2Config,
    "fedavg": FedAvgConfig,
}
"""The schema of each ``conf/algorithm/NAME.yaml`` (stored as ``schema/algorithm/NAME``)."""
