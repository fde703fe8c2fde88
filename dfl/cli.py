"""Shared plumbing of the Hydra entry points (``train``, ``node``, ``launch``, ``inspect``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from dfl.config.closed import check_known_keys
from dfl.config.schema import Config

T = TypeVar("T")


def to_config(cfg: DictConfig) -> Config:
    """The composed Hydra config as the plain :class:`Config` dataclass."""
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config), type(config)
    check_known_keys(config)
    return config


def instantiate_optimizer(cfg: DictConfig) -> Any:
    """The optax optimizer of ``cfg.optimizer`` (``_target_``, schedules nested)."""
    from hydra.utils import instantiate

    if cfg.optimizer is None or "_target_" not in cfg.optimizer:
        raise ValueError(
            "optimizer must name an optax optimizer with _target_, e.g. "
            f"optimizer=sgd or optimizer._target_=optax.adam; found {cfg.optimizer}"
        )
    check_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True))
    return instantiate(cfg.optimizer)


def check_optimizer(tree: Any, path: str = "optimizer") -> None:
    """Checks that the optimizer's arguments are numbers, flags or ``_target_`` nodes.

    A string where optax expects a number (``optimizer.learning_rate=abc``)
    would otherwise fail deep inside the first jitted step without naming the key.

    Raises:
      ValueError: naming the key and its value.
    """
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in ("_target_", "_partial_", "_args_") or str(key).endswith("dtype"):
                continue
            check_optimizer(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            check_optimizer(value, f"{path}[{i}]")
    elif isinstance(tree, str):
        raise ValueError(
            f"{path}={tree!r} is not a number; set a number (e.g. {path}=0.05) or, for a "
            f"schedule, {path}._target_=optax.cosine_decay_schedule with its arguments"
        )


def user_errors(fn: Callable[[], T], *, interrupted: str | None = None) -> T:
    """Runs ``fn``; a config mistake (``ValueError``) exits with its message, not a traceback.

    With ``interrupted``, Ctrl-C exits (status 130) with one line,
    ``dfl: interrupted: <interrupted>`` (e.g. how to resume).
    """
    try:
        return fn()
    except (ValueError, FileNotFoundError) as e:
        print(f"dfl: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"dfl: interrupted: {interrupted}", file=sys.stderr)
        raise SystemExit(130) from None
