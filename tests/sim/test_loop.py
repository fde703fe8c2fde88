"""The compiled loop (``sim.scan=true``) gives the per-round path's records and state.

Every comparison is exact (``==`` on floats, ``array_equal`` on leaves): both paths
sample the same batches from the same keys and run the same jitted round, so only
``wall_time`` and ``compile_time`` (measurements) may differ.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from dfl.sim import loop, runner
from dfl.sim.runner import simulate
from tests.node.common import compose_config, replace

TINY = ("rounds=7", "eval_every=2")
"""The tiny ring of tests/node/common.py for 7 rounds, records at 2, 4, 6 and 7."""

CASES = {
    "ring": (),
    "one_peer_exponential": ("topology=one_peer_exponential", "mixing=auto"),
    "random_matching": ("topology=random_matching", "mixing=auto"),
    "choco_top_k": ("algorithm=choco", "compression=top_k"),
    "dp_sgd": ("privacy=dp_sgd", "data.partition=dirichlet"),
    "every_round_local_test": (
        "eval_every=1",
        "data.local_test_fraction=0.2",
        "algorithm=dsgd_ef",
        "compression=low_rank",
    ),
}
"""Static and time-varying (periodic, random) mixing, compressed messages (choco's
compressor keys; dsgd_ef's per-node ``residual`` in ``info``, left out of records),
DP-SGD accounting and Poisson drops, evaluation every round with local test splits."""

MEASURED = ("wall_time", "compile_time")


def leaves(tree):
    def raw(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    return [raw(x) for x in jax.tree.leaves(tree)]


def strip(records):
    return [{k: v for k, v in r.items() if k not in MEASURED} for r in records]


def run(*overrides, scan, **kw):
    cfg, opt = compose_config(*TINY, *overrides, f"sim.scan={scan}")
    return simulate(cfg, opt, progress=False, **kw)


def assert_same_run(each, scanned):
    assert strip(scanned.records) == strip(each.records)
    for x, y in zip(leaves(each.state), leaves(scanned.state), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 3 rounds first: rounds 0-2, then the rest (so a chunk boundary falls
    between two records and a random schedule restacks its table)."""
    monkeypatch.setattr(loop, "FIRST_CHUNK", 3)


@pytest.mark.parametrize("extra", CASES.values(), ids=CASES.keys())
def test_scan_gives_the_per_round_records_and_state(extra, small_chunks):
    each, scanned = run(*extra, scan=False), run(*extra, scan=True)
    every = "eval_every=1" in extra
    assert [r["round"] for r in scanned.records] == ([*range(1, 8)] if every else [2, 4, 6, 7])
    assert_same_run(each, scanned)


def test_scalar_info_entries_become_record_fields_in_both_paths(monkeypatch, small_chunks):
    make_round = runner.make_round

    def probing(algorithm, exchange, **options):
        round_fn = make_round(algorithm, exchange, **options)

        def probed(*args, **kwargs):
            state, info = round_fn(*args, **kwargs)
            return state, {**info, "probe": info["loss"].max()}

        return probed

    monkeypatch.setattr(runner, "make_round", probing)
    each, scanned = run(scan=False), run(scan=True)
    assert_same_run(each, scanned)
    keys = list(scanned.records[0])
    assert keys[keys.index("bytes_sent_per_node") + 1 :] == ["probe"]
    assert all(r["probe"] >= r["train_loss"] for r in scanned.records)


def test_record_fields_keeps_scalars_and_drops_per_node_entries():
    info = {"loss": np.array([1.0, 3.0]), "residual": np.array([0.5, 0.5]), "sim_time": 4.0}
    assert loop.record_fields(info) == {"train_loss": 2.0, "sim_time": 4.0}


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_node_mean_sums_in_fixed_pairs(n):
    x = np.float32(1.0) + np.float32(2.0**-23) * np.arange(n, dtype=np.float32)
    pairs = list(x)
    while len(pairs) > 1:  # the pairing by hand: (x0 + x1) + (x2 + x3) ...
        pairs += [np.float32(0)] * (len(pairs) % 2)
        pairs = [np.float32(a + b) for a, b in zip(pairs[0::2], pairs[1::2], strict=True)]
    assert float(loop.node_mean(x)) == float(np.float32(pairs[0] / np.float32(n)))
    assert float(jax.jit(loop.node_mean)(x)) == float(loop.node_mean(x))


def checkpoint_meta(directory: Path) -> dict[int, dict]:
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    return {s: json.loads((directory / str(s) / "meta" / "metadata").read_text()) for s in steps}


def test_scan_checkpoints_match_and_resume_inside_a_chunk(tmp_path):
    """Checkpoints at 3, 6, 7 hold the same states either way; a scanned run resumed at
    round 3 (inside what is one chunk of a straight scanned run) ends as the straight run."""
    straight = run(scan=True)  # one chunk, rounds 0-6
    saved = {}
    for scan in (False, True):
        ck = tmp_path / f"ck_{scan}"
        run("checkpoint.every=3", f"checkpoint.dir={ck}", scan=scan)
        saved[scan] = checkpoint_meta(ck)
    assert sorted(saved[True]) == [3, 6, 7]
    digests = {scan: {s: m["digest"] for s, m in metas.items()} for scan, metas in saved.items()}
    assert digests[True] == digests[False]
    assert saved[True][3]["bytes_sent_per_node"] == saved[False][3]["bytes_sent_per_node"]

    ck = tmp_path / "ck_False"
    for step in ("6", "7"):
        shutil.rmtree(ck / step)  # as if the per-round run stopped after round 3
    cfg, opt = compose_config(*TINY, "sim.scan=true")
    resumed = simulate(replace(cfg, resume=str(ck)), opt, progress=False, workdir=tmp_path / "run")
    assert [r["round"] for r in resumed.records] == [4, 6, 7]
    assert strip(resumed.records) == strip(straight.records)[1:]
    for x, y in zip(leaves(straight.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(x, y)
