"""Compress + decompress throughput of every compressor, as a ratio to a plain copy.

For one float32 array of about one million parameters (default ``1000 × 1000``,
a matrix so that ``low_rank`` has something to factor) it measures, in one
process with interleaved repetitions and medians (``jax.jit``,
``block_until_ready``, compile excluded):

* ``copy``        — a jitted elementwise pass over the array (``-x``: one read,
  one write; a bare ``x`` or ``x.copy()`` may be elided by XLA), the floor;
* ``compress``    — ``compress(x, state)`` (encoded message + new state);
* ``roundtrip``   — ``decompress(compress(x, state))``: what a sender and a
  receiver together spend per message.

It prints a table (seconds, ratio to ``copy``, bytes on the wire / dense bytes)
and one JSON line per compressor with the keys ``compressor``, ``params``,
``device``, ``copy_s``, ``compress_s``, ``roundtrip_s``, ``compress_ratio``,
``roundtrip_ratio``, ``wire_bytes``, ``dense_bytes``, ``size_ratio``.

Usage: ``python bench/compressors.py [--shape 1000 1000] [--reps 30]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from dfl.compression import (
    Compressor,
    encoded_nbytes,
    identity,
    low_rank,
    qsgd,
    rand_k,
    sign,
    top_k,
)

CASES: dict[str, Callable[[], Compressor]] = {
    "identity": identity,
    "top_k_1%": lambda: top_k(fraction=0.01),
    "top_k_10%": lambda: top_k(fraction=0.1),
    "rand_k_1%": lambda: rand_k(fraction=0.01),
    "rand_k_10%_unbiased": lambda: rand_k(fraction=0.1, unbiased=True),
    "qsgd_s16_b512": lambda: qsgd(levels=16, bucket_size=512),
    "qsgd_s4_unbiased": lambda: qsgd(levels=4, unbiased=True),
    "sign": sign,
    "low_rank_r1": lambda: low_rank(rank=1),
    "low_rank_r4": lambda: low_rank(rank=4),
}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[1000, 1000])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--only", nargs="*", default=None, help="subset of compressors")
    args = parser.parse_args()

    shape = tuple(args.shape)
    x = jax.random.normal(jax.random.key(0), shape, jnp.float32)
    dense_bytes = x.size * x.dtype.itemsize
    copy = jax.jit(lambda v: -v)

    names = [n for n in CASES if args.only is None or n in args.only]
    runs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}
    wire: dict[str, int] = {}
    for name in names:
        comp = CASES[name]()
        state = jax.jit(comp.init)(x, jax.random.key(1))
        compress = jax.jit(comp.compress)
        roundtrip = jax.jit(lambda v, s, c=comp: (c.decompress(c.compress(v, s)[0]), s))
        encoded, _ = compress(x, state)
        wire[name] = encoded_nbytes(encoded)
        jax.block_until_ready(roundtrip(x, state))  # compile
        runs[name] = (
            lambda f=compress, s=state: f(x, s),
            lambda f=roundtrip, s=state: f(x, s),
        )
    jax.block_until_ready(copy(x))

    times: dict[str, list[float]] = {"copy": []}
    for name in names:
        times[f"{name}/compress"], times[f"{name}/roundtrip"] = [], []
    for _ in range(args.reps):  # interleaved: drift hits every variant alike
        times["copy"].append(timed(lambda: copy(x)))
        for name in names:
            times[f"{name}/compress"].append(timed(runs[name][0]))
            times[f"{name}/roundtrip"].append(timed(runs[name][1]))
    med = {k: statistics.median(v) for k, v in times.items()}

    device = jax.devices()[0].device_kind
    print(f"{x.size:,} float32 parameters {shape} on {device}; medians of {args.reps} reps")
    print(f"copy (-x): {med['copy'] * 1e3:.3f} ms")
    header = f"{'compressor':<22}{'compress ms':>12}{'×copy':>8}{'round ms':>10}{'×copy':>8}"
    print(header + f"{'wire bytes':>13}{'/dense':>9}")
    records = []
    for name in names:
        c, r = med[f"{name}/compress"], med[f"{name}/roundtrip"]
        record = {
            "compressor": name,
            "params": int(x.size),
            "device": device,
            "copy_s": med["copy"],
            "compress_s": c,
            "roundtrip_s": r,
            "compress_ratio": c / med["copy"],
            "roundtrip_ratio": r / med["copy"],
            "wire_bytes": wire[name],
            "dense_bytes": dense_bytes,
            "size_ratio": wire[name] / dense_bytes,
        }
        records.append(record)
        print(
            f"{name:<22}{c * 1e3:>12.3f}{c / med['copy']:>8.1f}{r * 1e3:>10.3f}"
            f"{r / med['copy']:>8.1f}{wire[name]:>13,}{wire[name] / dense_bytes:>9.4f}"
        )
    for record in records:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
