"""Gossip: mixing operators over the node axis (dense, circulant, permutation, sparse, segment)."""

from dfl.gossip.circulant import CirculantMixer
from dfl.gossip.dense import DenseMixer
from dfl.gossip.mixer import FORMS, Mixer, choose_form, make_mixer
from dfl.gossip.permutation import PermutationMixer
from dfl.gossip.segment import SegmentMixer
from dfl.gossip.sparse import SparseMixer

__all__ = [
    "FORMS",
    "CirculantMixer",
    "DenseMixer",
    "Mixer",
    "PermutationMixer",
    "SegmentMixer",
    "SparseMixer",
    "choose_form",
    "make_mixer",
]
