"""Who is who in a run over Pilot: discovery in the run's network, trust, bindings, revocation.

A node's :class:`Membership` joins the run's private network with its token,
tags its daemon (``dfl-<run tag>``, ``dfl-node-<i>``), lists the network's
members and reads their tags from the registry to locate its topology
neighbours. It asks those (and only those) for Pilot trust, with its Pilot
binding (:mod:`dfl.keys.compact`) as the justification, and sends the same
binding as its first message to each of them. It approves a trust request only
when the justification verifies for the requester's Pilot node id and key, names
a neighbour, and that neighbour is not revoked; everything else is rejected and
logged. A verified binding maps the Pilot node that delivers a message to the
dfl node id it may speak as (:meth:`Membership.sender_of`).

Revocation: Pilot keeps open tunnels after ``revoke_trust``, so the transport
also refuses a revoked peer's frames itself (:meth:`Membership.revoke`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from dfl.keys.ca import NodeIdentity
from dfl.keys.compact import BindingError, PilotBinding, unb64, verify_pilot_binding
from dfl.pilot import registry
from dfl.pilot.network import RunNetwork, run_tag

log = logging.getLogger("dfl.pilot")

POLL_S = 0.05
"""How often trust requests and the network's members are polled while peers are missing."""
IDLE_POLL_S = 0.5
"""How often once every neighbour is bound (a restarted peer asks again)."""


def node_of_address(address: str) -> int:
    """The Pilot node id of an address ``N:XXXX.YYYY.YYYY`` (the last 8 hex digits).

    Raises:
      ValueError: for anything else.
    """
    try:
        _, rest = address.split(":", 1)
        _, hi, lo = rest.split(".")
        return int(hi + lo, 16)
    except ValueError:
        raise ValueError(f"not a Pilot address: {address!r}") from None


def node_tag(node: int) -> str:
    """The tag naming dfl node ``node`` (a hint to whom to talk; bindings decide)."""
    return f"dfl-node-{node}"


