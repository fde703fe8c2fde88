"""``python -m dfl.launch +experiment=NAME transport=loopback|tcp|pilot [overrides]``: a deployment.

* ``transport=loopback``: all ``topology.n`` nodes in this process, one thread
  each, messages as bytes over queues (with ``transport.faults.*``).
* ``transport=tcp``: one ``python -m dfl.node`` process per node on this host,
  talking mutual TLS 1.3 over 127.0.0.1 (free ports unless ``transport.base_port``
  or ``transport.addresses`` say otherwise); without ``transport.keys_dir`` this
  launcher makes the run CA and key bundles in ``RUN_DIR/keys`` (0600) and gives
  each node the path of its own bundle (``transport.bundle``). With
  ``transport.insecure=true`` it draws a shared secret for the nodes instead.
* ``transport=pilot transport.cluster_dir=D``: one node process per daemon of
  ``python -m dfl.pilot up --dir D``; this launcher creates the run's network and,
  without ``transport.keys_dir``, the run CA and key bundles in ``RUN_DIR/keys``.
  Without ``transport.cluster_dir`` (or ``pilot_socket``) it runs a temporary
  loopback cluster for the launch (rendezvous: ``transport.rendezvous_bin``,
  ``$DFL_PILOT_RENDEZVOUS`` or PATH; only in a loopback-only network namespace).

The run directory (Hydra's output directory) gets ``nodes/node_<i>/`` (each
node's ``metrics.jsonl``, ``params/``, ``node.log``, checkpoints), and the
combined ``metrics.jsonl``/``metrics.csv`` with the simulation's keys, computed
from the nodes' parameters at every evaluation round, plus ``deployment.json``
(per-node counters, fault statistics). Ctrl-C, SIGTERM, SIGHUP or a failing node
stops every node this launcher started (by PID; nothing else is touched); on
Linux a node process also gets SIGTERM when the launcher dies in any way (SIGKILL
included: ``PR_SET_PDEATHSIG``, :mod:`dfl.node.parent`). ``python -m dfl.collect
RUN_DIR`` writes the combined results of an interrupted run.

With tcp, ``transport.faults.crash_node=I crash_round=R restart_after_s=S``
SIGKILLs node I once it reaches round R and restarts it S seconds later with
``+resume`` from its last checkpoint (needs ``checkpoint.every``); it rejoins
at its neighbours' current round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dfl.cli import instantiate_optimizer, to_config, user_errors
from dfl.config.schema import Config
from dfl.config.store import conf_dir, register
from dfl.transport.auth import SECRET_ENV, new_secret

register()
log = logging.getLogger("dfl.launch")

MANAGED_KEYS = (
    "node.id",
    "node.workdir",
    "hydra.run.dir",
    "transport.addresses",
    "transport.run_id",
    "transport.name",
    "transport.bundle",
    "transport",
    "resume",
    "hydra.output_subdir",
)
"""Overrides the launcher sets per child (the user's values for them are replaced)."""


@dataclasses.dataclass
class Child:
    """One node process."""

    node: int
    args: list[str]
    workdir: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0

    def start(self, env: dict[str, str], extra: Sequence[str] = ()) -> None:
        from dfl.node.parent import PARENT_ENV

        self.workdir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.workdir / "node.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*self.args, *extra],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**env, PARENT_ENV: str(os.getpid())},  # the node dies with this launcher
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children
        )
        log_file.close()

    def status(self) -> dict[str, Any]:
        """The node's last ``progress.json`` (``{}`` before its first round)."""
        try:
            return json.loads((self.workdir / "progress.json").read_text())
        except (OSError, ValueError):
            return {}

    def progress(self) -> int:
        """Rounds the node has completed."""
        return int(self.status().get("round", 0))

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)


