"""Grouping runs that differ only in ``seed``, by config or sweep-override keys."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, NamedTuple

from dfl.report.load import ReportError, Run

SEED = "seed"


class Group(NamedTuple):
    """Runs sharing the values of the grouping keys (normally: one configuration, its seeds)."""

    values: tuple[Any, ...]
    runs: list[Run]


def key_value(run: Run, key: str) -> Any:
    """``key`` of one run: its sweep override if it has one, else its config value.

    A config group (``topology``) without an override reads as its ``.name``
    (``topology.name``); a key the run lacks is ``None``.
    """
    if key in run["overrides"]:
        return run["overrides"][key]
    config = run["config"]
    if key in config:
        return config[key]
    return config.get(f"{key}.name")


def known_keys(runs: Sequence[Run]) -> list[str]:
    """Every config key and override key some run has, sorted."""
    return sorted({k for r in runs for k in (*r["config"], *r["overrides"])})


def _varying(runs: Sequence[Run], keys: Sequence[str]) -> list[str]:
    return [k for k in keys if len({repr(key_value(r, k)) for r in runs}) > 1]


def _partition(runs: Sequence[Run], by: Sequence[str]) -> frozenset[frozenset[int]]:
    cells: dict[tuple[str, ...], set[int]] = {}
    for i, run in enumerate(runs):
        cells.setdefault(tuple(repr(key_value(run, k)) for k in by), set()).add(i)
    return frozenset(frozenset(c) for c in cells.values())


def default_by(runs: Sequence[Run]) -> list[str]:
    """The keys that vary between runs, except ``seed``.

    The sweep's override keys (``topology``, ``algorithm.local_steps``; not
    ``hydra...``) when they split the runs exactly as the varying config keys
    do, since they are the names the sweep was written in; the varying config
    keys otherwise (e.g. runs of different sweeps, or plain runs).
    """
    config_keys = sorted({k for r in runs for k in r["config"]})
    by_config = [k for k in _varying(runs, config_keys) if k != SEED]
    override_keys = sorted(
        {k for r in runs for k in r["overrides"] if k != SEED and not k.startswith("hydra")}
    )
    by_overrides = _varying(runs, override_keys)
    if by_overrides and _partition(runs, by_overrides) == _partition(runs, by_config):
        return by_overrides
    return by_config


def check_by(runs: Sequence[Run], by: Sequence[str]) -> None:
    """Raises :class:`ReportError` naming the first key of ``by`` no run has."""
    known = known_keys(runs)
    groups = {k.removesuffix(".name") for k in known if k.endswith(".name")}
    for key in by:
        if key not in known and key not in groups:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            varying = ", ".join(default_by(runs)) or "none"
            raise ReportError(
                f"--by {key!r}: no run has this config or override key{hint}; "
                f"keys that vary: {varying}; keys that exist: {', '.join(known)}"
            )


def group_runs(runs: Sequence[Run], by: Sequence[str]) -> list[Group]:
    """Runs grouped by their values of ``by``, groups in order of first appearance."""
    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        values = tuple(key_value(run, k) for k in by)
        groups.setdefault(tuple(map(repr, values)), Group(values, [])).runs.append(run)
    return list(groups.values())


def label(group: Group, by: Sequence[str]) -> str:
    """``key=value`` pairs of a group, ``.name`` dropped (``topology=ring``)."""
    return " ".join(f"{k.removesuffix('.name')}={v}" for k, v in zip(by, group.values, strict=True))


def group_warnings(groups: Sequence[Group], by: Sequence[str]) -> list[str]:
    """Groups whose runs differ in more than ``seed``, or repeat a seed."""
    out = []
    for group in groups:
        name = label(group, by) or "all runs"
        config_keys = sorted({k for r in group.runs for k in r["config"]})
        ignore = {SEED, *by, *(f"{k}.name" for k in by)}
        mixed = [k for k in _varying(group.runs, config_keys) if k not in ignore]
        if mixed:
            out.append(
                f"group {name!r} mixes runs that differ in {', '.join(mixed)}; add them to --by"
            )
        seeds = [r["config"].get(SEED) for r in group.runs]
        repeated = sorted({repr(s) for s in seeds if seeds.count(s) > 1})
        if repeated:
            out.append(f"group {name!r} has several runs with seed {', '.join(repeated)}")
    return out
