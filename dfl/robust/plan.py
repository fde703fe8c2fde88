"""The host-side plan of a Byzantine run: who attacks, which rule, and the checks.

:func:`make_plan` turns the ``byzantine`` config group, the mixing schedule and the
algorithm into a :class:`ByzantinePlan`, refusing with a clear error:

* a robust rule or detection with an algorithm whose missing-message rule is ``WAIT``
  (CHOCO, gradient tracking, push-sum, D², FedAvg): a rule that drops or reshapes a
  neighbour's message breaks their invariants;
* a schedule without a period (random matching): no fixed edge slots;
* a graph that breaks the rule's requirement (:mod:`dfl.robust.requirements`) at an
  honest node, or a placement that puts more than ``b`` attackers next to an honest
  node — unless ``byzantine.unsafe=true``, which warns and lists the violations in
  :meth:`ByzantinePlan.metadata` (the run's ``metadata.json``).

``b`` is per neighbourhood; the run's attacker count is placed by seed
(:func:`dfl.robust.placement.place_attackers`), and :meth:`ByzantinePlan.metadata`
reports the per-node count the placement produced.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import jax
import numpy as np

from dfl.algorithms.base import MissingRule
from dfl.config.byzantine_schema import ByzantineConfig
from dfl.gossip.gathered import Edges
from dfl.gossip.structure import dense_period_matrices, off_diagonal_in_degree
from dfl.robust.attacks import alie_z
from dfl.robust.detection import DetectorState, update_detector
from dfl.robust.messages import AttackSpec
from dfl.robust.placement import attackers_per_node, byzantine_mask, place_attackers
from dfl.robust.requirements import check_in_degree
from dfl.robust.rules import RULES, RuleSpec, robust_mix
from dfl.topology.schedule import MixingSchedule

ATTACKS = ("none", "sign_flip", "gaussian", "alie", "ipm", "dissensus", "label_flip")
"""The attacks of ``byzantine.attack``."""

ALIE_FALLBACK_Z = 1.0
"""ALIE's ``z`` where Baruch et al.'s formula is undefined or ``≤ 0`` (small neighbourhoods)."""


def active(cfg: ByzantineConfig) -> bool:
    """Whether the run needs the gathered exchange (anything but the default)."""
    count = len(cfg.nodes) if cfg.nodes is not None else cfg.attackers
    return cfg.name != "none" or cfg.detect or count > 0


@dataclasses.dataclass(frozen=True)
class ByzantinePlan:
    """Everything the runners need, host side.

    Attributes:
      config: the ``byzantine`` config group.
      attackers: sorted attacker ids.
      byzantine: ``bool [N]``.
      per_node: ``int [N]`` attackers among each node's in-neighbours (union over the period).
      rule: the combine rule.
      attack: the attack.
      violations: what ``unsafe`` let through (empty otherwise).
    """

    config: ByzantineConfig
    attackers: np.ndarray
    byzantine: np.ndarray
    per_node: np.ndarray
    rule: RuleSpec
    attack: AttackSpec
    violations: tuple[str, ...] = ()

    @property
    def detect(self) -> bool:
        """Whether the outlier detector runs."""
        return bool(self.config.detect)

    def screen_and_mix(
        self,
        own: Any,
        messages_e: Any,
        edges: Edges,
        delivered: jax.Array,
        detector: DetectorState,
        *,
        byzantine_e: jax.Array,
        pairs: Any,
    ) -> tuple[Any, DetectorState]:
        """One combine of the rule over the in-edge messages (jittable, both modes):
        the detector updated first (when on), its flagged edges left out of the mix.

        Args:
          own: the receivers' own messages (leading axis: receivers).
          messages_e: one message per edge slot of ``edges``.
          edges: the edge slots (gathered form).
          delivered: bool per edge slot, the messages that arrived.
          detector: the detector state before this round.
          byzantine_e: bool per edge slot, the sender is an attacker (for oracle rules).
          pairs: Krum's pair index (``None`` for other rules).

        Returns:
          ``(mixed, detector)``: the mixed messages and the updated detector.
        """
        if self.detect:
            detector = update_detector(
                detector,
                own,
                messages_e,
                edges.dst,
                delivered=delivered,
                kappa=self.config.kappa,
                min_rounds=self.config.min_rounds,
            )
        use = delivered & ~detector.flagged
        mixed = robust_mix(
            own, messages_e, edges, use, self.rule, byzantine_e=byzantine_e, pairs=pairs
        )
        return mixed, detector

    def metadata(self) -> dict[str, Any]:
        """The ``byzantine`` entry of ``metadata.json``."""
        honest = ~self.byzantine
        return {
            "byzantine": {
                "rule": self.rule.name,
                "b": self.rule.b,
                "attack": self.attack.name,
                "attack_options": self.attack._asdict(),
                "attackers": [int(a) for a in self.attackers],
                "attackers_per_node": self.per_node.tolist(),
                "max_attackers_per_honest_node": int(self.per_node[honest].max(initial=0)),
                "detect": self.detect,
                "unsafe": bool(self.config.unsafe),
                "violations": list(self.violations),
            }
        }


def _check_options(cfg: ByzantineConfig) -> None:
    checks = [
        ("byzantine.name", cfg.name, cfg.name in RULES, f"one of {RULES}"),
        ("byzantine.attack", cfg.attack, cfg.attack in ATTACKS, f"one of {ATTACKS}"),
        ("byzantine.attackers", cfg.attackers, cfg.attackers >= 0, "≥ 0"),
        ("byzantine.b", cfg.b, cfg.b is None or cfg.b >= 0, "≥ 0 or null"),
        ("byzantine.window", cfg.window, cfg.window >= 1, "≥ 1"),
        ("byzantine.kappa", cfg.kappa, cfg.kappa > 1, "> 1"),
        ("byzantine.sigma", cfg.sigma, cfg.sigma >= 0, "≥ 0"),
        (
            "byzantine.min_rounds",
            cfg.min_rounds,
            cfg.min_rounds is None or 1 <= cfg.min_rounds <= cfg.window,
            f"in [1, window={cfg.window}] or null",
        ),
        ("byzantine.m", getattr(cfg, "m", 1), getattr(cfg, "m", 1) >= 1, "≥ 1"),
    ]
    bad = [f"{name}={value!r} (expected {want})" for name, value, ok, want in checks if not ok]
    if bad:
        raise ValueError("invalid byzantine config: " + "; ".join(bad))


def make_plan(
    cfg: ByzantineConfig,
    schedule: MixingSchedule,
    *,
    algorithm: str,
    missing_rule: MissingRule,
    seed: int,
) -> ByzantinePlan:
    """The :class:`ByzantinePlan` of a run (see the module for what it refuses).

    Args:
      cfg: the ``byzantine`` config group.
      schedule: the run's mixing schedule.
      algorithm: the algorithm's name (for errors).
      missing_rule: the algorithm's missing-message rule.
      seed: the run's seed (the placement's unless ``byzantine.placement_seed``).

    Raises:
      ValueError: naming the bad value and what was expected.
    """
    _check_options(cfg)
    n = schedule.n
    if (cfg.name != "none" or cfg.detect) and missing_rule == MissingRule.WAIT:
        what = f"byzantine={cfg.name}" if cfg.name != "none" else "byzantine.detect=true"
        raise ValueError(
            f"{what} needs an algorithm that may drop or reshape a neighbour's message "
            f"(missing_rule RENORMALIZE: dsgd, dsgdm, qgm, dsgd_ef); {algorithm!r} must WAIT for "
            "every message and its invariants break under a robust rule"
        )
    mats = dense_period_matrices(schedule)
    if mats is None:
        raise ValueError(
            f"byzantine runs need a periodic topology (fixed edge slots); "
            f"topology {schedule.graphs.name!r} is random"
        )
    if cfg.nodes is not None:
        attackers = place_attackers(n, nodes=cfg.nodes)
    else:
        seed_ = seed if cfg.placement_seed is None else cfg.placement_seed
        attackers = place_attackers(n, count=cfg.attackers, seed=seed_)
    byz = byzantine_mask(n, attackers)
    union = np.zeros((n, n), bool)
    for W in mats:
        union |= np.abs(W) > 0
    np.fill_diagonal(union, False)
    dst, src = np.nonzero(union)
    per_node = attackers_per_node(dst, src, attackers, n)
    honest = np.flatnonzero(~byz)
    most = int(per_node[honest].max(initial=0))
    b = cfg.b if cfg.b is not None else max(most, 1)
    violations: list[str] = []
    if cfg.name != "none":
        for t, W in enumerate(mats):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                bad = check_in_degree(
                    off_diagonal_in_degree(W), rule=cfg.name, b=b, unsafe=True, nodes=honest
                )
            if bad:
                message = str(caught[0].message).removeprefix("unsafe: ")
                violations.append(
                    f"round {t} of the period: {message}" if len(mats) > 1 else message
                )
        if most > b:
            over = [int(i) for i in honest if per_node[i] > b]
            violations.append(
                f"the placement puts up to {most} attackers next to an honest node, more than "
                f"byzantine.b={b} (nodes {over[:10]})"
            )
    if violations and not cfg.unsafe:
        raise ValueError(
            "byzantine: " + "; ".join(violations) + ". Set byzantine.unsafe=true to run it anyway "
            "(warned and recorded in metadata.json)"
        )
    for v in violations:
        warnings.warn(f"byzantine.unsafe=true: {v}", stacklevel=2)
    rule = RuleSpec(
        name=cfg.name,
        b=b,
        tau=str(getattr(cfg, "tau", "adaptive")),
        tau_value=float(getattr(cfg, "tau_value", float("inf"))),
        keep_own=bool(getattr(cfg, "keep_own", True)),
        m=int(getattr(cfg, "m", 1)),
    )
    z = cfg.z
    if z is None:
        degrees = off_diagonal_in_degree(mats[0])
        try:
            z = alie_z(int(np.median(degrees)) + 1, b)
        except ValueError:
            z = ALIE_FALLBACK_Z
        if z <= 0:
            z = ALIE_FALLBACK_Z
    attack = AttackSpec(
        str(cfg.attack), float(cfg.scale), float(cfg.sigma), float(z), float(cfg.epsilon)
    )
    return ByzantinePlan(cfg, attackers, byz, per_node, rule, attack, tuple(violations))
