"""Structured-config schemas of the ``byzantine`` group: one dataclass per robust rule.

The group's choice is the combine rule (``byzantine=clipped_gossip``); the attackers and
their attack are options every choice takes, so plain gossip under attack is
``byzantine=none byzantine.attackers=1 byzantine.attack=sign_flip``. A rule's own
options (``byzantine.tau`` of ClippedGossip, ``byzantine.m`` of Krum) fail at compose
time under another rule. The default, ``none`` with no attackers and no detection, is
the ordinary run: the round keeps the mixed-sum exchange and its compiled path.
See :mod:`dfl.robust` for the math and :mod:`dfl.robust.plan` for the checks.
"""

from __future__ import annotations

import dataclasses
import math

from dfl.config.choices import Attack, TauRule


@dataclasses.dataclass
class ByzantineConfig:
    """Attackers, the attack, detection and the combine rule (``conf/byzantine/*.yaml``).

    Attributes:
      name: the robust combine rule: ``none`` (plain gossip ``Σ_j W_ij m_j``),
        ``clipped_gossip``, ``trimmed_mean``, ``median`` or ``krum``.
      attackers: how many attackers the run has, placed uniformly at random by
        ``placement_seed`` (a count over the *whole run*; ignored when ``nodes`` is set).
      nodes: the attackers as an explicit list of node ids instead.
      placement_seed: the placement's seed (``None``: the run's ``seed``).
      attack: ``none`` (attackers behave), ``sign_flip``, ``gaussian``, ``alie``,
        ``ipm``, ``dissensus`` (model-level, sent instead of the honest message) or
        ``label_flip`` (data-level: the attackers train on flipped labels).
      scale: sign flip's factor (sends ``−scale · m``).
      sigma: Gaussian noise's standard deviation.
      z: ALIE's ``z`` (``None``: Baruch et al.'s value for each attacker's
        neighbourhood size and ``b``).
      epsilon: IPM's ``ε`` and the dissensus attack's ``ε``.
      b: Byzantine in-neighbours the rule tolerates *per neighbourhood* (``None``: the
        largest count the placement put next to an honest node, at least 1).
      unsafe: run a config that breaks the rule's requirement (in-degree, or more
        attackers next to a node than ``b``) with a warning, recorded in metadata.json.
      detect: flag neighbours whose distance is an outlier over a window
        (:mod:`dfl.robust.detection`) and exclude them from the combine from then on.
      window: detection's window in rounds.
      kappa: detection's outlier factor (``> 1``).
      min_rounds: deliveries in the window before an edge is judged (``None``: the window).
      revoke_flagged: in deployment on Pilot, also revoke a flagged peer's trust (the
        transport refuses a flagged peer's frames in every case).
    """

    name: str = "none"
    attackers: int = 0
    nodes: list[int] | None = None
    placement_seed: int | None = None
    attack: Attack = Attack.none
    scale: float = 1.0
    sigma: float = 1.0
    z: float | None = None
    epsilon: float = 0.1
    b: int | None = None
    unsafe: bool = False
    detect: bool = False
    window: int = 5
    kappa: float = 3.0
    min_rounds: int | None = None
    revoke_flagged: bool = False


@dataclasses.dataclass
class NoneConfig(ByzantineConfig):
    """Plain gossip (no robust rule)."""

    name: str = "none"


@dataclasses.dataclass
class ClippedGossipConfig(ByzantineConfig):
    """Self-centred clipping (He, Karimireddy & Jaggi 2022).

    Attributes:
      tau: ``adaptive`` (clip the ``b`` heaviest in-edges' share of weight farthest
        away), ``oracle`` (the consensus theorem's radius; needs the attackers, a
        study only) or ``fixed`` (``tau_value``).
      tau_value: the fixed radius (``inf``: plain gossip).
    """

    name: str = "clipped_gossip"
    tau: TauRule = TauRule.adaptive
    tau_value: float = math.inf


@dataclasses.dataclass
class TrimmedMeanConfig(ByzantineConfig):
    """Coordinate-wise trimmed mean (BRIDGE-T).

    Attributes:
      keep_own: never trim the node's own value (BRIDGE-T); ``false`` trims over the
        closed neighbourhood (He et al.'s baseline).
    """

    name: str = "trimmed_mean"
    keep_own: bool = True


@dataclasses.dataclass
class MedianConfig(ByzantineConfig):
    """Coordinate-wise median over the closed neighbourhood (BRIDGE-M)."""

    name: str = "median"


@dataclasses.dataclass
class KrumConfig(ByzantineConfig):
    """(Multi-)Krum screening of the closed neighbourhood.

    Attributes:
      m: how many best-scored candidates are averaged (``1``: Krum).
    """

    name: str = "krum"
    m: int = 1


SCHEMAS: dict[str, type[ByzantineConfig]] = {
    "none": NoneConfig,
    "clipped_gossip": ClippedGossipConfig,
    "trimmed_mean": TrimmedMeanConfig,
    "median": MedianConfig,
    "krum": KrumConfig,
}
"""The schema of each ``conf/byzantine/NAME.yaml`` (stored as ``schema/byzantine/NAME``)."""
