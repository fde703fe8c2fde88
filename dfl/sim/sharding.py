"""Sharding the node axis over JAX devices (one host or many).

With ``sim.shard_nodes=true`` the stacked state, the per-node data and every
round's batches are laid out over a 1-D device mesh along the leading node
axis; the jitted round is unchanged, and XLA (GSPMD) inserts the collectives
that gossip needs. On several hosts, call ``jax.distributed.initialize()``
first (``sim.distributed=true`` does it in ``python -m dfl.train``): the mesh
then spans every host's devices and each process holds its own slice of nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

NODE_AXIS = "nodes"


def node_mesh(n: int, devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh named ``"nodes"`` over ``devices`` (default: all of them).

    Raises:
      ValueError: if ``n`` nodes do not split evenly over the devices.
    """
    devices = list(devices if devices is not None else jax.devices())
    if n % len(devices):
        raise ValueError(
            f"sim.shard_nodes: topology.n={n} nodes do not split evenly over "
            f"{len(devices)} devices; choose n divisible by {len(devices)}"
        )
    return Mesh(np.asarray(devices), (NODE_AXIS,))


def node_sharding(mesh: Mesh) -> NamedSharding:
    """The layout of arrays whose leading axis is the node axis."""
    return NamedSharding(mesh, PartitionSpec(NODE_AXIS))


def shard_nodes(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf with its leading (node) axis split over ``mesh``.

    Works on one host and across hosts: each device receives only its rows
    (``jax.make_array_from_callback``), so no process needs the others' slices
    on device.
    """
    sharding = node_sharding(mesh)

    def place(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(place, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf whole on every device of ``mesh``."""
    sharding = NamedSharding(mesh, PartitionSpec())

    def place(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(place, tree)
