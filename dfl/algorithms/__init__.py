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
from dfl.algorithms.dsgd import DSGDState, dsgd
from dfl.algorithms.fedavg import fedavg
from dfl.algorithms.local import GradFn, local_updates, value_and_grad

ALGORITHMS: dict[str, Callable[..., Algorithm]] = {"dsgd": dsgd, "fedavg": fedavg}
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
    "DSGDState",
    "GradFn",
    "LossFn",
    "MissingRule",
    "MixingRequirements",
    "build_algorithm",
    "dsgd",
    "fedavg",
    "identity_decode",
    "local_updates",
    "value_and_grad",
]
