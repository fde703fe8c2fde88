"""The simulation's Byzantine round: attacks, detection and a robust rule inside the jit.

With a :class:`~dfl.robust.plan.ByzantinePlan` the round's exchange is the gathered form
(:class:`~dfl.gossip.gathered.GatheredMixer`): the honest messages are gathered onto the
edge slots, the attackers' are replaced (per recipient where the attack needs it; the
statistics attacks see the previous round's messages, carried in :class:`ByzantineCarry`),
the detector flags outlying in-edges, and the robust rule combines what is left. The
round's state is then ``(algorithm state, ByzantineCarry)``; :func:`algorithm_state`
takes the first half wherever the algorithm's state is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.gathered import Edges, GatheredMixer, gather
from dfl.robust.attacks import reverse_edges
from dfl.robust.detection import DetectorState, init_detector
from dfl.robust.krum import krum_pairs
from dfl.robust.messages import attack_messages
from dfl.robust.plan import ByzantinePlan

ATTACK_STREAM = 0x42595A
"""``fold_in(round_key, ATTACK_STREAM)``: the attacks' key of a round (both modes)."""

FLAG_KEYS = ("byzantine_flagged", "byzantine_flagged_true", "byzantine_flagged_false")
"""Per-node flag counts in the round's ``info`` (summed into the metrics records)."""


class ByzantineCarry(NamedTuple):
    """What a Byzantine round carries to the next one.

    Attributes:
      prev: the previous round's messages ``[N, ...]`` (what attackers saw).
      prev_ok: ``bool [E]`` which edge messages were received (and not flagged) in the
        previous round.
      started: ``bool`` scalar, ``True`` after the first round.
      detector: the outlier detector's window and sticky flags.
    """

    prev: Any
    prev_ok: jax.Array
    started: jax.Array
    detector: DetectorState


class ByzantineCarried(NamedTuple):
    """The round state of a Byzantine simulation: the algorithm's state and the carry."""

    state: Any
    carry: ByzantineCarry


def algorithm_state(state: Any) -> Any:
    """The algorithm's stacked state of a round state (a Byzantine one or not)."""
    return state.state if isinstance(state, ByzantineCarried) else state


class ByzantineRound:
    """The Byzantine exchange of every round of one simulation.

    Args:
      plan: the run's plan.
      mixer: the gathered mixer of the run's schedule.
    """

    def __init__(self, plan: ByzantinePlan, mixer: GatheredMixer):
        self.plan = plan
        self.mixer = mixer
        self.byzantine = jnp.asarray(plan.byzantine)
        self.reverse = jnp.asarray(reverse_edges(mixer.dst, mixer.src))
        self.pairs = krum_pairs(mixer.dst, mixer.n) if plan.rule.name == "krum" else None

    def carried(self, exp: Any, state: Any, sample: Any, train: Any) -> ByzantineCarried:
        """The first round's :class:`ByzantineCarried` of the stacked ``state``.

        The message shapes come from an abstract round-0 step (no compute).
        """
        from dfl.sim.round import node_keys

        alg = exp.algorithm
        key = exp.stream(0)

        def messages_of(state: Any, train: Any) -> Any:
            batches, _ = sample(key, train)
            _, wire, _ = jax.vmap(alg.step)(state, batches, node_keys(key, exp.n))
            return jax.vmap(alg.decode)(wire)

        return ByzantineCarried(state, self.init(jax.eval_shape(messages_of, state, train)))

    def init(self, messages: Any) -> ByzantineCarry:
        """The first round's carry; ``messages`` gives the message shapes (may be abstract)."""
        e = self.mixer.num_edges
        prev = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), messages)
        return ByzantineCarry(
            prev,
            jnp.zeros(e, bool),
            jnp.zeros((), bool),
            init_detector(e, window=self.plan.config.window),
        )

    def exchange(
        self,
        messages: Any,
        edges: Edges,
        carry: ByzantineCarry,
        key: jax.Array,
        delivered: jax.Array | None = None,
    ) -> tuple[Any, ByzantineCarry, dict[str, jax.Array]]:
        """``(mixed, carry, info)`` of one round (jittable).

        Args:
          messages: the nodes' decoded honest messages ``[N, ...]``.
          edges: ``mixer.data(round)``.
          carry: the previous round's carry.
          key: the round's key (the attack key is ``fold_in(key, ATTACK_STREAM)``).
          delivered: the round's ``bool [N, N]`` delivery mask (``None``: all).
        """
        byz = self.byzantine
        ok = edges.valid
        if delivered is not None:
            ok = ok & jnp.asarray(delivered, bool)[edges.dst, edges.src]
        honest_e = gather(messages, edges.src)
        wire_e = attack_messages(
            self.plan.attack,
            honest_e,
            edges,
            byz,
            key=jax.random.fold_in(key, ATTACK_STREAM),
            prev_e=gather(carry.prev, edges.src),
            prev_ok=carry.prev_ok,
            reverse=self.reverse,
            started=carry.started,
        )
        mixed, detector = self.plan.screen_and_mix(
            messages,
            wire_e,
            edges,
            ok,
            carry.detector,
            byzantine_e=byz[edges.src],
            pairs=self.pairs,
        )
        info = flag_info(detector.flagged, edges, byz)
        # what the attackers saw: the flagged peers' messages are refused (as a transport does)
        use = ok & ~detector.flagged  # the mixed messages: delivered, not flagged
        return mixed, ByzantineCarry(messages, use, jnp.ones((), bool), detector), info


