"""From a :class:`Dataset` to per-node data: partition, optional local test split, stacking.

The runners need one call: :func:`from_config` (or :func:`load_dataset` then
:func:`prepare`). Evaluation conventions:

* ``test_accuracy_*`` metrics use the **global** held-out test set
  (``Federated.test_x``/``test_y``), the same for every node.
* with ``local_test_fraction > 0`` each node also holds out part of its own
  partition (``Federated.local_test``), which gives ``local_test_accuracy_*``
  (accuracy on the node's own distribution: what personalisation cares about).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.data.dataset import Dataset
from dfl.data.node_data import NodeData, stack_partitions
from dfl.data.partition import partition, partition_summary
from dfl.data.registry import load_dataset

if TYPE_CHECKING:
    from dfl.config.data_schema import DataConfig

_LOCAL_TEST_STREAM = 33  # keeps the local split's random stream apart from the partition's


@dataclasses.dataclass(frozen=True)
class Federated:
    """A dataset split over ``N`` nodes, ready for simulation or deployment.

    Attributes:
      name: dataset name.
      train: per-node training data, stacked (:class:`NodeData`, leading axis ``N``);
        every node has at least one example.
      test_x: global test features ``[n_test, *feature_shape]`` (float32).
      test_y: global test labels ``[n_test]`` (int32).
      local_test: per-node held-out data (``local_test_fraction > 0``) or ``None``;
        a node's count may be 0 when its partition is tiny.
      num_classes: number of classes.
      feature_shape: shape of one example.
      parts: per-node training indices into the dataset's ``x_train``.
      summary: :func:`partition_summary` of the training parts, plus
        ``"local_test_counts"`` (list, or ``None``), ``"scheme"`` and ``"num_test"``.
    """

    name: str
    train: NodeData
    test_x: jax.Array
    test_y: jax.Array
    local_test: NodeData | None
    num_classes: int
    feature_shape: tuple[int, ...]
    parts: tuple[np.ndarray, ...]
    summary: dict[str, Any]

    @property
    def num_nodes(self) -> int:
        """Number of nodes ``N``."""
        return int(self.train.counts.shape[0])


def split_local_test(
    parts: list[np.ndarray], fraction: float, *, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Holds out ``round(fraction * n_i)`` random samples of every node's partition.

    At least one sample always stays on the training side.

    Args:
      parts: per-node index arrays.
      fraction: held-out fraction in ``[0, 1)``; 0 holds out nothing.
      seed: seed of the choice.

    Returns:
      ``(train_parts, test_parts)``, sorted index arrays, disjoint per node.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"local_test_fraction must lie in [0, 1), found {fraction!r}")
    rng = np.random.default_rng([seed, _LOCAL_TEST_STREAM])
    train, test = [], []
    for p in parts:
        perm = rng.permutation(p)
        n_test = min(round(fraction * p.size), max(p.size - 1, 0))
        test.append(np.sort(perm[:n_test]))
        train.append(np.sort(perm[n_test:]))
    return train, test


def prepare(
    data: Dataset,
    *,
    num_nodes: int,
    scheme: str,
    seed: int,
    alpha: float = 0.5,
    classes_per_node: int = 2,
    min_size: int = 1,
    local_test_fraction: float = 0.0,
) -> Federated:
    """Partitions ``data``'s training set over nodes and stacks it.

    Args:
      data: the dataset.
      num_nodes: number of nodes ``N``.
      scheme: partition scheme (see :func:`dfl.data.partition`); ``natural`` uses
        ``data.train_groups``.
      seed: seed of the partition and of the local test split.
      alpha: Dirichlet concentration (``dirichlet``).
      classes_per_node: shards per node (``shards``).
      min_size: fewest samples per node before the local test split.
      local_test_fraction: per-node held-out fraction, 0 for none.

    Returns:
      The :class:`Federated` data.
    """
    if not 0.0 <= local_test_fraction < 1.0:
        raise ValueError(f"local_test_fraction must lie in [0, 1), found {local_test_fraction!r}")
    parts = partition(
        data.y_train,
        num_nodes,
        scheme,
        seed=seed,
        alpha=alpha,
        classes_per_node=classes_per_node,
        groups=data.train_groups,
        min_size=min_size,
    )
    local_test = None
    local_counts = None
    if local_test_fraction > 0:
        parts, test_parts = split_local_test(parts, local_test_fraction, seed=seed)
        local_test = stack_partitions(data.x_train, data.y_train, test_parts)
        local_counts = [int(p.size) for p in test_parts]
    empty = [i for i, p in enumerate(parts) if p.size == 0]
    if empty:
        raise ValueError(
            f"nodes {empty} got no training samples; expected at least one each (raise min_size "
            "or lower num_nodes)"
        )
    summary = partition_summary(parts, data.y_train, data.num_classes)
    summary.update(scheme=scheme, local_test_counts=local_counts, num_test=int(data.y_test.size))
    return Federated(
        name=data.name,
        train=stack_partitions(data.x_train, data.y_train, parts),
        test_x=jnp.asarray(data.x_test, dtype=jnp.float32),
        test_y=jnp.asarray(data.y_test, dtype=jnp.int32),
        local_test=local_test,
        num_classes=data.num_classes,
        feature_shape=data.feature_shape,
        parts=tuple(parts),
        summary=summary,
    )


def dataset_kwargs(cfg: DataConfig, *, num_nodes: int) -> dict[str, Any]:
    """The dataset-specific ``load_dataset`` options a :class:`DataConfig` asks for.

    Args:
      cfg: the ``data`` config (a ``DataConfig`` or a DictConfig with its fields).
      num_nodes: number of nodes (the default ``num_devices`` of ``synthetic``).

    Returns:
      Keyword options for :func:`dfl.data.load_dataset` (beyond seed, fraction, path).
    """
    if cfg.name == "synthetic":
        return {
            "alpha": float(cfg.synthetic_alpha),
            "beta": float(cfg.synthetic_beta),
            "num_devices": int(cfg.num_devices) if cfg.num_devices > 0 else num_nodes,
            "samples_per_device": int(cfg.samples_per_device),
        }
    if cfg.name == "mnist1d" and cfg.num_samples > 0:
        return {"num_samples": int(cfg.num_samples)}
    return {}


def from_config(cfg: DataConfig, *, num_nodes: int, seed: int) -> Federated:
    """Loads, splits and partitions the data a ``data`` config describes.

    Equivalent to::

        s = cfg.seed if cfg.seed is not None else seed
        ds = load_dataset(cfg.name, seed=s, test_fraction=cfg.test_fraction, path=cfg.path,
                          **dataset_kwargs(cfg, num_nodes=num_nodes))
        prepare(ds, num_nodes=num_nodes, scheme=cfg.partition, seed=s, alpha=cfg.alpha,
                classes_per_node=cfg.classes_per_node, min_size=cfg.min_size,
                local_test_fraction=cfg.local_test_fraction)

    ``cfg.batch_size`` is not used here: pass it to :func:`dfl.data.sample_batches`.

    Args:
      cfg: the ``data`` config (a ``DataConfig`` or a DictConfig with its fields).
      num_nodes: number of nodes (the topology's size).
      seed: the run seed; ``cfg.seed`` overrides it when set.

    Returns:
      The :class:`Federated` data.
    """
    s = int(cfg.seed) if cfg.seed is not None else int(seed)
    ds = load_dataset(
        cfg.name,
        seed=s,
        test_fraction=float(cfg.test_fraction),
        path=cfg.path,
        **dataset_kwargs(cfg, num_nodes=num_nodes),
    )
    return prepare(
        ds,
        num_nodes=num_nodes,
        scheme=cfg.partition,
        seed=s,
        alpha=float(cfg.alpha),
        classes_per_node=int(cfg.classes_per_node),
        min_size=int(cfg.min_size),
        local_test_fraction=float(cfg.local_test_fraction),
    )
