"""Structured-config schema of the ``network`` group: the simulated (and injected) network.

One model drives both modes (:mod:`dfl.network`): the simulation computes delivery
masks and virtual arrival times inside its jitted round, a deployment replays the
same schedule on the host to decide which messages its transport loses and which
arrivals count. ``name: ideal`` is today's perfect, instant network (the fault-free
round is compiled, no timing fields are recorded).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ComputeConfig:
    """Seconds of compute per local step and node (``network.compute.*``).

    Attributes:
      kind: ``constant`` (every node ``step_s``), ``lognormal`` (node ``i`` draws
        ``step_s · exp(spread · z_i)``, ``z_i`` standard normal) or ``file`` (a text
        file of ``N`` seconds per step, one per node).
      step_s: seconds per local step (the median for ``lognormal``).
      spread: ``lognormal``: the standard deviation of the log.
      file: ``file``: the path.
      jitter: per round and node, the compute is multiplied by ``exp(jitter · z)``
        (``z`` standard normal, drawn per round and node); 0: none.
    """

    kind: str = "constant"
    step_s: float = 0.0
    spread: float = 0.5
    file: str = ""
    jitter: float = 0.0


@dataclasses.dataclass
class LinkConfig:
    """Latency and bandwidth of every directed edge (``network.links.*``).

    A message ``j → i`` takes ``latency[i, j] + bytes / bandwidth[i, j]`` seconds;
    with ``uplink_bps > 0`` node ``j``'s messages share its uplink and leave one
    after another (in receiver order): the k-th takes
    ``latency[i, j] + k · bytes / uplink``.

    Attributes:
      kind: ``constant``, ``lognormal`` (each edge draws ``value · exp(spread · z)``
        for latency and bandwidth) or ``file`` (``latency_file``/``bandwidth_file``:
        ``N × N`` text matrices, row = receiver, column = sender).
      latency_s: seconds.
      bandwidth_bps: bytes per second (0: infinite).
      spread: ``lognormal``: the standard deviation of the log.
      latency_file, bandwidth_file: ``file``: the matrices.
      uplink_bps: a per-node shared uplink, bytes per second (0: none; then
        ``bandwidth`` is per edge).
      slow_nodes: nodes whose out-links are slow (e.g. one hospital on a slow uplink).
      slow_latency_factor: their out-links' latency multiplier.
      slow_bandwidth_factor: their out-links' (and uplink's) bandwidth multiplier.
    """

    kind: str = "constant"
    latency_s: float = 0.0
    bandwidth_bps: float = 0.0
    spread: float = 0.5
    latency_file: str = ""
    bandwidth_file: str = ""
    uplink_bps: float = 0.0
    slow_nodes: list[int] = dataclasses.field(default_factory=list)
    slow_latency_factor: float = 10.0
    slow_bandwidth_factor: float = 0.1


@dataclasses.dataclass
class ChurnConfig:
    """Which nodes are online in which round (``network.churn.*``).

    Attributes:
      kind: ``none``, ``markov`` (each node a two-state chain with mean up and
        down lengths in rounds; it starts in its stationary distribution) or
        ``trace`` (a file of ``node start stop`` lines: the node is *offline* in
        ``[start, stop)``; ``unit: seconds`` converts with ``round_s``).
      mean_up: ``markov``: mean online run, rounds (≥ 1).
      mean_down: ``markov``: mean offline run, rounds (≥ 1).
      file: ``trace``: the path.
      unit: ``rounds`` or ``seconds`` (``trace``).
      round_s: the nominal round length, seconds: converts a trace in seconds
        (round ``floor(s / round_s)``), and is how long a ``WAIT`` algorithm's
        neighbours wait per round a node is offline.
    """

    kind: str = "none"
    mean_up: float = 10.0
    mean_down: float = 2.0
    file: str = ""
    unit: str = "rounds"
    round_s: float = 1.0


@dataclasses.dataclass
class StragglerConfig:
    """Nodes whose compute is multiplied by ``factor`` in some rounds (``network.stragglers.*``).

    Attributes:
      prob: probability that a node straggles in a round (drawn per round and node).
      nodes: nodes that straggle in every round (on top of ``prob``).
      factor: the compute multiplier.
    """

    prob: float = 0.0
    nodes: list[int] = dataclasses.field(default_factory=list)
    factor: float = 10.0


@dataclasses.dataclass
class NetworkConfig:
    """The network model (``conf/network/*.yaml``; see :mod:`dfl.network`).

    Attributes:
      name: ``ideal`` (perfect and instant: today's round) or a model's name
        (any other value: the fields below apply).
      seed: seed of every network draw (drops, churn, stragglers, jitter, links).
      drop: probability that a message is lost, per directed edge and round.
      rto_s: ``WAIT`` algorithms: the retransmission timeout of a lost message.
      compute, links, churn, stragglers: see their schemas.
      schedule_file: a saved schedule (:func:`dfl.network.schedule.save`) that the
        deployment replays instead of recomputing it (empty: recomputed).
    """

    name: str = "ideal"
    seed: int = 0
    drop: float = 0.0
    rto_s: float = 1.0
    compute: ComputeConfig = dataclasses.field(default_factory=ComputeConfig)
    links: LinkConfig = dataclasses.field(default_factory=LinkConfig)
    churn: ChurnConfig = dataclasses.field(default_factory=ChurnConfig)
    stragglers: StragglerConfig = dataclasses.field(default_factory=StragglerConfig)
    schedule_file: str = ""
