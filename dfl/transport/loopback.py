"""The loopback transport: N nodes in one process, frames as bytes over queues.

For tests and debugging. Every frame is copied into one ``bytes`` object when
sent (no array is ever shared between nodes) and goes through the same
validation and reassembly as over tcp. A node that is not registered (crashed,
or not yet started) loses what is sent to it, as a dead peer would.

Example::

    net = LoopbackNetwork(4, run_id="test")
    a, b = net.endpoint(0), net.endpoint(1)
    a.expect(Kind.WIRE, spec); b.expect(Kind.WIRE, spec)
    a.send(1, 0, Kind.WIRE, encode_payload(spec, tree))
    got = b.receive(0, [0], time.monotonic() + 1.0)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

from dfl.config.deploy_schema import FaultConfig
from dfl.transport.base import FramedTransport
from dfl.transport.faults import FaultInjector, FrameParts
from dfl.transport.wire import frame_bytes


class LoopbackNetwork:
    """The in-process network: one queue of frames per registered node.

    Args:
      num_nodes: nodes of the run.
      run_id: the run's id.
      faults: fault injection config (``None``: none).
      max_rounds_ahead, max_message_bytes: inbox limits of every endpoint.
      dropped_wait_s: see :class:`~dfl.transport.base.FramedTransport`.
    """

    def __init__(
        self,
        num_nodes: int,
        *,
        run_id: str,
        faults: FaultConfig | None = None,
        max_rounds_ahead: int = 1024,
        max_message_bytes: int = 1 << 31,
        dropped_wait_s: float | None = None,
    ):
        self.num_nodes = num_nodes
        self.run_id = run_id
        self.injector = FaultInjector(faults, num_nodes) if faults is not None else None
        self._options: dict[str, Any] = {
            "max_rounds_ahead": max_rounds_ahead,
            "max_message_bytes": max_message_bytes,
            "dropped_wait_s": dropped_wait_s,
        }
        self._queues: dict[int, queue.SimpleQueue] = {}
        self._lock = threading.Lock()
        self.undelivered = 0

    def endpoint(self, node_id: int) -> LoopbackTransport:
        """Registers ``node_id`` (replacing a crashed endpoint) and returns its transport."""
        endpoint = LoopbackTransport(self, node_id)
        with self._lock:
            self._queues[node_id] = endpoint.queue
        return endpoint

    def unregister(self, endpoint: LoopbackTransport) -> None:
        """Removes ``endpoint``: frames sent to its node are lost from now on."""
        with self._lock:
            if self._queues.get(endpoint.node_id) is endpoint.queue:
                del self._queues[endpoint.node_id]

    def deliver(self, receiver: int, frame: bytes, sender: int | None = None) -> bool:
        """Puts one frame of ``sender`` (the endpoint that sent it: the frame's
        channel is bound to it) in ``receiver``'s queue; ``False`` if it is not
        registered."""
        with self._lock:
            q = self._queues.get(receiver)
            if q is None:
                self.undelivered += 1
                return False
        q.put(frame if sender is None else (sender, frame))
        return True


class LoopbackTransport(FramedTransport):
    """One node's endpoint on a :class:`LoopbackNetwork`."""

    _pumps = True

    def __init__(self, network: LoopbackNetwork, node_id: int):
        super().__init__(
            node_id,
            network.num_nodes,
            run_id=network.run_id,
            faults=network.injector,
            **network._options,
        )
        self.network = network
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def _transmit(self, peer: int, frames: Sequence[FrameParts]) -> None:
        for frame in frames:
            data = frame[0] if len(frame) == 1 else frame_bytes(frame)
            self.network.deliver(peer, bytes(data), self.node_id)

    def _pump(self, timeout: float) -> bool:
        try:
            frame = self.queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return True
        while True:
            if frame is None:  # close() wakes a waiting receive
                return True
            if isinstance(frame, tuple):  # (the endpoint that sent it, the frame)
                self.inbox.feed(frame[1], sender=frame[0])
            else:  # put there by hand (tests): bound to no member
                self.inbox.feed(frame)
            try:
                frame = self.queue.get_nowait()
            except queue.Empty:
                return True

    def close(self, *, drain: bool = True) -> None:
        """Delivers delayed frames, leaves the network and wakes a waiting receive."""
        super().close(drain=drain)
        self.network.unregister(self)
        self.queue.put(None)
