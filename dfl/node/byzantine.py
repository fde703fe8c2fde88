"""A deployed node's Byzantine half: its attack (if an attacker), detector and robust rule.

The same functions as the simulation's round (:mod:`dfl.sim.byzantine`), on this node's
view of the edge slots (:func:`dfl.gossip.gathered.edge_slots` of the schedule's period):

* **sending** (an attacker): :meth:`NodeByzantine.outgoing` computes the message for each
  out-neighbour with :func:`dfl.robust.messages.attack_messages` over the global slots,
  from what this node itself received in the previous round (non-rushing) — the other
  slots are marked not received, so nothing it could not see enters;
* **combining**: :meth:`NodeByzantine.combine` runs the detector and
  :func:`dfl.robust.rules.robust_mix` over ``own [1, ...]`` and its in-edge messages
  ``[K, ...]`` (``dst = 0``), in the slots' order, as the simulation does for every node.
  Newly flagged peers are returned; the exchange reports them to the transport
  (:meth:`dfl.transport.base.FramedTransport.block`), which refuses their frames (and on
  Pilot with ``byzantine.revoke_flagged`` revokes their trust).

**Checkpoints.** What a round leaves behind (the detector's window and flags, the previous
round's messages an attacker builds on, the flagged set) goes into the node's checkpoint:
:meth:`NodeByzantine.checkpoint` gives ``(arrays, meta)``, :meth:`NodeByzantine.restore`
takes them back, so a resumed node goes on as if it had never stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.gossip.gathered import Edges, edge_slots
from dfl.gossip.structure import dense_period_matrices
from dfl.robust.attacks import reverse_edges
from dfl.robust.detection import init_detector
from dfl.robust.krum import krum_pairs
from dfl.robust.messages import MODEL_ATTACKS, attack_messages
from dfl.robust.plan import ByzantinePlan
from dfl.sim.byzantine import ATTACK_STREAM
from dfl.topology.schedule import MixingSchedule


class NodeByzantine:
    """One node's attack, detector and robust rule over its edge slots.

    Args:
      plan: the run's plan.
      schedule: the run's (periodic) mixing schedule.
      node: this node.
      round_key: ``round_key(t)``: the round's algorithm key, before the per-node fold
        (``exp.stream(ALGORITHM_STREAM, t)``, as the simulation's round key).
    """

    def __init__(self, plan: ByzantinePlan, schedule: MixingSchedule, node: int, round_key: Any):
        mats = dense_period_matrices(schedule)
        if mats is None:
            raise ValueError("byzantine runs need a periodic schedule")
        self.plan, self.node, self.n = plan, node, schedule.n
        self.mats = mats
        self.round_key = round_key
        self.dst, self.src = edge_slots(mats)
        self.reverse = jnp.asarray(reverse_edges(self.dst, self.src))
        self.in_slots = np.flatnonzero(self.dst == node)
        self.in_peers = [int(j) for j in self.src[self.in_slots]]
        self.out_slots = np.flatnonzero(self.src == node)
        self.out_peers = [int(j) for j in self.dst[self.out_slots]]
        self.attacker = bool(plan.byzantine[node])
        self.byzantine = jnp.asarray(plan.byzantine)
        k = len(self.in_peers)
        self.detector = init_detector(k, window=plan.config.window)
        self.pairs = krum_pairs(np.zeros(k, np.int32), 1) if plan.rule.name == "krum" else None
        self.prev: dict[int, Any] = {}
        self.started = False
        self.flagged: set[int] = set()
        self._attack = jax.jit(self._attack_fn)
        self._combine = jax.jit(self._combine_fn)

    # -- sending ---------------------------------------------------------------------

    def _global_edges(self, t: int) -> Edges:
        W = self.mats[t % len(self.mats)]
        w = W[self.dst, self.src].astype(np.float32)
        return Edges(
            jnp.asarray(self.dst),
            jnp.asarray(self.src),
            jnp.asarray(w),
            jnp.asarray(w != 0),
            jnp.asarray(np.diag(W).astype(np.float32)),
        )

    def _attack_fn(self, own, prev_e, prev_ok, edges, key, started):
        e = edges.dst.shape[0]
        honest_e = jax.tree.map(lambda x: jnp.broadcast_to(x, (e, *x.shape)), own)
        return attack_messages(
            self.plan.attack,
            honest_e,
            edges,
            self.byzantine,
            key=key,
            prev_e=prev_e,
            prev_ok=prev_ok,
            reverse=self.reverse,
            started=started,
        )

    def outgoing(self, own: Any, t: int) -> dict[int, Any] | None:
        """Out-neighbour → the message to send it, or ``None``: send ``own`` to all."""
        if not self.attacker or self.plan.attack.name not in MODEL_ATTACKS:
            return None
        e = self.dst.shape[0]
        slot_of = dict(zip(self.in_peers, self.in_slots.tolist(), strict=True))
        ok = np.zeros(e, bool)
        for j in self.prev:
            ok[slot_of[j]] = True

        def prev_leaf(x: jax.Array, *path: Any) -> jax.Array:
            del path
            return jnp.zeros((e, *x.shape), x.dtype)

        prev_e = jax.tree.map(prev_leaf, own)
        for j, msg in self.prev.items():
            prev_e = jax.tree.map(lambda p, m, s=slot_of[j]: p.at[s].set(m), prev_e, msg)
        key = jax.random.fold_in(self.round_key(t), ATTACK_STREAM)
        wire_e = self._attack(
            own, prev_e, jnp.asarray(ok), self._global_edges(t), key, jnp.asarray(self.started)
        )
        return {
            j: jax.tree.map(lambda m, s=int(s): m[s], wire_e)
            for j, s in zip(self.out_peers, self.out_slots.tolist(), strict=True)
        }

    # -- combining -------------------------------------------------------------------

    def _combine_fn(self, own, messages_e, edges, ok, detector):
        own1 = jax.tree.map(lambda x: x[None], own)
        mixed, detector = self.plan.screen_and_mix(
            own1,
            messages_e,
            edges,
            ok,
            detector,
            byzantine_e=self.byzantine[edges.src],
            pairs=self.pairs,
        )
        return jax.tree.map(lambda x: x[0], mixed), detector

    def combine(self, own: Any, received: Mapping[int, Any], t: int) -> tuple[Any, list[int]]:
        """``(mixed, newly flagged peers)`` of round ``t`` from the delivered messages.

        Args:
          own: this node's decoded message.
          received: in-neighbour → decoded message, for those delivered.
          t: the round.
        """
        W = self.mats[t % len(self.mats)]
        w = W[self.node, self.in_peers].astype(np.float32)
        k = len(self.in_peers)
        edges = Edges(
            jnp.zeros(k, jnp.int32),
            jnp.asarray(np.asarray(self.in_peers, np.int32)),
            jnp.asarray(w),
            jnp.asarray(w != 0),
            jnp.asarray([W[self.node, self.node]], jnp.float32),
        )
        got = np.asarray([j in received for j in self.in_peers], bool)
        if k:
            messages_e = jax.tree.map(
                lambda *xs: jnp.stack(xs), *[received.get(j, own) for j in self.in_peers]
            )
        else:
            messages_e = jax.tree.map(lambda x: jnp.zeros((0, *x.shape), x.dtype), own)
        ok = jnp.asarray(got) & edges.valid
        mixed, self.detector = self._combine(own, messages_e, edges, ok, self.detector)
        flagged = np.asarray(self.detector.flagged)
        new = [
            j for j, f in zip(self.in_peers, flagged, strict=True) if f and j not in self.flagged
        ]
        self.flagged.update(new)
        self.prev = {j: m for j, m in received.items() if j not in self.flagged}
        self.started = True
        return mixed, new

    # -- checkpoints -----------------------------------------------------------------

    def checkpoint(self, message: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(arrays, meta)`` to save with the node's state after a round.

        Args:
          message: a decoded message (arrays or ``jax.ShapeDtypeStruct``): the layout of
            the previous round's messages, stacked ``[K, ...]`` over the in-neighbours with
            a ``bool [K]`` mask of those kept (absent ones saved as zeros).

        Returns:
          ``arrays``: ``{"detector", "prev", "prev_ok"}``, a pytree of fixed structure
          (:meth:`checkpoint_like`); ``meta``: JSON ``{"flagged", "started"}``.
        """
        prev_ok = np.asarray([j in self.prev for j in self.in_peers], bool)
        zeros = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), message)
        rows = [self.prev.get(j, zeros) for j in self.in_peers]

        def stack(x: Any, *row: Any) -> np.ndarray:
            if not row:
                return np.zeros((0, *x.shape), x.dtype)
            return np.stack([np.asarray(r) for r in row])

        prev = jax.tree.map(stack, message, *rows)
        arrays = {"detector": self.detector._asdict(), "prev": prev, "prev_ok": prev_ok}
        return arrays, {"flagged": sorted(self.flagged), "started": self.started}

    def checkpoint_like(self, message: Any) -> dict[str, Any]:
        """The structure of :meth:`checkpoint`'s arrays (for ``Checkpointer.restore``)."""
        k = len(self.in_peers)
        return {
            "detector": init_detector(k, window=self.plan.config.window)._asdict(),
            "prev": jax.tree.map(lambda x: jax.ShapeDtypeStruct((k, *x.shape), x.dtype), message),
            "prev_ok": jax.ShapeDtypeStruct((k,), np.dtype(bool)),
        }

    def restore(self, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> list[int]:
        """Takes back what :meth:`checkpoint` saved; returns the flagged peers (to block
        again at the transport, which starts afresh with the process).

        Raises:
          ValueError: if the saved flags name a peer that is not an in-neighbour.
        """
        flagged = [int(j) for j in meta.get("flagged", [])]
        strangers = sorted(set(flagged) - set(self.in_peers))
        if strangers:
            raise ValueError(
                f"node {self.node}: the checkpoint flags {strangers}, which are not among its "
                f"in-neighbours {self.in_peers}; resume with the run's own config"
            )
        d = arrays["detector"]
        self.detector = type(self.detector)(**{f: jnp.asarray(d[f]) for f in self.detector._fields})
        ok = np.asarray(arrays["prev_ok"], bool)
        self.prev = {
            j: jax.tree.map(lambda x, k=k: jnp.asarray(x[k]), arrays["prev"])
            for k, j in enumerate(self.in_peers)
            if ok[k]
        }
        self.flagged = set(flagged)
        self.started = bool(meta.get("started", False))
        return sorted(self.flagged)

    def record(self) -> dict[str, int]:
        """``byzantine_flagged`` (and true / false positives) of this node so far."""
        if self.attacker:
            return {
                "byzantine_flagged": 0,
                "byzantine_flagged_true": 0,
                "byzantine_flagged_false": 0,
            }
        true = sum(1 for j in self.flagged if self.plan.byzantine[j])
        return {
            "byzantine_flagged": len(self.flagged),
            "byzantine_flagged_true": true,
            "byzantine_flagged_false": len(self.flagged) - true,
        }
