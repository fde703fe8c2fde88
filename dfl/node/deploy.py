"""A whole deployment in one process: N node runners, one thread each.

Every node runs in its own thread with its own :class:`~dfl.node.runner.NodeRunner`
and transport endpoint (loopback, or tcp sockets on 127.0.0.1); they share one
experiment and its jitted functions, and nothing else (messages travel as
bytes). Faults come from ``cfg.transport.faults``, including crash-and-restart
of a node from its last checkpoint. The one-process-per-node path is
``python -m dfl.launch transport=tcp``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optax

from dfl.checkpoint import checkpointers
from dfl.experiment import Experiment, build_experiment
from dfl.metrics import MetricsWriter
from dfl.network.deploy import deployment_config
from dfl.node.collect import (
    combine_files,
    combine_round,
    make_scorer,
    node_dir,
    write_metadata,
    write_summary,
)
from dfl.node.program import NodeProgram, build_program
from dfl.node.runner import NodeCrashError, NodeResult, NodeRunner
from dfl.node.setup import run_id, transport_options
from dfl.transport.base import FramedTransport
from dfl.transport.factory import make_network
from dfl.transport.faults import FaultStats
from dfl.transport.inbox import TransportClosedError

log = logging.getLogger("dfl.deploy")


@dataclasses.dataclass
class DeployResult:
    """What a deployment returns.

    Attributes:
      records: the combined metrics records (the simulation's keys, and more).
      nodes: node id → its final :class:`NodeResult` (in-process runs only).
      experiment: the built experiment.
      faults: what the fault injector did (``None``: no message faults).
      workdir: the run directory (``None``: nothing written).
    """

    records: list[dict[str, Any]]
    nodes: dict[int, NodeResult]
    experiment: Experiment
    faults: FaultStats | None
    workdir: Path | None


class _Node:
    """One node's thread, restarted after an injected crash."""

    def __init__(self, deployment: _Deployment, node: int):
        self.d = deployment
        self.node = node
        self.records: dict[int, dict] = {}
        self.params: dict[int, Any] = {}
        self.result: NodeResult | None = None
        self.error: BaseException | None = None
        self.endpoint: Any = None
        self.threads: list[threading.Thread] = []
        self.rounds_done = 0
        self.status: dict[str, Any] = {}  # last loss and accuracy, for the progress bar

    def start(self, *, restarted: bool = False) -> None:
        thread = threading.Thread(
            target=self._main, args=(restarted,), name=f"dfl-node-{self.node}", daemon=True
        )
        self.threads.append(thread)
        thread.start()

    def _main(self, restarted: bool) -> None:
        try:
            self._run(restarted)
        except BaseException as e:  # setup failed (config, checkpoint dir, ports)
            self.error = e
            log.exception("node %d failed to start", self.node)
            self.d.fail()

    def _run(self, restarted: bool) -> None:
        d, cfg = self.d, self.d.cfg
        workdir = node_dir(d.workdir, self.node) if d.workdir is not None else None
        # One process holds every node: orbax's async signalling is process-global.
        saver, resume = checkpointers(cfg, workdir, self.node, async_save=False)
        if restarted and saver is not None and saver.latest_step() is not None:
            resume = saver
        faults = cfg.transport.faults
        crash = faults.crash_round if faults.crash_node == self.node and not restarted else None
        self.endpoint = d.endpoint(self.node)

        def on_round(done: int, info: dict) -> None:
            self.rounds_done = done
            self.status = {"loss": info.get("loss")}
            if runner.records:
                self.status["acc"] = runner.records[-1]["test_accuracy"]

        runner = NodeRunner(
            d.program,
            self.node,
            self.endpoint,
            workdir=workdir,
            checkpointer=saver,
            resume=resume,
            crash_round=crash,
            stop_round=d.stop_round,
            on_round=on_round,
            cancel=d.cancel,
            keep_params=workdir is None,
            config=cfg,
        )
        try:
            self.result = runner.run()
            self.endpoint.close()
        except NodeCrashError:
            self.endpoint.crash()
            log.warning("node %d crashed at round %d", self.node, faults.crash_round)
            if faults.restart_after_s >= 0 and not d.cancel.is_set():
                timer = threading.Timer(
                    faults.restart_after_s, self.start, kwargs={"restarted": True}
                )
                timer.daemon = True
                self.threads.append(timer)
                timer.start()
        except TransportClosedError:
            pass
        except BaseException as e:  # reported by the launcher, which stops every node
            self.error = e
            log.exception("node %d failed", self.node)
            d.fail()
        finally:
            for r in runner.records:
                self.records[r["round"]] = r
            self.params.update(runner.params_at)
            for c in (saver, resume):
                if c is not None:
                    c.close()

    def alive(self) -> bool:
        return any(t.is_alive() for t in list(self.threads))


class _Deployment:
    def __init__(self, cfg, program: NodeProgram, workdir: Path | None, stop_round: int | None):
        self.cfg = cfg
        self.program = program
        self.workdir = workdir
        self.stop_round = stop_round
        self.cancel = threading.Event()
        n = program.exp.n
        options = transport_options(cfg, schedule=program.exp.schedule, workdir=workdir)
        self.network = make_network(cfg.transport, n, options, in_process=True)
        self.injector = self.network.injector
        # Every node is reachable before any node sends: a node whose thread starts
        # late must not lose its neighbours' first messages.
        self._opened = {i: self.network.endpoint(i) for i in range(n)}
        self.nodes = [_Node(self, i) for i in range(n)]

    def endpoint(self, node: int) -> FramedTransport:
        """Node ``node``'s endpoint: the one opened up front, then a new one per restart."""
        opened = self._opened.pop(node, None)
        return opened if opened is not None else self.network.endpoint(node)

    def close_unclaimed(self) -> None:
        """Closes the endpoints of nodes that never started (their setup failed)."""
        for node in list(self._opened):
            endpoint = self._opened.pop(node, None)  # a starting node may take it meanwhile
            if endpoint is not None:
                endpoint.close()

    def fail(self) -> None:
        self.cancel.set()
        self.close_unclaimed()
        for node in self.nodes:
            if node.endpoint is not None:
                node.endpoint.close()


def run_in_process(
    cfg,
    optimizer: optax.GradientTransformation | None = None,
    *,
    workdir: str | Path | None = None,
    program: NodeProgram | None = None,
    stop_round: int | None = None,
    progress: bool = False,
    on_progress: Callable[[list[int]], None] | None = None,
) -> DeployResult:
    """Runs ``cfg.topology.n`` nodes in this process, one thread each.

    Args:
      cfg: the run's config: ``transport.name`` (``loopback``, or ``tcp`` over
        127.0.0.1 sockets; free ports when ``transport.base_port`` is 0) and
        ``transport.faults`` apply.
      optimizer: the local optimizer (not needed with ``program``).
      workdir: the run directory: nodes write under ``nodes/node_<id>``, the
        combined ``metrics.jsonl``/``metrics.csv`` and ``deployment.json`` go
        here; ``None`` keeps everything in memory.
      program: a prebuilt :class:`NodeProgram` (reuses compiled functions).
      stop_round: every node stops at the start of this round (tests of resume).
      progress: show a progress bar.
      on_progress: called with every node's completed rounds while running.

    Returns:
      The :class:`DeployResult`.

    Raises:
      RuntimeError: naming the node that failed (the others are stopped).
    """
    if program is None:
        if optimizer is None:
            raise ValueError("run_in_process needs an optimizer or a prebuilt program")
        program = build_program(build_experiment(cfg, optimizer))
    exp = program.exp
    workdir = Path(workdir) if workdir is not None else None
    cfg = deployment_config(cfg, exp)  # a network model's losses -> transport.faults
    d = _Deployment(cfg, program, workdir, stop_round)
    _run_threads(d, progress, on_progress)
    d.close_unclaimed()
    errors = [(n.node, n.error) for n in d.nodes if n.error is not None]
    if errors:
        node, error = errors[0]
        raise RuntimeError(f"node {node} failed: {error}") from error
    injector = d.injector
    result = DeployResult(
        records=_combine(d),
        nodes={n.node: n.result for n in d.nodes if n.result is not None},
        experiment=exp,
        faults=injector.stats if injector is not None and injector.active else None,
        workdir=workdir,
    )
    if workdir is not None:
        write_outputs(workdir, result, program.spec, run_id(cfg))
    return result


def write_outputs(workdir: Path, result: DeployResult, spec: Any, rid: str) -> None:
    """Writes a finished deployment's combined records, ``deployment.json`` and metadata."""
    with MetricsWriter(workdir, logger=result.experiment.config.logger) as writer:
        for r in result.records:
            writer.write(r)
    write_summary(workdir, summary(result))
    write_metadata(workdir, result.experiment, spec, rid)


def _run_threads(d: _Deployment, progress: bool, on_progress) -> None:
    """Starts every node's thread and waits for all; Ctrl-C stops them all first."""
    for node in d.nodes:
        node.start()
    try:
        _wait(d, progress, on_progress)
    except KeyboardInterrupt:
        d.fail()
        for node in d.nodes:
            for t in list(node.threads):
                t.join(timeout=10)
        raise


def _wait(d: _Deployment, progress: bool, on_progress) -> None:
    from dfl.metrics.display import node_fields, round_progress

    with round_progress(enabled=progress) as bar:
        task = bar.add_task("nodes", total=d.cfg.rounds, loss="-", acc="-")
        while any(n.alive() for n in d.nodes):
            done = [n.rounds_done for n in d.nodes]
            loss, acc = node_fields([n.status for n in d.nodes])
            bar.update(task, completed=min(done), loss=loss, acc=acc)
            if on_progress is not None:
                on_progress(done)
            time.sleep(0.05)
        loss, acc = node_fields([n.status for n in d.nodes])
        bar.update(task, completed=min(n.rounds_done for n in d.nodes), loss=loss, acc=acc)


def _combine(d: _Deployment) -> list[dict[str, Any]]:
    exp = d.program.exp
    if d.workdir is not None:
        like = d.program.params(d.program.init(0))
        return combine_files(exp, d.workdir, like)
    score = make_scorer(exp)
    rounds = sorted({r for n in d.nodes for r in n.records})
    out = []
    for r in rounds:
        have = [n for n in d.nodes if r in n.records and r in n.params]
        if have:
            out.append(
                combine_round(score, r, [n.records[r] for n in have], [n.params[r] for n in have])
            )
    return out


def summary(result: DeployResult) -> dict[str, Any]:
    """Counters per node and fault statistics of a finished deployment."""
    return {
        "nodes": {i: dataclasses.asdict(r.counters) for i, r in sorted(result.nodes.items())},
        "faults": dataclasses.asdict(result.faults) if result.faults is not None else None,
        "rounds": result.experiment.config.rounds,
    }


def run_loopback(cfg, optimizer=None, **kwargs) -> DeployResult:
    """:func:`run_in_process` over the loopback transport (whatever ``transport.name`` says)."""
    cfg = dataclasses.replace(cfg, transport=dataclasses.replace(cfg.transport, name="loopback"))
    return run_in_process(cfg, optimizer, **kwargs)
