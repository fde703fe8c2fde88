"""TensorBoard event files through ``tensorboardX`` (no TensorFlow, no PyTorch needed).

One scalar per numeric record key (``train_loss``, ``test_accuracy_mean``, …) at
``global_step = round``; the event's wall time is when the record was written. A
resumed run passes ``purge_step`` (its first round run again), so TensorBoard hides
what the interrupted attempt logged from that round on, as ``metrics.jsonl`` drops it.
"""

from __future__ import annotations

import time
from pathlib import Path

from tensorboardX import SummaryWriter


class TensorBoardLogger:
    """Writes records as TensorBoard scalars into ``logdir``."""

    def __init__(self, logdir: str | Path, *, purge_step: int | None = None):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        # The file name has whole seconds: a resume within the same second would reuse it
        # (and truncate the first attempt's events) without a finer, sortable suffix.
        suffix = f".{time.time_ns()}"
        self._writer = SummaryWriter(
            logdir=str(self.logdir), purge_step=purge_step, filename_suffix=suffix
        )

    def log(self, step: int, values: dict[str, float]) -> None:
        """Adds each value as a scalar at ``step`` and flushes (a killed run keeps it)."""
        for key, value in values.items():
            self._writer.add_scalar(key, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        """Closes the event file."""
        self._writer.close()