def byzantine_simulation(exp: Any, cfg: Any) -> tuple[GatheredMixer, ByzantineRound]:
    """The gathered mixer and the :class:`ByzantineRound` of a run with a Byzantine plan.

    Raises:
      ValueError: with ``sim.shard_nodes`` (the carry's edge arrays have no node axis)
        or a ``sim.gossip`` form other than ``auto`` / ``gathered``.
    """
    if cfg.sim.shard_nodes:
        raise ValueError("byzantine runs do not shard nodes yet; set sim.shard_nodes=false")
    if cfg.sim.gossip not in ("auto", "gathered"):
        raise ValueError(
            f"byzantine runs use the gathered exchange (each neighbour's message); "
            f"sim.gossip={cfg.sim.gossip!r} should be 'auto' or 'gathered'"
        )
    mixer = GatheredMixer(exp.schedule)
    return mixer, ByzantineRound(exp.byzantine, mixer)


def flag_info(flagged: jax.Array, edges: Edges, byzantine: jax.Array) -> dict[str, jax.Array]:
    """Flags raised by each *honest* node, ``int32 [N]``: all, true and false positives."""
    n = byzantine.shape[0]
    mine = flagged & ~byzantine[edges.dst]
    true = mine & byzantine[edges.src]

    def count(mask: jax.Array) -> jax.Array:
        return jax.ops.segment_sum(mask.astype(jnp.int32), edges.dst, num_segments=n)

    return dict(zip(FLAG_KEYS, (count(mine), count(true), count(mine & ~true)), strict=True))


def record_fields(info: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The metrics-record fields of a round's ``info``: the flag counts summed over nodes
    (jittable, 0-d each: :func:`dfl.sim.loop.record_fields` takes them in)."""
    return {k: jnp.sum(info[k]) for k in FLAG_KEYS if k in info}


def honest_accuracy(accuracy: jax.Array, byzantine: np.ndarray) -> dict[str, jax.Array]:
    """``test_accuracy_honest_mean`` / ``_min`` over the honest nodes' per-node accuracy."""
    honest = jnp.asarray(~np.asarray(byzantine))
    acc = jnp.asarray(accuracy)
    count = jnp.maximum(honest.sum(), 1)
    return {
        "test_accuracy_honest_mean": jnp.where(honest, acc, 0.0).sum() / count,
        "test_accuracy_honest_min": jnp.where(honest, acc, jnp.inf).min(),
    }