@contextlib.contextmanager
def signals_interrupt(signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Within: ``signals`` raise :class:`KeyboardInterrupt`, the path Ctrl-C takes (the
    nodes are stopped). Only in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _filtered(overrides: Sequence[str]) -> list[str]:
    def key(o: str) -> str:
        return o.split("=", 1)[0].lstrip("+~")

    return [o for o in overrides if key(o) not in MANAGED_KEYS]


def child_env() -> dict[str, str]:
    """The environment of node processes: this one, with dfl importable."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _pilot_overrides(cfg: Any, workdir: Path, rid: str) -> list[str]:
    """The organiser's part of a Pilot run: the run's network (in ``transport.cluster_dir``)
    and, without ``transport.keys_dir``, a run CA and key bundles in ``workdir/keys``."""
    from dfl.keys.ca import CA_FILE, init
    from dfl.pilot import network

    t = cfg.transport
    if t.cluster_dir and not t.network_file:
        network.ensure(t.cluster_dir, rid)
    keys = Path(t.keys_dir) if t.keys_dir else workdir / "keys"
    if not t.keys_dir and not (keys / CA_FILE).exists():
        init(cfg.topology.n, keys, rid)
    out = ["transport.name=pilot", f"transport.run_id={rid}", f"transport.keys_dir={keys}"]
    if t.cluster_dir:
        out.append(f"transport.cluster_dir={t.cluster_dir}")
    return out


def _tcp_keys(cfg: Any, workdir: Path, rid: str) -> Path | None:
    """The keys of a TLS tcp run: ``transport.keys_dir``, else made in ``workdir/keys``
    (``None``: ``transport.insecure=true``)."""
    from dfl.transport.factory import organise_keys

    t = cfg.transport
    if t.insecure:
        log.warning(
            "INSECURE tcp (transport.insecure=true): node connections are not encrypted and "
            "any node can speak as any other; recorded in metadata.json"
        )
        return None
    if t.keys_dir:
        return Path(t.keys_dir)
    return organise_keys(cfg.topology.n, rid, workdir)


def _process_backend(name: Any) -> str:
    """The backend the node processes use: ``name``'s if it runs in processes, else tcp."""
    from dfl.transport.factory import backend

    chosen = backend(name)
    return chosen.name if chosen.processes else "tcp"


def node_addresses(cfg: Config) -> list[str]:
    """``host:port`` of every node: ``transport.addresses``/``base_port``, else free ports."""
    from dfl.transport.tcp import addresses_from, free_ports

    n, t = cfg.topology.n, cfg.transport
    if t.addresses or t.base_port > 0:
        found = addresses_from(n, addresses=t.addresses, host=t.host, base_port=t.base_port)
        return [f"{h}:{p}" for h, p in found]
    return [f"{t.host}:{p}" for p in free_ports(n, t.host)]


def node_children(
    cfg: Config, overrides: Sequence[str], workdir: Path, addresses: Sequence[str], rid: str
) -> list[Child]:
    """The ``python -m dfl.node`` process of every node (not started yet)."""
    from dfl.keys.ca import node_file
    from dfl.node.collect import node_dir

    common = [
        *_filtered(overrides),
        f"transport.name={_process_backend(cfg.transport.name)}",
        "transport.addresses=[" + ",".join(f"'{a}'" for a in addresses) + "]",
        f"transport.run_id={rid}",
    ]
    keys = None
    if cfg.transport.name == "pilot":  # this launcher organises the run (network, keys)
        common = [*_filtered(overrides), *_pilot_overrides(cfg, workdir, rid)]
    elif _process_backend(cfg.transport.name) == "tcp":
        keys = _tcp_keys(cfg, workdir, rid)
    if cfg.resume:
        common.append(f"+resume={cfg.resume}")
    children = []
    for i in range(cfg.topology.n):
        d = node_dir(workdir, i)
        args = [sys.executable, "-m", "dfl.node", *common, f"node.id={i}", f"node.workdir={d}"]
        if keys is not None:  # each node reads only its own bundle
            args.append(f"transport.bundle={node_file(keys, i)}")
        children.append(Child(i, [*args, f"hydra.run.dir={d}"], d))
    return children


def launch_env(cfg: Config) -> dict[str, str]:
    """:func:`child_env`; with ``transport.insecure=true``, a fresh shared secret unless
    the run configures one."""
    env = child_env()
    if cfg.transport.insecure and not cfg.transport.secret_file and not env.get(SECRET_ENV):
        env[SECRET_ENV] = new_secret()  # the nodes of this launch authenticate each other
    return env


@dataclasses.dataclass
class CrashFault:
    """``transport.faults.crash_node``: SIGKILL that node at ``crash_round``, restart it later.

    Attributes:
      cfg: the run's config.
      env: the environment a restarted node gets.
      child: the node to crash (``None``: no crash fault).
      killed: nodes killed by the fault and not (yet) restarted.
      restart_at: when to restart the killed node (``None``: not planned).
    """

    cfg: Config
    env: dict[str, str]
    child: Child | None
    killed: set[int] = dataclasses.field(default_factory=set)
    restart_at: float | None = None

    @classmethod
    def of(cls, cfg: Config, env: dict[str, str], children: Sequence[Child]) -> CrashFault:
        node = cfg.transport.faults.crash_node
        return cls(cfg, env, children[node] if 0 <= node < len(children) else None)

    def step(self, codes: dict[int, int | None]) -> bool:
        """Kills or restarts the node when due; ``True`` when it was just restarted."""
        c, faults = self.child, self.cfg.transport.faults
        if c is None:
            return False
        if (
            c.restarts == 0
            and c.node not in self.killed
            and codes.get(c.node) is None
            and c.progress() >= faults.crash_round
        ):
            log.warning("SIGKILL node %d at round %d", c.node, c.progress())
            c.signal(signal.SIGKILL)
            assert c.proc is not None
            c.proc.wait()
            self.killed.add(c.node)
            if faults.restart_after_s >= 0:
                self.restart_at = time.monotonic() + faults.restart_after_s
        if self.restart_at is not None and time.monotonic() >= self.restart_at:
            self._restart(c)
            return True
        return False

    def _restart(self, c: Child) -> None:
        from dfl.checkpoint import checkpoint_dir

        self.restart_at = None
        c.restarts += 1
        self.killed.discard(c.node)
        ckpt = checkpoint_dir(self.cfg, c.workdir, c.node)
        c.args = [a for a in c.args if not a.startswith("+resume=")]
        log.warning("restarting node %d from %s", c.node, ckpt)
        c.start(self.env, [f"+resume={ckpt}"])


def exit_codes(children: Sequence[Child], killed: set[int], workdir: Path) -> dict[int, int | None]:
    """Node → its exit code (``None``: running), the crash fault's victims left out.

    Raises:
      RuntimeError: naming the nodes that failed and their logs.
    """
    from dfl.node.collect import node_dir

    codes = {c.node: c.proc.poll() for c in children if c.proc is not None and c.node not in killed}
    failed = {i: code for i, code in codes.items() if code not in (None, 0)}
    if failed:
        raise RuntimeError(
            f"node(s) {sorted(failed)} exited with {failed}; see "
            + ", ".join(str(node_dir(workdir, i) / "node.log") for i in failed)
        )
    return codes


def supervise(
    cfg: Config,
    children: Sequence[Child],
    crash: CrashFault,
    workdir: Path,
    *,
    progress: bool,
    timeout_s: float | None,
) -> None:
    """Waits until every node finished, applying the crash fault and showing progress.

    Raises:
      RuntimeError: if a node fails or ``timeout_s`` passes.
    """
    from dfl.metrics.display import node_fields, round_progress

    start = time.monotonic()
    with round_progress(enabled=progress) as bar:
        task = bar.add_task("nodes", total=cfg.rounds, loss="-", acc="-")
        while True:
            codes = exit_codes(children, crash.killed, workdir)
            if crash.step(codes):
                continue
            if crash.restart_at is None and all(code == 0 for code in codes.values()):
                break
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise RuntimeError(f"deployment did not finish within {timeout_s}s")
            statuses = [c.status() for c in children]
            loss, acc = node_fields(statuses)
            done = min(int(st.get("round", 0)) for st in statuses)
            bar.update(task, completed=done, loss=loss, acc=acc)
            time.sleep(0.2)
        loss, acc = node_fields([c.status() for c in children])
        bar.update(task, completed=cfg.rounds, loss=loss, acc=acc)


def collect_launch(
    cfg: Config,
    optimizer: Any,
    workdir: Path,
    children: Sequence[Child],
    *,
    addresses: Sequence[str],
    rid: str,
) -> list[dict[str, Any]]:
    """Combines the nodes' files into the run's records and writes them, ``metadata.json``
    and ``deployment.json`` (each node's last record, restarts, addresses, run id)."""
    import optax

    from dfl.experiment import build_experiment
    from dfl.metrics import MetricsWriter, read_jsonl
    from dfl.node.collect import combine_files, write_metadata, write_summary
    from dfl.node.program import build_program

    # The metadata names the backend the node processes used (and how it was secured).
    used = dataclasses.replace(cfg.transport, name=_process_backend(cfg.transport.name))
    cfg = dataclasses.replace(cfg, transport=used)
    exp = build_experiment(cfg, optimizer if optimizer is not None else optax.sgd(0.0))
    program = build_program(exp)
    records = combine_files(exp, workdir, program.params(program.init(0)))
    write_metadata(workdir, exp, program.spec, rid)
    with MetricsWriter(workdir, logger=cfg.logger) as writer:
        for r in records:
            writer.write(r)
    last = {}
    for c in children:
        path = c.workdir / "metrics.jsonl"
        recs = read_jsonl(path) if path.exists() else []
        last[c.node] = recs[-1] if recs else None
    restarts = {c.node: c.restarts for c in children}
    summary = {"nodes": last, "restarts": restarts, "addresses": list(addresses), "run_id": rid}
    write_summary(workdir, summary)
    return records


def launch_processes(
    cfg: Config,
    overrides: Sequence[str],
    workdir: str | Path,
    *,
    optimizer: Any = None,
    progress: bool = True,
    timeout_s: float | None = None,
) -> list[dict[str, Any]]:
    """Runs every node of ``cfg`` as a ``python -m dfl.node`` process.

    The processes use ``cfg.transport.name`` where that backend runs in processes
    (tcp, ...), else tcp.

    Args:
      cfg: the run's config.
      overrides: the Hydra overrides that produced ``cfg`` (passed on to nodes).
      workdir: the run directory.
      optimizer: the optimizer (only to rebuild the model for scoring; any works).
      progress: show a progress bar.
      timeout_s: stop everything after this long (``None``: no limit).

    Returns:
      The combined metrics records (also written to ``workdir``).

    Raises:
      RuntimeError: if a node fails (every other node is stopped first).
      KeyboardInterrupt: on Ctrl-C, SIGTERM or SIGHUP (every node is stopped first).
    """
    from dfl.node.setup import run_id

    workdir = Path(workdir).resolve()
    addresses, rid = node_addresses(cfg), run_id(cfg)
    children = node_children(cfg, overrides, workdir, addresses, rid)
    env = launch_env(cfg)
    crash = CrashFault.of(cfg, env, children)
    with signals_interrupt():
        try:
            for c in children:
                c.start(env)
            pids = [c.proc.pid for c in children if c.proc]
            log.info(
                "started %d node processes (pids %s), run dir %s", len(children), pids, workdir
            )
            supervise(cfg, children, crash, workdir, progress=progress, timeout_s=timeout_s)
        except BaseException:
            stop_children(children)
            raise
    return collect_launch(cfg, optimizer, workdir, children, addresses=addresses, rid=rid)


def stop_children(children: Sequence[Child], grace_s: float = 10.0) -> None:
    """SIGTERM every child still running, then SIGKILL those alive after ``grace_s``."""
    for c in children:
        c.signal(signal.SIGTERM)
    end = time.monotonic() + grace_s
    for c in children:
        if c.proc is None:
            continue
        try:
            c.proc.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.signal(signal.SIGKILL)
            c.proc.wait()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> None:
    """Runs the deployment and prints its summary table.

    ``+resume=RUN_DIR`` continues RUN_DIR's run with its config, in RUN_DIR
    (:mod:`dfl.resume`); Ctrl-C stops every node and says how to resume.
    """
    from dfl.metrics.display import print_table, summary_table
    from dfl.node.addresses import check_addresses
    from dfl.node.deploy import run_in_process
    from dfl.resume import record_resume, resume_config, resume_hint
    from dfl.transport.factory import backend

    hydra_dir = Path(HydraConfig.get().runtime.output_dir)
    given = list(HydraConfig.get().overrides.task)
    resumed = user_errors(lambda: resume_config(cfg, given, node=0))
    cfg = resumed.cfg
    config = to_config(cfg)
    workdir = resumed.run_dir or hydra_dir
    (workdir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    def run() -> list[dict[str, Any]]:
        check_addresses(config)
        t = config.transport
        if t.name == "pilot" and not (t.cluster_dir or t.pilot_socket):
            # No cluster given: run one on loopback for this launch (loopback-only netns).
            from dfl.pilot.cluster import temporary

            with temporary(config.topology.n, rendezvous_bin=t.rendezvous_bin) as d:
                config.transport.cluster_dir = str(d)
                return launch_processes(
                    config, resumed.overrides, workdir, optimizer=instantiate_optimizer(cfg)
                )
        if backend(t.name).processes:
            return launch_processes(
                config, resumed.overrides, workdir, optimizer=instantiate_optimizer(cfg)
            )
        optimizer = instantiate_optimizer(cfg)
        return run_in_process(config, optimizer, workdir=workdir, progress=True).records

    hint = resume_hint("dfl.launch", workdir, config.checkpoint.every)
    stopped = f"every node was stopped; {hint}; combine it so far: python -m dfl.collect {workdir}"
    records = user_errors(run, interrupted=stopped)
    record_resume(resumed, hydra_dir)
    print_table(
        summary_table(
            records, title=f"dfl deployment: {config.algorithm.name} over {config.transport.name}"
        )
    )
    print(f"outputs: {workdir}")


if __name__ == "__main__":
    main()
