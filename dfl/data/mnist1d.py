"""MNIST-1D (Greydanus, 2020): 1-D signals of 10 digit templates, generated locally."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from dfl.data.dataset import Dataset, check_fraction


def load_mnist1d(*, seed: int, test_fraction: float = 0.2, num_samples: int = 5000) -> Dataset:
    """Generates MNIST-1D with ``mnist1d.data.make_dataset`` (never downloads).

    ``make_dataset`` reseeds Python's and NumPy's global RNGs; their states are
    saved before and restored after, so the caller's global randomness is left
    as it was. The seed travels in the dataset-args object. Features are
    standardised with the scalar mean and standard deviation of the training
    split (one scalar each, so the shape of every signal is kept).

    Args:
      seed: seed of the generator (and of its train/test split).
      test_fraction: held-out fraction (``1 - train_split`` of mnist1d).
      num_samples: total examples; a multiple of 10 (equal count per class).

    Returns:
      A :class:`Dataset` with features ``(40,)`` and 10 classes.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    check_fraction(test_fraction)
    if num_samples < 20 or num_samples % 10:
        raise ValueError(
            f"mnist1d num_samples must be a multiple of 10 and at least 20, found {num_samples}"
        )
    args: Any = get_dataset_args()  # an ObjectView: attribute access to a dict
    args.seed = int(seed)
    args.num_samples = int(num_samples)
    args.train_split = 1.0 - float(test_fraction)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x_train = np.asarray(raw["x"], dtype=np.float64)
    x_test = np.asarray(raw["x_test"], dtype=np.float64)
    mean, std = x_train.mean(), x_train.std()
    return Dataset(
        x_train=((x_train - mean) / std).astype(np.float32),
        y_train=np.asarray(raw["y"], dtype=np.int32),
        x_test=((x_test - mean) / std).astype(np.float32),
        y_test=np.asarray(raw["y_test"], dtype=np.int32),
        num_classes=10,
        name="mnist1d",
    )
