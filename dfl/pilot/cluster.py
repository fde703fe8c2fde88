"""A Pilot cluster on loopback: one rendezvous (registry + beacon) and N daemons.

``up`` starts them detached and records everything a node or ``down`` needs in
``DIR/cluster.json``: the registry and beacon addresses, the registry's admin
token, and per daemon its HOME (whose ``.pilot/inbox`` receives its messages),
IPC socket, identity file, Pilot node id and address, and PID. Every public
default of the daemon is overridden (registry, beacon, telemetry, message of the
day, app catalogue, skill injection, proxy), and nothing starts unless the
network namespace has only ``lo`` (:func:`dfl.pilot.netns.require_loopback_only`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dfl.pilot.netns import require_loopback_only

CLUSTER_FILE = "cluster.json"
RENDEZVOUS_ENV = "DFL_PILOT_RENDEZVOUS"
MAX_SOCKET_PATH = 100
"""Unix socket paths longer than this fail (the kernel's limit is 107 bytes)."""
START_TIMEOUT_S = 20.0


def pilot_bin(name: str) -> str:
    """A file of the ``pilotprotocol`` wheel's ``bin/`` (``pilot-daemon``, ``libpilot.so``...).

    Raises:
      ModuleNotFoundError: without ``pilotprotocol`` (``pip install "dfl[pilot]"``).
    """
    import pilotprotocol

    path = Path(pilotprotocol.__file__).parent / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the pilotprotocol package")
    return str(path)


def use_bundled_library() -> None:
    """Points the SDK at the wheel's ``libpilot.so``, so that the first ``Driver()`` does
    not copy binaries into ``~/.pilot`` or write a config naming the public registry."""
    os.environ.setdefault("PILOT_LIB_PATH", pilot_bin("libpilot.so"))


def find_rendezvous(configured: str = "") -> str:
    """The rendezvous binary: ``configured`` (``transport.rendezvous_bin``), else
    ``$DFL_PILOT_RENDEZVOUS``, else ``rendezvous`` on PATH.

    Raises:
      FileNotFoundError: naming the three places and how to install it.
    """
    for candidate in (configured, os.environ.get(RENDEZVOUS_ENV, "")):
        if candidate:
            if not os.access(candidate, os.X_OK):
                raise FileNotFoundError(f"rendezvous binary {candidate!r} is not executable")
            return candidate
    found = shutil.which("rendezvous")
    if found:
        return found
    raise FileNotFoundError(
        "no Pilot rendezvous binary: set transport.rendezvous_bin or $DFL_PILOT_RENDEZVOUS, or "
        "put `rendezvous` on PATH "
        "(go install github.com/TeoSlayer/pilotprotocol/cmd/rendezvous@latest)"
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of ``kind`` (TCP or UDP) free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Daemon:
    """One daemon of the cluster (paths absolute)."""

    index: int
    home: str
    socket: str
    identity: str
    hostname: str
    node_id: int = 0
    address: str = ""
    public_key: str = ""
    pid: int = 0

    @property
    def inbox(self) -> Path:
        """Where this daemon saves the port-1001 messages it receives."""
        return Path(self.home) / ".pilot" / "inbox"


@dataclasses.dataclass
class Cluster:
    """What ``DIR/cluster.json`` holds."""

    dir: str
    registry: str
    beacon: str
    admin_token: str
    rendezvous: str
    rendezvous_pid: int
    daemons: list[Daemon]

    def save(self) -> None:
        path = Path(self.dir) / CLUSTER_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=1))
        tmp.chmod(0o600)  # holds the registry's admin token
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: str | Path) -> Cluster:
        """Reads ``DIR/cluster.json``.

        Raises:
          FileNotFoundError: if ``DIR`` holds no cluster (run ``python -m dfl.pilot up`` first).
        """
        path = Path(directory) / CLUSTER_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: start one with `python -m dfl.pilot up`")
        raw: dict[str, Any] = json.loads(path.read_text())
        raw["daemons"] = [Daemon(**d) for d in raw["daemons"]]
        return cls(**raw)


def daemon_env(home: str, registry: str, beacon: str) -> dict[str, str]:
    """The daemon's environment: its own HOME, every public default overridden."""
    env = dict(os.environ)
    env.update(
        HOME=home,
        PILOT_REGISTRY=registry,
        PILOT_BEACON=beacon,
        PILOT_NO_SKILLINJECT="1",
        PILOT_TELEMETRY_URL="",
        PILOT_MOTD_URL="",
        PILOT_PROXY="off",
        PILOT_APPSTORE_CATALOG_URL="http://127.0.0.1:9/catalog.json",
    )
    return env


def daemon_command(d: Daemon, registry: str, beacon: str) -> list[str]:
    """``pilot-daemon`` with every public default overridden (binary inbox payloads)."""
    return [
        pilot_bin("pilot-daemon"),
        "-registry", registry,
        "-beacon", beacon,
        "-listen", "127.0.0.1:0",
        "-transport", "udp",
        "-compat-beacon", "ws://127.0.0.1:9/",
        "-socket", d.socket,
        "-identity", d.identity,
        "-hostname", d.hostname,
        "-email", f"{d.hostname}@example.invalid",
        "-telemetry-url", "",
        "-motd-feed-url", "",
        "-no-skillinject",
        "-proxy", "off",
        "-dataexchange-b64",
    ]  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen, what: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not ready after {timeout} s")
        time.sleep(0.01)


