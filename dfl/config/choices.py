"""Closed sets of string options, as Enums the schema validates at compose time.

A config value such as ``algorithm.order=ctaa`` fails when Hydra composes the
config, with the allowed names in the message. The members are ``StrEnum``s, so
library code keeps comparing them with plain strings (``order == "atc"``), they
hash like their names (registry look-ups), and JSON writes them as strings; their
``repr`` is the plain string's, so error messages read ``'atc'``.
"""

from __future__ import annotations

import enum


class Choice(enum.StrEnum):
    """Base of the config Enums: the member's name is its value."""

    def __repr__(self) -> str:
        return repr(self.value)


class Order(Choice):
    """``algorithm.order`` of D-SGD: adapt then combine, or combine then adapt."""

    atc = "atc"
    cta = "cta"


class ModelInit(Choice):
    """``model.init``: one initialisation for all nodes, or one per node."""

    same = "same"
    independent = "independent"


class Partition(Choice):
    """``data.partition``: how training samples go to nodes."""

    iid = "iid"
    dirichlet = "dirichlet"
    shards = "shards"
    natural = "natural"


class Accountant(Choice):
    """``privacy.accountant``."""

    rdp = "rdp"
    pld = "pld"


class Sampling(Choice):
    """``privacy.sampling``."""

    poisson = "poisson"
    fixed = "fixed"


class Attack(Choice):
    """``byzantine.attack``: what the attackers send (see :mod:`dfl.robust.attacks`)."""

    none = "none"
    sign_flip = "sign_flip"
    gaussian = "gaussian"
    alie = "alie"
    ipm = "ipm"
    dissensus = "dissensus"
    label_flip = "label_flip"


class TauRule(Choice):
    """``byzantine.tau`` of ClippedGossip: the clipping radius (:mod:`dfl.robust.clipping`)."""

    adaptive = "adaptive"
    oracle = "oracle"
    fixed = "fixed"
