"""Config schema (plain dataclasses) and its Hydra registration."""

from dfl.config.algorithm_schema import AlgorithmConfig
from dfl.config.compression_schema import CompressionConfig
from dfl.config.data_schema import DataConfig
from dfl.config.privacy_schema import PrivacyConfig
from dfl.config.schema import Config, ModelConfig, SimConfig
from dfl.config.topology_schema import MixingConfig, TopologyConfig

__all__ = [
    "AlgorithmConfig",
    "CompressionConfig",
    "Config",
    "DataConfig",
    "MixingConfig",
    "ModelConfig",
    "PrivacyConfig",
    "SimConfig",
    "TopologyConfig",
]
