"""Checks of the free-form ``optimizer`` group (any optax optimizer via ``_target_``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def learning_rate_problem(optimizer: Any) -> str | None:
    """What is wrong with ``optimizer.learning_rate``, or ``None``.

    A number must be positive (a negative one ascends the loss, zero never moves);
    a schedule (a mapping with ``_target_``) is left to optax; anything else
    (e.g. the string ``"abc"``) is refused before optax fails deep inside a jit.

    Examples:
      >>> learning_rate_problem({"_target_": "optax.sgd", "learning_rate": -0.1})
      'optimizer.learning_rate=-0.1 (expected a positive number)'
      >>> learning_rate_problem({"_target_": "optax.sgd", "learning_rate": 0.1}) is None
      True
    """
    if not isinstance(optimizer, Mapping) or "learning_rate" not in optimizer:
        return None
    lr = optimizer["learning_rate"]
    if isinstance(lr, Mapping) and "_target_" in lr:
        return None
    if isinstance(lr, int | float) and not isinstance(lr, bool) and lr > 0:
        return None
    return f"optimizer.learning_rate={lr!r} (expected a positive number)"
