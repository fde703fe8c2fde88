"""Structured-config schema of the ``data`` group."""

from __future__ import annotations

import dataclasses

from dfl.config.choices import Partition


@dataclasses.dataclass
class DataConfig:
    """Dataset, split, partition over nodes and batching (``conf/data/*.yaml``).

    ``dfl.data.from_config(cfg.data, num_nodes=..., seed=...)`` turns it into
    per-node data; ``batch_size`` goes to ``dfl.data.sample_batches``.

    Attributes:
      name: dataset name: ``digits``, ``mnist_subset``, ``mnist1d``, ``mnist`` or
        ``synthetic``.
      path: folder of the dataset files; only ``mnist`` reads files (the four IDX
        files, optionally ``.gz``). Nothing is ever downloaded.
      test_fraction: fraction held out as the global test set, in ``(0, 1)``
        (stratified per class; per device for ``synthetic``; ``mnist`` keeps its
        official 10,000-image test set and ignores it).
      seed: seed of the data split and partition; ``None`` uses the run seed.
      partition: how training samples go to nodes: ``iid``, ``dirichlet``,
        ``shards`` or ``natural`` (``synthetic`` only: device ``i`` -> node ``i``).
      alpha: Dirichlet concentration of the ``dirichlet`` partition (small =
        few classes per node, large = near IID).
      classes_per_node: single-class shards per node of the ``shards`` partition
        (each node sees at most this many classes).
      min_size: fewest training samples per node (``dirichlet`` redraws until met).
      batch_size: examples per local step per node (sampled with replacement).
      local_test_fraction: fraction of each node's partition held out as its local
        test set (``local_test_accuracy_*`` metrics); 0 turns it off. The
        ``test_accuracy_*`` metrics always use the global test set.
      synthetic_alpha: Synthetic(α, β) model heterogeneity α (std of ``u_k``).
      synthetic_beta: Synthetic(α, β) input heterogeneity β (std of ``B_k``).
      num_devices: Synthetic(α, β) devices; 0 = one per node (needed by ``natural``).
      samples_per_device: Synthetic(α, β) samples per device; 0 = LEAF's lognormal
        sizes ``int(lognormal(4, 2)) + 50``.
      num_samples: ``mnist1d`` total examples (a multiple of 10); 0 = its default 5,000.
    """

    name: str = "digits"
    path: str | None = None
    test_fraction: float = 0.2
    seed: int | None = None
    partition: Partition = Partition.iid
    alpha: float = 0.5
    classes_per_node: int = 2
    min_size: int = 1
    batch_size: int = 32
    local_test_fraction: float = 0.0
    synthetic_alpha: float = 1.0
    synthetic_beta: float = 1.0
    num_devices: int = 0
    samples_per_device: int = 0
    num_samples: int = 0
