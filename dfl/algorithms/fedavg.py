"""FedAvg / local SGD: the centralized baseline as a decentralized algorithm.

Every node takes ``local_steps`` optimizer steps, then all nodes replace their
parameters by the exact average. In dfl it runs on the complete graph with
uniform weights (``W = 11ᵀ/n``), which the runner checks, so its exchange is the
same mixed sum as every other algorithm.

References:
  McMahan et al., "Communication-Efficient Learning of Deep Networks from
  Decentralized Data", AISTATS 2017. Stich, "Local SGD Converges Fast and
  Communicates Little", ICLR 2019.
"""

from __future__ import annotations

import dataclasses

from dfl.algorithms.base import Algorithm, MissingRule, MixingRequirements
from dfl.algorithms.dsgd import dsgd
from dfl.algorithms.local import LocalUpdate


def fedavg(local: LocalUpdate) -> Algorithm:
    """FedAvg: adapt-then-combine D-SGD whose W must be the exact average."""
    return dataclasses.replace(
        dsgd(local, order="atc"),
        name="fedavg",
        requirements=MixingRequirements(stochastic="doubly", exact_average=True),
        missing_rule=MissingRule.WAIT,
    )


local_sgd = fedavg
"""Local SGD (Stich 2019) is FedAvg with full participation: the same algorithm."""
