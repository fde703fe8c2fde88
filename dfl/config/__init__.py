"""Config schema (plain dataclasses) and its Hydra registration."""

from dfl.config.data_schema import DataConfig
from dfl.config.schema import AlgorithmConfig, Config, ModelConfig, SimConfig
from dfl.config.topology_schema import MixingConfig, TopologyConfig

__all__ = [
    "AlgorithmConfig",
    "Config",
    "DataConfig",
    "MixingConfig",
    "ModelConfig",
    "SimConfig",
    "TopologyConfig",
]
