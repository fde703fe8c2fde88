"""Decentralized algorithms as pure per-node phases (see :mod:`dfl.algorithms.base`)."""

from __future__ import annotations

from collections.abc import Callable

import optax

from dfl.algorithms.base import (
    Algorithm,
    LossFn,
    MissingRule,
    MixingRequirements,
    identity_decode,
)
from dfl.algorithms.choco import ChocoState, choco
from dfl.algorithms.d2 import D2State, d2
from dfl.algorithms.dsgd import DSGDState, dsgd
from dfl.algorithms.dsgd_ef import DSGDEFState, dsgd_ef
from dfl.algorithms.dsgdm import DSGDmState, dsgdm
from dfl.algorithms.fedavg import fedavg, local_sgd
from dfl.algorithms.gradient_tracking import GTMessage, GTState, gradient_tracking
from dfl.algorithms.local import GradFn, local_updates, value_and_grad
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
"""Registry: ``algorithm.name`` → builder ``(loss_fn, optimizer, **options) -> Algorithm``."""


def build_algorithm(
    name: str, loss_fn: LossFn, optimizer: optax.GradientTransformation, **options
) -> Algorithm:
    """Builds the algorithm registered as ``name``.

    Raises:
      ValueError: for an unknown name or an option the algorithm does not take.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; expected one of {sorted(ALGORITHMS)}")
    try:
        return ALGORITHMS[name](loss_fn, optimizer, **options)
    except TypeError as e:
        raise ValueError(f"bad options {options} for algorithm {name!r}: {e}") from e


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "ChocoState",
    "D2State",
    "DSGDEFState",
    "DSGDState",
    "DSGDmState",
    "GTMessage",
    "GTState",
    "GradFn",
    "LossFn",
    "MissingRule",
    "MixingRequirements",
    "PushSumMessage",
    "PushSumState",
    "QGMState",
    "build_algorithm",
    "choco",
    "d2",
    "dsgd",
    "dsgd_ef",
    "dsgdm",
    "fedavg",
    "gradient_tracking",
    "identity_decode",
    "local_sgd",
    "local_updates",
    "push_sum",
    "qgm",
    "value_and_grad",
]
