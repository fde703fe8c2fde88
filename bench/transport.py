"""One round of exchange between 3 nodes: loopback and tcp against a raw socket copy.

Every node sends its model (one float32 array of S bytes) to the two others and
receives theirs (6 transfers of S bytes), for S = 1, 10 and 100 MB:

* ``raw``: one process per node, plain ``sendall``/``recv_into`` over
  pre-connected 127.0.0.1 sockets into preallocated buffers (the floor).
* ``tls``: one process per node (as deployed), :class:`~dfl.transport.tcp.TcpTransport`
  in its default mode, mutual TLS 1.3 (per-node certificates of a fresh run CA):
  encryption, framing, the checksum of every chunk on both sides (xxh3, or crc32
  without ``xxhash``), header and schema checks, reassembly and the finite-value
  check, up to the decoded arrays.
* ``insecure``: the same over plain TCP (``transport.insecure=true``, no secret),
  for comparison: what TLS costs.
* ``loopback``: three nodes as threads of one process (as in tests), frames
  copied into ``bytes`` through queues, the same validation.

A round is timed from a common start (a barrier) until the last node holds
both messages; connections are set up by an untimed warm-up round; best of
``--repeats``. Printed: seconds and ``raw_s / transport_s`` (1.0 = raw socket
throughput; the target for tcp at 100 MB is ≥ 0.5). All four run in the
same invocation, so the ratios are comparable even on a busy machine.

    python -m bench.transport [--sizes-mb 1 10 100] [--repeats 3]

``tls/insecure`` is ``insecure_s / tls_s``: the share of plain TCP's throughput that
TLS keeps (a quick check: ``--sizes-mb 0.1 --repeats 1``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import threading
import time
from collections.abc import Callable

import numpy as np

NODES = 3
CHUNK = 8 * 1024 * 1024
RUN = "bench"


def model(nbytes: int, seed: int) -> np.ndarray:
    """A float32 'model' of ``nbytes`` bytes."""
    return np.random.default_rng(seed).standard_normal(nbytes // 4, dtype=np.float32)


def _recv_into(sock: socket.socket, view: memoryview) -> None:
    while view.nbytes:
        n = sock.recv_into(view)
        if n == 0:
            raise ConnectionError("closed")
        view = view[n:]


# -- one process per node ----------------------------------------------------------


def _raw_node(i: int, nbytes: int, ports: list[int], repeats: int, barrier, results) -> None:
    """Node ``i`` of the raw baseline: pre-connected sockets, preallocated buffers."""
    mine = model(nbytes, i)
    listener = socket.create_server(("127.0.0.1", ports[i]), backlog=NODES)
    barrier.wait()  # every node listens
    out = {}
    for j in range(NODES):
        if j != i:
            out[j] = socket.create_connection(("127.0.0.1", ports[j]))
            out[j].sendall(bytes([i]))
    inn = {}
    for _ in range(NODES - 1):
        conn, _ = listener.accept()
        inn[conn.recv(1)[0]] = conn
    for s in [*out.values(), *inn.values()]:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffers = {j: memoryview(bytearray(nbytes)) for j in inn}

    def one_round() -> None:
        threads = [threading.Thread(target=s.sendall, args=(mine.data,)) for s in out.values()]
        threads += [threading.Thread(target=_recv_into, args=(inn[j], buffers[j])) for j in inn]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    for r in range(repeats + 1):
        barrier.wait()
        start = time.perf_counter()
        one_round()
        if r:
            results.put((r, i, start, time.perf_counter()))
    barrier.wait()
    for s in [*out.values(), *inn.values(), listener]:
        s.close()


def _tcp_node(
    i: int,
    nbytes: int,
    ports: list[int],
    repeats: int,
    barrier,
    results,
    checksum: int,
    tls: list | None,
) -> None:
    """Node ``i`` over the tcp transport: TLS with ``tls[i]``, or insecure (``None``)."""
    from dfl.transport import Kind, WireSpec, encode_payload
    from dfl.transport.tcp import TcpTransport

    mine = model(nbytes, i)
    spec = WireSpec.from_tree(mine)
    ep = TcpTransport(
        i,
        [("127.0.0.1", p) for p in ports],
        run_id=RUN,
        chunk_bytes=CHUNK,
        tls=None if tls is None else tls[i],
    )
    ep.expect(Kind.WIRE, spec)
    peers = [j for j in range(NODES) if j != i]
    barrier.wait()  # every node listens
    for r in range(repeats + 1):
        barrier.wait()
        start = time.perf_counter()
        payload = encode_payload(spec, mine, chunk_bytes=CHUNK, checksum=checksum)
        for j in peers:
            ep.send(j, r, Kind.WIRE, payload)
        got = ep.receive(r, peers, time.monotonic() + 600)
        if got.missing:
            raise RuntimeError(f"node {i} missed {got.missing}: {got.rejected}")
        arrays = {j: spec.unflatten(got.messages[j]) for j in peers}
        assert all(a.shape == mine.shape for a in arrays.values())
        if r:
            results.put((r, i, start, time.perf_counter()))
    barrier.wait()
    ep.close()


def in_processes(target: Callable, nbytes: int, repeats: int, *extra) -> float:
    """Best round time of ``target`` run as one process per node."""
    from dfl.transport.tcp import free_ports

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(NODES), ctx.Queue()
    ports = free_ports(NODES)
    procs = [
        ctx.Process(target=target, args=(i, nbytes, ports, repeats, barrier, results, *extra))
        for i in range(NODES)
    ]
    for p in procs:
        p.start()
    rows = [results.get(timeout=900) for _ in range(NODES * repeats)]
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise RuntimeError(f"a benchmark node exited with {p.exitcode}")
    rounds: dict[int, list[tuple[float, float]]] = {}
    for r, _, start, end in rows:
        rounds.setdefault(r, []).append((start, end))
    return min(max(e for _, e in v) - min(s for s, _ in v) for v in rounds.values())


# -- loopback: threads of one process ----------------------------------------------


def loopback_round(nbytes: int, repeats: int, checksum: int) -> float:
    """Best round time of three loopback nodes (threads) after a warm-up round."""
    from dfl.transport import Kind, LoopbackNetwork, WireSpec, encode_payload

    models = [model(nbytes, i) for i in range(NODES)]
    spec = WireSpec.from_tree(models[0])
    net = LoopbackNetwork(NODES, run_id="bench")
    eps = [net.endpoint(i) for i in range(NODES)]
    for ep in eps:
        ep.expect(Kind.WIRE, spec)

    def node(i: int, r: int) -> None:
        peers = [j for j in range(NODES) if j != i]
        payload = encode_payload(spec, models[i], chunk_bytes=CHUNK, checksum=checksum)
        for j in peers:
            eps[i].send(j, r, Kind.WIRE, payload)
        got = eps[i].receive(r, peers, time.monotonic() + 600)
        if got.missing:
            raise RuntimeError(f"node {i} missed {got.missing}")

    best = float("inf")
    for r in range(repeats + 1):
        threads = [threading.Thread(target=node, args=(i, r)) for i in range(NODES)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if r:
            best = min(best, time.perf_counter() - start)
    for ep in eps:
        ep.close()
    return best


def credentials() -> list:
    """Every node's TLS credentials from a fresh run CA (in memory)."""
    from dfl.keys import RunCA
    from dfl.transport.tls import TlsCredentials

    ca = RunCA.generate(RUN)
    return [TlsCredentials.from_identity(ca.issue(i)) for i in range(NODES)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--checksum",
        choices=["default", "crc32", "xxh3"],
        default="default",
        help="payload checksum (default: xxh3 where xxhash is installed, else crc32)",
    )
    args = parser.parse_args()
    from dfl.transport.wire import DEFAULT_CHECKSUM, Checksum

    checksum = {"default": DEFAULT_CHECKSUM, "crc32": Checksum.CRC32, "xxh3": Checksum.XXH3}[
        args.checksum
    ]
    print(f"payload checksum: {Checksum(checksum).name}")
    print(
        f"{NODES} nodes, all-to-all, one round, best of {args.repeats}; "
        "ratio = raw_s / transport_s (1.0 = raw socket throughput)"
    )
    print("tls: tcp's default (mutual TLS 1.3); insecure: plain TCP (transport.insecure=true)")
    print(
        f"{'size':>8} {'raw s':>8} {'tls s':>8} {'insecure s':>10} {'loopback s':>10} "
        f"{'tls/raw':>8} {'insecure/raw':>12} {'loopback/raw':>12} {'tls/insecure':>12}"
    )
    keys = credentials()
    for size in args.sizes_mb:
        nbytes = int(size * 1_000_000) // 4 * 4
        raw = in_processes(_raw_node, nbytes, args.repeats)
        tls = in_processes(_tcp_node, nbytes, args.repeats, int(checksum), keys)
        plain = in_processes(_tcp_node, nbytes, args.repeats, int(checksum), None)
        loop = loopback_round(nbytes, args.repeats, int(checksum))
        print(
            f"{size:>6g}MB {raw:>8.4f} {tls:>8.4f} {plain:>10.4f} {loop:>10.4f} "
            f"{raw / tls:>8.2f} {raw / plain:>12.2f} {raw / loop:>12.2f} {plain / tls:>12.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
