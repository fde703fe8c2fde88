"""The scikit-learn ``digits`` dataset: 1,797 8x8 grey images of 10 digits."""

from __future__ import annotations

import numpy as np

from dfl.data.dataset import Dataset, from_split


def load_digits(*, seed: int, test_fraction: float = 0.2) -> Dataset:
    """Loads sklearn's bundled ``digits`` (no download), scaled to ``[0, 1]``.

    Args:
      seed: seed of the stratified train/test split.
      test_fraction: held-out fraction of each class.

    Returns:
      A :class:`Dataset` with features ``(8, 8, 1)`` in ``[0, 1]`` and 10 classes.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    data, target = _sk_load_digits(return_X_y=True)
    x = (np.asarray(data, dtype=np.float32) / 16.0).reshape(-1, 8, 8, 1)
    return from_split(
        x, np.asarray(target), name="digits", num_classes=10, test_fraction=test_fraction, seed=seed
    )
