"""Datasets, partitions over nodes, stacked per-node data and batch sampling.

Typical use (what the runners do)::

    fed = dfl.data.from_config(cfg.data, num_nodes=n, seed=seed)
    xb, yb = dfl.data.sample_batches(round_key, fed.train,
                                     batch_size=cfg.data.batch_size, local_steps=k)
    # a deployed node i instead:
    mine = dfl.data.node_slice(fed.train, i)
    xb, yb = dfl.data.sample_node_batches(jax.random.fold_in(round_key, i), *mine,
                                          batch_size=..., local_steps=k)
"""

from dfl.data.batching import sample_batches, sample_node_batches
from dfl.data.dataset import Dataset, stratified_split
from dfl.data.digits import load_digits
from dfl.data.federated import (
    Federated,
    dataset_kwargs,
    from_config,
    prepare,
    split_local_test,
)
from dfl.data.idx import load_mnist, read_idx
from dfl.data.mnist1d import load_mnist1d
from dfl.data.mnist_subset import load_mnist_subset
from dfl.data.node_data import NodeData, node_slice, stack_partitions
from dfl.data.partition import SCHEMES, partition, partition_summary
from dfl.data.registry import DATASET_NAMES, dataset_options, load_dataset
from dfl.data.synthetic import load_synthetic

__all__ = [
    "DATASET_NAMES",
    "SCHEMES",
    "Dataset",
    "Federated",
    "NodeData",
    "dataset_kwargs",
    "dataset_options",
    "from_config",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_mnist1d",
    "load_mnist_subset",
    "load_synthetic",
    "node_slice",
    "partition",
    "partition_summary",
    "prepare",
    "read_idx",
    "sample_batches",
    "sample_node_batches",
    "split_local_test",
    "stack_partitions",
    "stratified_split",
]
