"""Byzantine robustness, the math half: robust combine rules, attacks, placement, detection.

Every rule works on the gathered, edge-indexed exchange form (see
:mod:`dfl.robust.segments`): ``own`` ``[N, ...]``, ``messages_e`` ``[E, ...]``, ``dst`` /
``src`` ``[E]``, ``delivered`` ``[E]``; vectorized over all nodes with segment operations,
``O((N + E) · P)`` memory, jittable with static ``N`` and ``E``. Wiring into the runners
(config group, exchange, metrics, transport cut-off) is not part of this package.
"""

from dfl.robust.attacks import (
    Received,
    alie,
    alie_z,
    dissensus,
    dissensus_view,
    flip_labels,
    gaussian_noise,
    inject,
    ipm,
    received_stats,
    reverse_edges,
    sign_flip,
)
from dfl.robust.clipping import (
    adaptive_tau,
    budget_weight,
    byzantine_weight,
    clipped_gossip,
    oracle_tau,
)
from dfl.robust.detection import DetectorState, flag_counts, init_detector, update_detector
from dfl.robust.krum import KrumPairs, krum, krum_pairs
from dfl.robust.placement import (
    attackers_per_node,
    byzantine_mask,
    place_attackers,
    placement_report,
)
from dfl.robust.requirements import MIN_IN_DEGREE, check_in_degree, required_in_degree
from dfl.robust.segments import edge_distances, edges_of, gather, in_degree
from dfl.robust.trimmed import median, trimmed_mean

__all__ = [
    "MIN_IN_DEGREE",
    "DetectorState",
    "KrumPairs",
    "Received",
    "adaptive_tau",
    "alie",
    "alie_z",
    "attackers_per_node",
    "budget_weight",
    "byzantine_mask",
    "byzantine_weight",
    "check_in_degree",
    "clipped_gossip",
    "dissensus",
    "dissensus_view",
    "edge_distances",
    "edges_of",
    "flag_counts",
    "flip_labels",
    "gather",
    "gaussian_noise",
    "in_degree",
    "init_detector",
    "inject",
    "ipm",
    "krum",
    "krum_pairs",
    "median",
    "oracle_tau",
    "place_attackers",
    "placement_report",
    "received_stats",
    "required_in_degree",
    "reverse_edges",
    "sign_flip",
    "trimmed_mean",
    "update_detector",
]
