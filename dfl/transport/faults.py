"""Fault injection on the sending side of a transport: drop, delay, duplicate, reorder,
corrupt and partition, decided reproducibly per message.

Each decision about the message ``sender → receiver`` of ``round`` is a uniform of
the counter-based hash of :mod:`dfl.network.draws` (the generator the simulation's
network model uses inside its jitted round): the drop is
``uniform(seed, DROP, round, sender, receiver) < drop``, exactly the simulation's
link drop, and the other faults use the ``TRANSPORT`` stream. The same config
injects the same faults whatever the thread or process timing. Node-level
faults (crash-and-restart, stragglers) are applied by the node runner and the
launcher from the same config (:func:`straggler_delay`).

A partition cuts every message between its groups, an ``offline`` interval every
message to or from its node (a network model's churn); the other faults hit only
algorithm messages (:attr:`~dfl.transport.wire.Kind.WIRE`): connection
handshakes and the ``WAITING``/``BYE`` notices travel untouched.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dfl.config.deploy_schema import FaultConfig
from dfl.network import draws
from dfl.transport.wire import Kind

log = logging.getLogger("dfl.transport.faults")

FrameParts = Sequence[Any]
"""One frame as a sequence of byte buffers (header first)."""


@dataclasses.dataclass
class FaultStats:
    """Messages each fault was applied to (cumulative; thread-safe enough for counters)."""

    dropped: int = 0
    partitioned: int = 0
    offline: int = 0
    delayed: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0


def message_faults_enabled(cfg: FaultConfig) -> bool:
    """Whether ``cfg`` injects any per-message fault."""
    probs = (cfg.drop, cfg.delay, cfg.duplicate, cfg.reorder, cfg.corrupt)
    return any(p > 0 for p in probs) or bool(cfg.partition) or bool(cfg.offline)


def straggler_delay(cfg: FaultConfig, node: int, round_: int) -> float:
    """Seconds ``node`` sleeps before its local phase of ``round_`` (0: not a straggler)."""
    if node not in cfg.straggler_nodes:
        return 0.0
    if cfg.straggler_rounds and round_ not in cfg.straggler_rounds:
        return 0.0
    return float(cfg.straggler_delay_s)


def _in_range(round_: int, bounds: Sequence[int]) -> bool:
    if not bounds:
        return True
    start = bounds[0]
    stop = bounds[1] if len(bounds) > 1 else start + 1
    return start <= round_ < stop


class FaultInjector:
    """Decides what the network does to each message (see :class:`FaultConfig`).

    Args:
      cfg: the fault config.
      num_nodes: nodes of the run.
    """

    def __init__(self, cfg: FaultConfig, num_nodes: int):
        for name in ("drop", "delay", "duplicate", "reorder", "corrupt"):
            p = getattr(cfg, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"transport.faults.{name}={p} is not a probability in [0, 1]")
        self.cfg = cfg
        self.stats = FaultStats()
        self._group = np.full(num_nodes, len(cfg.partition), dtype=np.int64)
        for g, members in enumerate(cfg.partition):
            for node in members:
                if not 0 <= node < num_nodes:
                    raise ValueError(
                        f"transport.faults.partition names node {node}; nodes are "
                        f"0..{num_nodes - 1}"
                    )
                self._group[node] = g
        self._online = np.ones((0, num_nodes), dtype=bool)
        if cfg.offline:
            rounds = max(stop for _, _, stop in cfg.offline)
            self._online = np.ones((rounds, num_nodes), dtype=bool)
            for node, start, stop in cfg.offline:
                if not 0 <= node < num_nodes:
                    raise ValueError(
                        f"transport.faults.offline names node {node}; nodes are 0..{num_nodes - 1}"
                    )
                self._online[max(start, 0) : stop, node] = False
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether any per-message fault is configured."""
        return message_faults_enabled(self.cfg)

    def partitioned(self, sender: int, receiver: int, round_: int) -> bool:
        """Whether the partition separates ``sender`` and ``receiver`` at ``round_``."""
        return (
            bool(self.cfg.partition)
            and _in_range(round_, self.cfg.partition_rounds)
            and self._group[sender] != self._group[receiver]
        )

    def offline(self, sender: int, receiver: int, round_: int) -> bool:
        """Whether ``sender`` or ``receiver`` is offline at ``round_`` (``faults.offline``)."""
        if not 0 <= round_ < self._online.shape[0]:
            return False
        return not (self._online[round_, sender] and self._online[round_, receiver])

    def plan(
        self, sender: int, receiver: int, round_: int, kind: int, frames: Sequence[FrameParts]
    ) -> list[tuple[float, FrameParts]]:
        """What becomes of one message: ``(delay_s, frame)`` pairs to deliver, in order.

        Args:
          sender, receiver, round_, kind: the message's identity.
          frames: its frames, in order.

        Returns:
          The frames to deliver and after how long; dropped frames are absent,
          a corrupted frame is a modified copy.
        """
        cfg = self.cfg
        if not self.active:
            return [(0.0, f) for f in frames]
        if self.partitioned(sender, receiver, round_):
            if kind == Kind.WIRE:
                self._count("partitioned")
                log.info("fault: partition drops %d->%d round %d", sender, receiver, round_)
            return []
        if self.offline(sender, receiver, round_):
            if kind == Kind.WIRE:
                self._count("offline")
                log.info("fault: offline node loses %d->%d round %d", sender, receiver, round_)
            return []
        u = self._draws(sender, receiver, round_, kind)
        if u is None:
            return [(0.0, f) for f in frames]

        def pick(what: int, count: int) -> int:  # a uniform index in [0, count)
            return min(int(self._uniform(sender, receiver, round_, what) * count), count - 1)

        out: list[FrameParts] = list(frames)
        if u[0] < np.float32(cfg.drop):
            lost = pick(10, len(out))
            del out[lost]
            self._count("dropped")
            log.info("fault: drop %d->%d round %d (frame %d)", sender, receiver, round_, lost)
        if u[1] < cfg.corrupt and out:
            k = pick(11, len(out))
            data = bytearray(b"".join(out[k]))
            pos = pick(12, len(data))
            data[pos] ^= 0xFF
            out[k] = [bytes(data)]
            self._count("corrupted")
            log.info(
                "fault: corrupt %d->%d round %d (frame %d byte %d)",
                sender,
                receiver,
                round_,
                k,
                pos,
            )
        if u[2] < cfg.duplicate and out:
            out = out + out
            self._count("duplicated")
        extra = 0.0
        if u[3] < cfg.reorder and out:
            order = np.argsort(self._uniform(sender, receiver, round_, 13, np.arange(len(out))))
            out = [out[i] for i in order]
            extra = float(self._uniform(sender, receiver, round_, 14)) * cfg.reorder_window_s
            self._count("reordered")
        delay = extra
        if u[4] < cfg.delay:
            delay += float(cfg.delay_s)
            self._count("delayed")
        return [(delay, f) for f in out]

    def _uniform(self, sender: int, receiver: int, round_: int, *what: Any) -> Any:
        """A uniform of the ``TRANSPORT`` stream of one message (:mod:`dfl.network.draws`)."""
        return draws.uniform(
            np, self.cfg.seed, draws.TRANSPORT, max(round_, 0), sender, receiver, *what
        )

    def _draws(self, sender: int, receiver: int, round_: int, kind: int) -> np.ndarray | None:
        """One message's five uniforms (drop, corrupt, duplicate, reorder, delay);
        ``None`` where no probabilistic fault applies (control kinds, rounds outside
        ``cfg.rounds``). The drop's is the network model's link-drop draw."""
        if kind != Kind.WIRE or (self.cfg.rounds and round_ not in self.cfg.rounds):
            return None
        t = max(round_, 0)
        drop = draws.uniform(np, self.cfg.seed, draws.DROP, t, sender, receiver)
        rest = self._uniform(sender, receiver, round_, np.arange(1, 5))
        return np.concatenate([np.atleast_1d(drop), rest])

    def loses(self, sender: int, receiver: int, round_: int, kind: int) -> bool:
        """Whether :meth:`plan` loses the message (a drop or the partition), decided
        without sending it or counting anything, so its receiver can know that it
        will never arrive (the same config decides alike in every process)."""
        if not self.active:
            return False
        if self.partitioned(sender, receiver, round_) or self.offline(sender, receiver, round_):
            return True
        u = self._draws(sender, receiver, round_, kind)
        return u is not None and bool(u[0] < np.float32(self.cfg.drop))

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)


class Delayer:
    """One background thread that runs callbacks after their delays (in time order)."""

    def __init__(self, name: str = "dfl-delayer"):
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._draining = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Runs ``fn()`` on the delayer thread ``delay`` seconds from now."""
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    if self._draining and not self._heap:
                        return
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # a failed delivery must not kill the delayer
                log.exception("delayed delivery failed")

    def close(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Stops the thread: after delivering what is pending (``drain``), or at once."""
        with self._cond:
            if drain:
                self._draining = True
            else:
                self._closed = True
            self._cond.notify()
        self._thread.join(timeout=timeout)
        with self._cond:
            self._closed = True
            self._cond.notify()
