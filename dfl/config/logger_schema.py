"""The ``logger`` config group: an optional mirror of ``metrics.jsonl`` in a researcher's tool."""

from __future__ import annotations

import dataclasses

from dfl.config.choices import Choice


class LoggerName(Choice):
    """``logger.name``: where the records go besides ``metrics.jsonl`` / ``metrics.csv``."""

    none = "none"
    tensorboard = "tensorboard"
    wandb = "wandb"


@dataclasses.dataclass
class LoggerConfig:
    """An extra logger fed every record the run writes (``conf/logger/*.yaml``).

    Attributes:
      name: ``none`` (default), ``tensorboard`` (event files, ``tensorboardX``) or
        ``wandb`` (Weights & Biases in offline mode: files only, no server).
      dir: where the logger's ``tensorboard/`` or ``wandb/`` folder goes (default:
        the run directory).
      project: the W&B project name (kept for ``wandb sync``).
      run_name: the W&B run's name (default: the run directory's name).
    """

    name: LoggerName = LoggerName.none
    dir: str = ""
    project: str = "dfl"
    run_name: str = ""
