"""The :class:`Dataset` container and the seeded train/test split it is built with."""

from __future__ import annotations

import dataclasses

import numpy as np

_SPLIT_STREAM = 11  # keeps the split's random stream apart from other uses of a seed


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A labelled classification dataset with a global held-out test set.

    Features keep their natural shape: images carry a trailing channel axis
    (``(28, 28, 1)``, ``(8, 8, 1)``), sequences and tabular data are flat
    (``(40,)``, ``(60,)``).

    Attributes:
      x_train: float32 features ``[n_train, *feature_shape]``.
      y_train: int32 labels ``[n_train]`` in ``[0, num_classes)``.
      x_test: float32 features ``[n_test, *feature_shape]``.
      y_test: int32 labels ``[n_test]``.
      num_classes: number of classes.
      name: dataset name, as given to :func:`dfl.data.load_dataset`.
      train_groups: optional int ``[n_train]`` natural owner (device) of each
        training sample, used by the ``natural`` partition; ``None`` for datasets
        without a natural split (only ``synthetic`` has one).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str
    train_groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"{self.name}: train and test feature shapes differ, found "
                f"{self.x_train.shape[1:]=} and {self.x_test.shape[1:]=}"
            )
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{self.name}: {split} has {x.shape[0]} examples but {y.shape[0]} labels"
                )
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(
                    f"{self.name}: {split} labels must lie in [0, {self.num_classes}), found "
                    f"range [{y.min()}, {y.max()}]"
                )
        if self.train_groups is not None and self.train_groups.shape != self.y_train.shape:
            raise ValueError(
                f"{self.name}: train_groups must have shape {self.y_train.shape}, found "
                f"{self.train_groups.shape}"
            )

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the leading example axis."""
        return tuple(self.x_train.shape[1:])


def check_fraction(test_fraction: float, *, name: str = "test_fraction") -> float:
    """Validates a split fraction in the open interval ``(0, 1)``.

    Args:
      test_fraction: the fraction to check.
      name: how to call it in the error message.

    Returns:
      ``test_fraction`` as a float.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, found {test_fraction!r}")
    return float(test_fraction)


def stratified_split(
    labels: np.ndarray, test_fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Splits example indices into train and test, class by class.

    Each class ``c`` with ``n_c`` examples sends ``round(test_fraction * n_c)`` of
    them, chosen uniformly at random, to the test side, so both sides keep the
    class proportions.

    Args:
      labels: int labels ``[n]``.
      test_fraction: fraction of each class held out, in ``(0, 1)``.
      seed: seed of the shuffle.

    Returns:
      ``(train_idx, test_idx)``: sorted, disjoint int64 index arrays covering ``[0, n)``.
    """
    check_fraction(test_fraction)
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(test_fraction * idx.size)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def from_split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    name: str,
    num_classes: int,
    test_fraction: float,
    seed: int,
) -> Dataset:
    """Builds a :class:`Dataset` from one pool of examples by a stratified split.

    Args:
      x: features ``[n, *feature_shape]`` (cast to float32).
      y: labels ``[n]`` (cast to int32).
      name: dataset name.
      num_classes: number of classes.
      test_fraction: held-out fraction, in ``(0, 1)``.
      seed: seed of the split.

    Returns:
      The dataset.
    """
    train_idx, test_idx = stratified_split(y, test_fraction, seed=seed)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int32)
    return Dataset(
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        num_classes=num_classes,
        name=name,
    )
