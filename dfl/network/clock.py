"""One round of the network: delivery mask, arrival times and per-node virtual clocks.

:func:`step` is written against an array namespace ``xp``: ``jax.numpy`` inside the
simulation's jitted round, ``numpy`` when a deployment replays the schedule
(:mod:`dfl.network.schedule`), so both modes run the one definition (see
docs/architecture.md, "Network model"). With ``c_i`` node ``i``'s clock when round
``t`` starts, ``A`` the round's graph (``A[i, j]``: ``i`` mixes ``j``'s message)::

    send_i    = c_i + compute[t, i]                 (+ away_s if offline, WAIT)
    arrive_ij = send_j + message_ij (+ k_ij · rto)  (k_ij retransmissions, WAIT)

RENORMALIZE: ``j``'s message exists if not dropped and both are online; ``i``
waits for every in-neighbour not down (missed ``down_after`` deadlines in a row;
a message within the deadline, even one not waited for, ends it)
until ``send_i + deadline``; it combines when all of them arrived, else at the
deadline, and uses the messages that arrived by then; an offline node does nothing
and rejoins at the earliest clock of its online in-neighbours. WAIT: nothing is lost, ``i``
combines when its last in-neighbour's message arrived.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from dfl.network import draws
from dfl.network.model import NetworkModel


class NetState(NamedTuple):
    """The network's carry between rounds (numpy or jax arrays).

    Attributes:
      round: the next round (int32 scalar).
      clock: each node's virtual clock, seconds (float32 ``[N]``).
      missed: ``missed[i, j]``: deadlines in a row ``i`` missed ``j``'s message (int32 ``[N, N]``).
      missing: messages missing at each receiver so far (int32 ``[N]``).
      retransmissions: retransmissions of the messages each node received so far (int32 ``[N]``).
      sent: messages each node sent so far (int32 ``[N]``).
    """

    round: Any
    clock: Any
    missed: Any
    missing: Any
    retransmissions: Any
    sent: Any


class Outcome(NamedTuple):
    """What happened in one round.

    Attributes:
      delivered: bool ``[N, N]``, ``delivered[i, j]``: ``j``'s message reached ``i`` in time.
      online: bool ``[N]``.
      missing: messages missing at each receiver this round (int32 ``[N]``).
      retransmissions: retransmissions of each receiver's messages this round (int32 ``[N]``).
    """

    delivered: Any
    online: Any
    missing: Any
    retransmissions: Any


def init(xp: Any, n: int, start_round: int = 0) -> NetState:
    """The carry before ``start_round``: clocks at 0, nothing missed."""

    def z():  # one buffer each (a donated carry must not alias)
        return xp.zeros(n, dtype=xp.int32)

    return NetState(
        round=xp.asarray(start_round, dtype=xp.int32),
        clock=xp.zeros(n, dtype=xp.float32),
        missed=xp.zeros((n, n), dtype=xp.int32),
        missing=z(),
        retransmissions=z(),
        sent=z(),
    )


def step(xp: Any, model: NetworkModel, net: NetState, adjacency: Any) -> tuple[NetState, Outcome]:
    """Advances the network by round ``net.round`` over the graph ``adjacency`` (pure).

    Args:
      xp: ``numpy`` or ``jax.numpy``.
      model: the run's network.
      net: the carry.
      adjacency: bool ``[N, N]``, ``adjacency[i, j]``: ``i`` mixes ``j``'s message (the
        diagonal is ignored).

    Returns:
      The next carry and the round's :class:`Outcome`.
    """
    n, t, f32, i32 = model.n, net.round, xp.float32, xp.int32
    A = xp.asarray(adjacency, dtype=bool) & ~xp.eye(n, dtype=bool)
    on = xp.asarray(model.online)[t]
    send = net.clock + xp.asarray(model.compute)[t]
    if model.uplink is None:
        msg = xp.asarray(model.message)
    else:  # j's out-messages leave its uplink one after another, in receiver order
        rank = xp.cumsum(A.astype(i32), axis=0).astype(f32)
        msg = xp.asarray(model.latency) + rank * xp.asarray(model.uplink)[None, :]
    senders, receivers = xp.arange(n)[None, :], xp.arange(n)[:, None]
    u = draws.uniform(xp, model.seed, draws.DROP, t, senders, receivers)
    neg_inf = f32(-np.inf)
    if model.wait:
        send = send + xp.where(on, f32(0.0), f32(model.away_s))
        thresholds = xp.asarray(model.retransmit_thresholds)
        k = xp.sum((u[..., None] < thresholds).astype(i32), axis=-1) * A.astype(i32)
        arrive = send[None, :] + msg + k.astype(f32) * f32(model.rto_s)
        latest = xp.max(xp.where(A, arrive, neg_inf), axis=1)
        clock = xp.maximum(send, latest)
        delivered, missed = A, net.missed
        missing_now = xp.zeros(n, dtype=i32)
        retx_now = xp.sum(k, axis=1).astype(i32)
        sent_now = xp.sum(A.astype(i32), axis=0)
    else:
        arrive = send[None, :] + msg
        deadline = send + f32(model.deadline_s)
        ok = A & (u >= f32(model.drop)) & on[None, :] & on[:, None]
        in_time = ok & (arrive <= deadline[:, None])
        expected = A & (net.missed < model.down_after) if model.down_after > 0 else A
        all_in = xp.all(~expected | in_time, axis=1)
        latest = xp.max(xp.where(expected, arrive, neg_inf), axis=1)
        combine = xp.where(all_in, xp.maximum(send, latest), deadline)
        delivered = ok & (arrive <= combine[:, None])
        # An offline node rejoins with its neighbourhood: its clock moves to the earliest
        # of its online in-neighbours' (it stays if none is online; never backwards).
        rejoin = xp.min(xp.where(A & on[None, :], combine[None, :], f32(np.inf)), axis=1)
        away = xp.where(xp.isfinite(rejoin), xp.maximum(net.clock, rejoin), net.clock)
        clock = xp.where(on, combine, away)
        seen = A & on[:, None]
        # Down until its next valid message: one within the deadline ends it, even if
        # it came after this node had combined (not waited for, so missing this round).
        missed = xp.where(seen, xp.where(in_time, 0, net.missed + 1), net.missed).astype(i32)
        missing_now = xp.sum((A & ~delivered).astype(i32), axis=1) * on.astype(i32)
        retx_now = xp.zeros(n, dtype=i32)
        sent_now = xp.sum(A.astype(i32), axis=0) * on.astype(i32)
    nxt = NetState(
        round=(t + 1).astype(i32) if hasattr(t, "astype") else t + 1,
        clock=clock.astype(f32),
        missed=missed,
        missing=(net.missing + missing_now).astype(i32),
        retransmissions=(net.retransmissions + retx_now).astype(i32),
        sent=(net.sent + sent_now).astype(i32),
    )
    return nxt, Outcome(delivered, on, missing_now, retx_now)