def start_daemon(cluster: Cluster, d: Daemon) -> None:
    """Starts (or restarts, keeping its identity) daemon ``d``; fills in its id and PID."""
    require_loopback_only()
    use_bundled_library()
    from pilotprotocol import Driver, PilotError

    Path(d.home).mkdir(parents=True, exist_ok=True)
    sock = Path(d.socket)
    sock.unlink(missing_ok=True)
    log = open(Path(d.home) / "daemon.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(
        daemon_command(d, cluster.registry, cluster.beacon),
        env=daemon_env(d.home, cluster.registry, cluster.beacon),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    what = f"pilot daemon {d.index} (log {d.home}/daemon.log)"
    _wait_for(sock, proc, what, START_TIMEOUT_S)
    end = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with Driver(d.socket) as drv:
                info = drv.info()
            if info.get("node_id"):
                break
        except PilotError:
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{what} did not register with {cluster.registry}")
        time.sleep(0.02)
    d.node_id = int(info["node_id"])
    d.address = str(info["address"])
    d.public_key = str(info.get("public_key", ""))
    d.pid = proc.pid


def daemon_layout(directory: Path, index: int) -> Daemon:
    """Where daemon ``index`` of a cluster in ``directory`` keeps its files."""
    home = directory / f"n{index}"
    d = Daemon(
        index,
        str(home),
        str(home / "pilot.sock"),
        str(home / "identity.json"),
        f"dfl-daemon-{index}",
    )
    if len(d.socket) > MAX_SOCKET_PATH:
        raise ValueError(
            f"socket path {d.socket!r} is {len(d.socket)} bytes, over {MAX_SOCKET_PATH}: "
            "use a shorter --dir"
        )
    return d


def up(directory: str | Path, nodes: int, *, rendezvous_bin: str = "") -> Cluster:
    """Starts a rendezvous and ``nodes`` daemons on loopback; writes ``DIR/cluster.json``.

    Raises:
      RuntimeError: outside a loopback-only network namespace, or if a process fails.
    """
    if nodes < 1:
        raise ValueError(f"--nodes must be >= 1, found {nodes}")
    require_loopback_only()
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if (root / CLUSTER_FILE).exists():
        raise FileExistsError(f"{root / CLUSTER_FILE} exists: `python -m dfl.pilot down` first")
    binary = find_rendezvous(rendezvous_bin)
    registry = f"127.0.0.1:{free_port()}"
    beacon = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    token = secrets.token_urlsafe(24)
    log = open(root / "rendezvous.log", "ab")  # noqa: SIM115 (handed to the child)
    command = [binary, "-registry-addr", registry, "-beacon-addr", beacon]
    command += ["-admin-token", token, "-store", str(root / "registry.json")]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    cluster = Cluster(str(root), registry, beacon, token, binary, proc.pid, [])
    cluster.save()
    try:
        _wait_listening(registry, proc)
        for i in range(nodes):
            d = daemon_layout(root, i)
            cluster.daemons.append(d)
            start_daemon(cluster, d)
            cluster.save()
    except BaseException:
        down(root)
        raise
    return cluster


def _wait_listening(address: str, proc: subprocess.Popen) -> None:
    host, port = address.rsplit(":", 1)
    end = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the rendezvous exited with {proc.returncode}") from None
            if time.monotonic() > end:
                raise TimeoutError(f"the rendezvous is not listening on {address}") from None
            time.sleep(0.01)


def _ours(pid: int, binary: str) -> bool:
    """Whether ``pid`` still runs ``binary`` (so a reused PID is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return os.path.realpath(cmdline) == os.path.realpath(binary)


def stop_pid(pid: int, binary: str, timeout: float = 5.0) -> None:
    """SIGTERM to ``pid`` if it still runs ``binary``; SIGKILL after ``timeout``."""
    if pid <= 0 or not _ours(pid, binary):
        return
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while _ours(pid, binary) and time.monotonic() < end:
        _reap(pid)
        time.sleep(0.01)
    if _ours(pid, binary):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def kill_daemon(cluster: Cluster, index: int, sig: int = signal.SIGKILL) -> None:
    """Sends ``sig`` to daemon ``index`` (tests: a daemon dying mid-run)."""
    d = cluster.daemons[index]
    if _ours(d.pid, pilot_bin("pilot-daemon")):
        os.kill(d.pid, sig)
        _reap(d.pid)


def down(directory: str | Path) -> None:
    """Stops the daemons and the rendezvous recorded in ``DIR/cluster.json`` (by PID)."""
    root = Path(directory)
    cluster = Cluster.load(root)
    daemon = pilot_bin("pilot-daemon")
    for d in cluster.daemons:
        stop_pid(d.pid, daemon)
    stop_pid(cluster.rendezvous_pid, cluster.rendezvous)
    (root / CLUSTER_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def temporary(nodes: int, *, rendezvous_bin: str = "") -> Iterator[Path]:
    """A cluster of ``nodes`` daemons in a fresh short temporary directory, stopped and
    removed on exit (``dfl.launch transport=pilot`` without ``transport.cluster_dir``)."""
    import shutil as _shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="dflp-"))
    try:
        up(root, nodes, rendezvous_bin=rendezvous_bin)
        yield root
    finally:
        if (root / CLUSTER_FILE).exists():
            down(root)
        _shutil.rmtree(root, ignore_errors=True)