class Membership:
    """This node's view of the run's members over Pilot.

    Args:
      node_id: this dfl node.
      run_id: the run (bindings must name it).
      identity: this node's bundle (:func:`dfl.keys.init`).
      network: the run's private network (id and join token).
      registry_address: the registry (``host:port``), for tags and public keys.
      driver: a connected SDK ``Driver`` for control calls (not shared with senders).
      neighbours: the dfl nodes to ask for trust and accept frames from.
      reconnect: makes a new ``Driver`` when the current one broke.
    """

    def __init__(
        self,
        node_id: int,
        *,
        run_id: str,
        identity: NodeIdentity,
        network: RunNetwork,
        registry_address: str,
        driver: Any,
        neighbours: Collection[int],
        reconnect: Callable[[], Any],
    ):
        if identity.node_id != node_id or identity.run_id != run_id:
            raise ValueError(
                f"key bundle of node {identity.node_id} of run {identity.run_id!r} given to "
                f"node {node_id} of run {run_id!r}"
            )
        self.node_id = node_id
        self.run_id = run_id
        self.identity = identity
        self.network = network
        self.registry = registry_address
        self.neighbours = frozenset(neighbours) - {node_id}
        self._driver = driver
        self._reconnect = reconnect
        info = driver.info()
        self.pilot_id = int(info["node_id"])
        self.pilot_key = unb64_std(str(info.get("public_key", "")))
        self.binding = identity.pilot_binding(self.pilot_id, self.pilot_key)
        self._cond = threading.Condition()
        self._located: dict[int, int] = {}  # dfl node -> Pilot node (from tags: a hint)
        self._bound: dict[int, PilotBinding] = {}  # Pilot node -> verified binding
        self._by_node: dict[int, int] = {}  # dfl node -> bound Pilot node
        self._asked: set[int] = set()
        self._keys: dict[int, bytes | None] = {}
        self.revoked: set[int] = set()
        self.revoked_pilots: dict[int, int] = {}  # Pilot node -> the dfl node it was bound to
        self.rejected_requests = 0
        self._join()

    # -- setup -----------------------------------------------------------------------

    def _join(self) -> None:
        from pilotprotocol import PilotError

        try:
            self._driver.network_join(self.network.network_id, self.network.token)
        except PilotError as e:
            if "already in network" not in str(e):
                raise
        self._driver.set_tags([f"dfl-{run_tag(self.run_id)}", node_tag(self.node_id)])

    # -- queries -----------------------------------------------------------------------

    def address_of(self, node: int, timeout: float) -> str | None:
        """The Pilot address of neighbour ``node`` once located, waiting up to ``timeout``."""
        end = time.monotonic() + timeout
        with self._cond:
            while node not in self._located:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return f"0:0000.{self._located[node] >> 16:04X}.{self._located[node] & 0xFFFF:04X}"

    def sender_of(self, pilot_node: int) -> int | None:
        """The dfl node a verified binding lets Pilot node ``pilot_node`` speak as."""
        with self._cond:
            b = self._bound.get(pilot_node)
            return None if b is None else b.node_id

    def bound(self) -> dict[int, int]:
        """dfl node → Pilot node, for every verified neighbour."""
        with self._cond:
            return dict(self._by_node)

    def wait_bound(self, timeout: float) -> bool:
        """Waits until every neighbour is bound (verified) or ``timeout``."""
        end = time.monotonic() + timeout
        with self._cond:
            while not self.neighbours <= set(self._by_node):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # -- bindings ----------------------------------------------------------------------

    def _public_key(self, pilot_node: int) -> bytes | None:
        if pilot_node not in self._keys:
            try:
                text = registry.lookup(self.registry, pilot_node).get("public_key", "")
                self._keys[pilot_node] = unb64_std(str(text)) or None
            except (OSError, registry.RegistryError) as e:
                log.warning(
                    "node %d: no registry record of Pilot node %d: %s", self.node_id, pilot_node, e
                )
                return None
        return self._keys[pilot_node]

    def verify(self, text: str, pilot_node: int, pilot_key: bytes | None = None) -> PilotBinding:
        """Verifies a binding presented by ``pilot_node``; records it when it names a neighbour.

        Raises:
          BindingError: if it does not verify, names a non-neighbour, or a revoked node.
        """
        key = pilot_key or self._public_key(pilot_node)
        b = verify_pilot_binding(
            text,
            ca_public_key=self.identity.ca_public_key,
            run_id=self.run_id,
            pilot_node_id=pilot_node,
            pilot_public_key=key,
        )
        if key is None:
            raise BindingError(f"Pilot node {pilot_node}'s public key is unknown to the registry")
        if b.node_id not in self.neighbours:
            raise BindingError(f"node {b.node_id} is not a neighbour of node {self.node_id}")
        if b.node_id in self.revoked:
            raise BindingError(f"node {b.node_id} was revoked")
        with self._cond:
            old = self._by_node.get(b.node_id)
            if old is not None and old != pilot_node:
                # The same member's key on a new daemon (e.g. a restarted host): the latest wins.
                self._bound.pop(old, None)
            self._bound[pilot_node] = b
            self._by_node[b.node_id] = pilot_node
            self._located[b.node_id] = pilot_node
            self._cond.notify_all()
        return b

    def revoke(self, node: int) -> None:
        """Revokes Pilot trust with ``node`` and refuses its frames from now on."""
        with self._cond:
            self.revoked.add(node)
            pilot = self._by_node.pop(node, None)
            if pilot is not None:
                self._bound.pop(pilot, None)
                self.revoked_pilots[pilot] = node
        if pilot is not None:
            with contextlib.suppress(Exception):
                self._call("revoke_trust", pilot)
        log.warning("node %d revoked node %d (Pilot node %s)", self.node_id, node, pilot)

    # -- the control loop ----------------------------------------------------------------

    def _call(self, name: str, *args: Any) -> Any:
        from pilotprotocol import PilotError

        try:
            return getattr(self._driver, name)(*args)
        except PilotError as e:
            if not _broken(e):
                raise
        self._driver = self._reconnect()
        return getattr(self._driver, name)(*args)

    def step(self, send_binding: Callable[[int], None]) -> None:
        """One round of discovery and trust handling (called by the transport's control thread).

        ``send_binding(node)`` queues this node's binding to a newly located neighbour.
        """
        from pilotprotocol import PilotError

        try:
            self._answer_requests()
            if not self.neighbours <= set(self._located):
                self._discover(send_binding)
        except (PilotError, OSError, registry.RegistryError) as e:
            log.debug("node %d: membership step failed: %s", self.node_id, e)

    def complete(self) -> bool:
        """Every neighbour located and bound."""
        with self._cond:
            return self.neighbours <= set(self._by_node) | self.revoked

    def _discover(self, send_binding: Callable[[int], None]) -> None:
        members = self._call("network_members", self.network.network_id).get("nodes") or []
        for m in members:
            pilot = int(m["node_id"])
            if pilot == self.pilot_id or pilot in self._asked:
                continue
            tags = registry.lookup(self.registry, pilot).get("tags") or []
            nodes = [int(t[len("dfl-node-") :]) for t in tags if t.startswith("dfl-node-")]
            if len(nodes) != 1 or nodes[0] not in self.neighbours or nodes[0] in self.revoked:
                continue
            node = nodes[0]
            self._asked.add(pilot)
            with self._cond:
                self._located.setdefault(node, pilot)
                self._cond.notify_all()
            self._call("handshake", pilot, self.binding)
            send_binding(node)

    def _answer_requests(self) -> None:
        pending = self._call("pending_handshakes").get("pending") or []
        for request in pending:
            pilot = int(request["node_id"])
            key = unb64_std(str(request.get("public_key") or "")) or None
            try:
                b = self.verify(str(request.get("justification") or ""), pilot, key)
            except BindingError as e:
                self.rejected_requests += 1
                log.warning(
                    "node %d rejected the trust request of Pilot node %d: %s",
                    self.node_id,
                    pilot,
                    e,
                )
                self._call("reject_handshake", pilot, str(e)[:200])
                continue
            self._call("approve_handshake", pilot)
            log.info("node %d trusts node %d (Pilot node %d)", self.node_id, b.node_id, pilot)


def unb64_std(text: str) -> bytes:
    """Standard base64 (the daemon's public keys) → bytes; ``b""`` for empty or bad text."""
    import base64
    import binascii

    if not text:
        return b""
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        with contextlib.suppress(BindingError):
            return unb64(text)
        return b""


def _broken(e: Exception) -> bool:
    """Whether a ``PilotError`` means the Driver's IPC connection broke (reconnect)."""
    text = str(e).lower()
    return any(
        s in text for s in ("broken pipe", "use of closed", "connection reset", "eof", "closed")
    )
