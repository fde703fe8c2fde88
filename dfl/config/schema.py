"""The structured-config schema of ``python -m dfl.train`` (plain dataclasses).

Hydra validates every composed config against :class:`Config`, so a typo in a
key or a value of the wrong type fails at compose time. The dataclasses carry
no Hydra dependency: library code receives them as plain objects.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dfl.config.algorithm_schema import AlgorithmConfig
from dfl.config.byzantine_schema import ByzantineConfig
from dfl.config.choices import ModelInit
from dfl.config.compression_schema import CompressionConfig
from dfl.config.data_schema import DataConfig
from dfl.config.deploy_schema import CheckpointConfig, NodeConfig, TransportConfig
from dfl.config.logger_schema import LoggerConfig
from dfl.config.network_schema import NetworkConfig
from dfl.config.privacy_schema import PrivacyConfig
from dfl.config.topology_schema import MixingConfig, TopologyConfig


@dataclasses.dataclass
class ModelConfig:
    """The model every node trains (``conf/model/*.yaml``).

    Attributes:
      name: ``logreg``, ``mlp`` or ``cnn``.
      hidden: MLP hidden widths; the CNN uses the first one for its dense layer.
      channels: CNN conv channels.
      init: ``same`` (every node starts from one initialisation, the usual
        choice) or ``independent`` (node i from ``fold_in(key, i)``).
    """

    name: str = "mlp"
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256])
    channels: list[int] = dataclasses.field(default_factory=lambda: [16, 32])
    init: ModelInit = ModelInit.same


@dataclasses.dataclass
class SimConfig:
    """Simulation-runner switches.

    Attributes:
      gossip: ``auto`` picks the fastest exact mixing kernel; a kernel name
        (``dense``, ``circulant``, ``permutation``, ``sparse``, ``segment``)
        forces it (each is exact, they differ in cost and in the order floats
        are summed); ``identity`` skips the exchange (W = I: the floor that
        benchmarks compare against; not a decentralized run).
      progress: show a progress bar.
      scan: run the rounds between host-side events (checkpoints, the end, a
        progress update about twice a second) as one compiled loop, batches
        sampled and evaluation done on device (:mod:`dfl.sim.loop`); ``false``
        dispatches one round at a time (the same records, slower at small N).
      shard_nodes: split the node axis over all JAX devices (several GPUs, or
        several hosts with ``distributed``); ``topology.n`` must be divisible
        by the number of devices.
      distributed: call ``jax.distributed.initialize()`` before anything else
        (multi-host runs; see :mod:`dfl.sim.distributed`).
      coordinator_address: ``host:port`` of process 0 (default
        ``$JAX_COORDINATOR_ADDRESS``; empty and unset: a cluster manager JAX
        detects, e.g. SLURM).
      num_processes: the number of processes (default ``$JAX_NUM_PROCESSES``).
      process_id: this process's id, ``0..num_processes-1`` (default
        ``$JAX_PROCESS_ID``).
      coordinator_bind_address: where process 0's coordinator listens (``host:port``;
        empty: JAX's default, every interface on the coordinator's port), e.g.
        ``127.0.0.1:1234`` for processes on one host.
    """

    gossip: str = "auto"
    progress: bool = True
    scan: bool = True
    shard_nodes: bool = False
    distributed: bool = False
    coordinator_address: str = ""
    num_processes: int | None = None
    process_id: int | None = None
    coordinator_bind_address: str = ""


@dataclasses.dataclass
class Config:
    """The whole run.

    Attributes:
      seed: the one seed every key is derived from (data split, partition,
        init, batches, algorithm randomness).
      rounds: communication rounds.
      eval_every: evaluate (and write a metrics record) every this many rounds;
        the last round is always evaluated.
      topology, mixing, algorithm, model, data: the config groups.
      optimizer: any optax optimizer via ``_target_`` (e.g. ``optax.sgd``),
        whose ``learning_rate`` may itself be an optax schedule via ``_target_``.
      compression: the compressor of the messages (algorithms that compress).
      privacy: DP-SGD at every node and its accounting.
      byzantine: attackers, their attack, detection and the robust combine rule.
      sim: simulation-runner switches.
      network: the network model (virtual time and faults; ``ideal``: none).
      node, transport: the deployed node and how nodes exchange messages.
      checkpoint: periodic orbax checkpoints (simulation and nodes).
      logger: an optional TensorBoard or W&B (offline) mirror of the metrics records.
      resume: a checkpoint directory to continue a run from (``+resume=PATH``).
    """

    seed: int = 0
    rounds: int = 100
    eval_every: int = 10
    topology: TopologyConfig = dataclasses.field(default_factory=TopologyConfig)
    mixing: MixingConfig = dataclasses.field(default_factory=MixingConfig)
    algorithm: AlgorithmConfig = dataclasses.field(default_factory=AlgorithmConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: Any = None
    compression: CompressionConfig = dataclasses.field(default_factory=CompressionConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)
    byzantine: ByzantineConfig = dataclasses.field(default_factory=ByzantineConfig)
    sim: SimConfig = dataclasses.field(default_factory=SimConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    plot: str = ""
    node: NodeConfig = dataclasses.field(default_factory=NodeConfig)
    transport: TransportConfig = dataclasses.field(default_factory=TransportConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)
    resume: str | None = None
