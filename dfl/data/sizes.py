"""Batch size against the nodes' data: a batch larger than a node's data repeats examples."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np


def check_batch_size(counts: Sequence[int] | np.ndarray, batch_size: int) -> str | None:
    """Warns (and returns the message) when ``batch_size`` exceeds some node's training data.

    Batches are drawn with replacement (:mod:`dfl.data.batching`), so such a run is
    valid, but each of those nodes' batches repeats examples and its "epoch" is
    shorter than one batch: a warning, not an error (tiny smoke runs rely on it).

    Args:
      counts: training examples per node.
      batch_size: ``data.batch_size``.

    Returns:
      The warning's text, or ``None`` when every node holds at least one batch.

    Examples:
      >>> check_batch_size([40, 30, 50], 32)  # doctest: +SKIP
      'data.batch_size=32 is larger than node 1's 30 training examples ...'
    """
    counts = np.asarray(counts)
    small = np.flatnonzero(counts < batch_size)
    if small.size == 0:
        return None
    node = int(small[np.argmin(counts[small])])
    message = (
        f"data.batch_size={batch_size} is larger than node {node}'s {int(counts[node])} "
        f"training examples ({small.size} of {counts.size} nodes hold fewer than {batch_size}): "
        "their batches repeat examples (sampling is with replacement); lower data.batch_size "
        "or use fewer nodes (topology.n)"
    )
    warnings.warn(message, UserWarning, stacklevel=2)
    return message
