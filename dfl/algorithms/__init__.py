"""Decentralized algorithms as pure per-node phases (see :mod:`dfl.algorithms.base`)."""

from __future__ import annotations

from collections.abc import Callable

from dfl.algorithms.base import (
    Algorithm,
    LossFn,
    MissingRule,
    MixingRequirements,
    RequirementError,
)
from dfl.algorithms.choco import ChocoState, choco
from dfl.algorithms.d2 import D2State, d2
from dfl.algorithms.dsgd import CTAState, DSGDState, dsgd
from dfl.algorithms.dsgd_ef import DSGDEFState, dsgd_ef
from dfl.algorithms.dsgdm import DSGDmState, dsgdm
from dfl.algorithms.fedavg import fedavg, local_sgd
from dfl.algorithms.gradient_tracking import GTMessage, GTState, gradient_tracking
from dfl.algorithms.local import (
    GradFn,
    LocalUpdate,
    local_update,
    value_and_grad,
    with_optimizer,
)
from dfl.algorithms.push_sum import PushSumMessage, PushSumState, push_sum
from dfl.algorithms.qgm import QGMState, qgm

ALGORITHMS: dict[str, Callable[..., Algorithm]] = {
    "dsgd": dsgd,
    "dsgdm": dsgdm,
    "dsgd_ef": dsgd_ef,
    "qgm": qgm,
    "gradient_tracking": gradient_tracking,
    "choco": choco,
    "push_sum": push_sum,
    "d2": d2,
    "fedavg": fedavg,
    "local_sgd": local_sgd,  # alias; the built Algorithm is named "fedavg"
}
"""Registry: ``algorithm.name`` → builder ``(local, **options) -> Algorithm``."""


def build_algorithm(name: str, local: LocalUpdate, **options) -> Algorithm:
    """Builds the algorithm registered as ``name`` on the run's local training.

    Raises:
      ValueError: for an unknown name or an option the algorithm does not take.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; expected one of {sorted(ALGORITHMS)}")
    try:
        return ALGORITHMS[name](local, **options)
    except TypeError as e:
        raise ValueError(f"bad options {options} for algorithm {name!r}: {e}") from e


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "CTAState",
    "ChocoState",
    "D2State",
    "DSGDEFState",
    "DSGDState",
    "DSGDmState",
    "GTMessage",
    "GTState",
    "GradFn",
    "LocalUpdate",
    "LossFn",
    "MissingRule",
    "MixingRequirements",
    "PushSumMessage",
    "PushSumState",
    "QGMState",
    "RequirementError",
    "build_algorithm",
    "choco",
    "d2",
    "dsgd",
    "dsgd_ef",
    "dsgdm",
    "fedavg",
    "gradient_tracking",
    "local_sgd",
    "local_update",
    "push_sum",
    "qgm",
    "value_and_grad",
    "with_optimizer",
]
