"""Structured-config schema of the deployment runtime: ``node``, ``transport``, ``checkpoint``.

These groups are read by the node runner (``python -m dfl.node``), the launcher
(``python -m dfl.launch``) and, for ``checkpoint`` and ``resume``, by the
simulation runner too. The simulation ignores ``node`` and ``transport``.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class NodeConfig:
    """One deployed node (``node.*`` overrides of ``python -m dfl.node``).

    Attributes:
      id: this node's id in ``[0, topology.n)``.
      deadline_s: how long a node waits for its in-neighbours' messages of a
        round (counted from when it has sent its own); a message missing at the
        deadline is handled by the algorithm's missing-message rule.
      first_deadline_s: the deadline of the first round a node runs after a
        (re)start, which also covers its peers' start-up and compile time (a
        message the run's own fault injector drops is awaited ``deadline_s``).
      wait_timeout_s: ``WAIT`` rule only: the hard timeout after which a node
        that still misses a message fails loudly.
      rejoin: after a restart from a checkpoint, jump to the round the
        neighbours are at (seen in their first message) instead of replaying
        the missed rounds; the neighbours treat the missed rounds by their
        missing-message rule.
      workdir: where the node writes ``metrics.jsonl``, ``params/`` and its
        checkpoints; empty: the Hydra output directory.
      progress: show a progress bar (``python -m dfl.node`` only).
    """

    id: int = 0
    deadline_s: float = 30.0
    first_deadline_s: float = 300.0
    wait_timeout_s: float = 600.0
    rejoin: bool = True
    workdir: str = ""
    progress: bool = False


@dataclasses.dataclass
class FaultConfig:
    """Fault injection on the sending side of a transport (``transport.faults.*``).

    Every decision is a pure function of ``(seed, round, sender, receiver)``
    (the counter-based hash of :mod:`dfl.network.draws`, shared with the
    simulation's network model), so a faulty run is reproducible whatever the
    thread timing. Probabilities are per message; all zero means no faults.

    Attributes:
      seed: seed of the fault decisions.
      drop: probability that a message is lost (one of its chunks is dropped).
      delay: probability that a message is delayed by ``delay_s``.
      delay_s: the delay of a delayed message, seconds.
      duplicate: probability that a message is delivered twice.
      reorder: probability that a message's chunks are shuffled and the message
        is held back behind the next one on the same link (at most
        ``reorder_window_s``).
      reorder_window_s: longest hold of a reordered message.
      corrupt: probability that one byte of a message is flipped.
      rounds: the rounds the probabilistic faults apply to (empty: all).
      partition: groups of node ids; during ``partition_rounds`` no message
        crosses between groups (nodes in no group form one more group).
      partition_rounds: ``[start, stop)`` of the partition (empty: every round).
      offline: ``[node, start, stop]`` intervals: no message to or from ``node``
        in rounds ``[start, stop)`` (a network model's churn, :mod:`dfl.network`).
      crash_node: the node that crashes (-1: none). It stops abruptly at the
        start of round ``crash_round`` (no final checkpoint; in-process nodes
        drop their endpoint, ``dfl.launch`` over tcp SIGKILLs the process) and,
        with ``restart_after_s >= 0``, restarts from its last checkpoint after
        that many seconds (``checkpoint.every`` must be set).
      crash_round: the round at whose start ``crash_node`` crashes.
      restart_after_s: seconds until the crashed node restarts; < 0: never.
      straggler_nodes: nodes that sleep ``straggler_delay_s`` before every
        local phase of ``straggler_rounds``.
      straggler_delay_s: a straggler's delay per round, seconds.
      straggler_rounds: rounds a straggler is slow in (empty: all).
    """

    seed: int = 0
    drop: float = 0.0
    delay: float = 0.0
    delay_s: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_window_s: float = 0.05
    corrupt: float = 0.0
    rounds: list[int] = dataclasses.field(default_factory=list)
    partition: list[list[int]] = dataclasses.field(default_factory=list)
    partition_rounds: list[int] = dataclasses.field(default_factory=list)
    offline: list[list[int]] = dataclasses.field(default_factory=list)
    crash_node: int = -1
    crash_round: int = 0
    restart_after_s: float = -1.0
    straggler_nodes: list[int] = dataclasses.field(default_factory=list)
    straggler_delay_s: float = 0.0
    straggler_rounds: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TransportConfig:
    """How deployed nodes exchange messages (``conf/transport/*.yaml``).

    Attributes:
      name: ``loopback`` (in-process, for tests and debugging) or ``tcp``.
      run_id: the run every message must belong to; empty: a digest of the
        config (nodes started from one config agree on it).
      host: tcp: the address every node listens on when ``addresses`` is empty.
      base_port: tcp: node ``i`` listens on ``base_port + i``; the launcher
        picks free ports when it is 0.
      addresses: tcp: explicit ``host:port`` of every node, indexed by node id
        (overrides ``host`` and ``base_port``).
      chunk_bytes: largest payload of one frame; larger messages are split.
      max_message_bytes: messages larger than this are refused outright.
      max_rounds_ahead: frames for rounds further ahead of the node's current
        round than this are rejected; ``None`` (the default): the run's length,
        so a node restarted after any downtime still hears its neighbours'
        current round and rejoins (memory stays bounded either way: at most a
        few messages per peer are buffered).
      down_after_missed: failure detection (:mod:`dfl.transport.liveness`): a
        peer whose connection is refused or closed, or that missed this many
        consecutive deadlines, is down, and while it is down an algorithm that
        RENORMALIZEs counts its messages as missing at once instead of after a
        full deadline (WAIT algorithms still wait); its next valid frame marks it
        up. 0: never down.
      connect_timeout_s: tcp: how long a node retries to reach a peer.
      bundle: tcp: this node's key bundle (its ``node-<i>.json`` from ``python -m
        dfl.keys init``, mode 0600): its key and X.509 certificate and the run
        CA's certificate, for mutual TLS 1.3 with every peer. Empty:
        ``keys_dir/node-<i>.json``; ``dfl.launch`` makes the run's keys in
        ``RUN_DIR/keys`` and gives each node its own bundle.
      insecure: tcp: plain TCP instead of TLS, connections gated at most by a
        shared secret (``secret_file``), which proves membership, not identity:
        any holder can speak as any node, and nothing is encrypted. Warned at
        every node's start and recorded in ``metadata.json``; for tests only.
      secret_file: tcp with ``insecure=true``: a file holding a secret shared by
        the run's nodes; every connection must prove it (HMAC challenge–response)
        before its frames are read (:mod:`dfl.transport.auth`). Empty: the
        ``DFL_TRANSPORT_SECRET`` environment variable, else connections are not
        authenticated (``dfl.launch`` draws a secret for the nodes it starts).
      max_pending: tcp: connections pending authentication at most; a new one
        beyond closes the oldest pending one (:mod:`dfl.transport.gate`).
      handshake_timeout_s: tcp: the total time a connection has for its whole
        handshake (TLS and ``HELLO``; not per read), then it is closed; the same
        total deadline bounds this node's handshake when it dials a peer.
      faults: fault injection on the sending side.
      cluster_dir: pilot: a ``python -m dfl.pilot up`` directory; gives every
        node's daemon socket and inbox, the registry, and the run's network.
      pilot_socket: pilot: this node's daemon IPC socket (overrides ``cluster_dir``).
      pilot_inbox: pilot: where that daemon saves received messages
        (``$HOME/.pilot/inbox`` of its user; overrides ``cluster_dir``).
      registry: pilot: the registry's ``host:port`` (overrides ``cluster_dir``).
      network_file: pilot: the run's network (id and join token) written by the
        organiser (``python -m dfl.pilot network create``); empty: the one in
        ``cluster_dir``.
      keys_dir: pilot and tcp: a ``python -m dfl.keys init`` directory (this node
        reads only its ``node-<i>.json``); empty with ``dfl.launch``: made in the
        run directory.
      rendezvous_bin: pilot: the rendezvous binary (else ``$DFL_PILOT_RENDEZVOUS``
        or ``rendezvous`` on PATH).
      revoke_after_rejected: pilot: revoke trust with a member after this many
        rejected frames from it and refuse its frames from then on (0: never).
      send_timeout_s: pilot: how long a message is retried before it is lost.
      down_after_missed: a peer whose messages missed this many deadlines in a
        row is down (not waited for) until its next valid message; the network
        model (:mod:`dfl.network`) applies the same rule to virtual deadlines.
    """

    name: str = "loopback"
    run_id: str = ""
    host: str = "127.0.0.1"
    base_port: int = 29500
    addresses: list[str] = dataclasses.field(default_factory=list)
    chunk_bytes: int = 8 * 1024 * 1024
    max_message_bytes: int = 1 << 31
    max_rounds_ahead: int | None = None
    down_after_missed: int = 3
    connect_timeout_s: float = 60.0
    bundle: str = ""
    insecure: bool = False
    secret_file: str = ""
    max_pending: int = 64
    handshake_timeout_s: float = 5.0
    faults: FaultConfig = dataclasses.field(default_factory=FaultConfig)
    cluster_dir: str = ""
    pilot_socket: str = ""
    pilot_inbox: str = ""
    registry: str = ""
    network_file: str = ""
    keys_dir: str = ""
    rendezvous_bin: str = ""
    revoke_after_rejected: int = 0
    send_timeout_s: float = 30.0
    down_after_missed: int = 3


@dataclasses.dataclass
class CheckpointConfig:
    """Periodic orbax checkpoints of a run (simulation and every deployed node).

    Attributes:
      dir: checkpoint directory; empty: ``<output dir>/checkpoints`` (per node
        for deployments).
      every: save every this many rounds (and after the last round); 0: never.
      max_to_keep: checkpoints kept (the newest).
    """

    dir: str = ""
    every: int = 0
    max_to_keep: int = 3
