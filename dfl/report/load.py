"""Finding and reading run directories (``metrics.jsonl`` + ``config_resolved.yaml``)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import yaml

from dfl.metrics import read_jsonl


class ReportError(ValueError):
    """A user mistake (bad key, bad path); the CLI prints it as one ``dfl: error:`` line."""


class Run(TypedDict):
    """One run: its directory, flat resolved config, sweep overrides and metrics records."""

    dir: Path
    config: dict[str, Any]
    overrides: dict[str, str]
    records: list[dict[str, Any]]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_overrides(lines: Sequence[str]) -> dict[str, str]:
    """Hydra's ``overrides.yaml`` list (``["+experiment=x", "seed=1"]``) as ``{key: value}``.

    ``+``/``++`` prefixes are dropped from the key; deletions (``~key``) are skipped.
    """
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        if not sep or key.startswith("~"):
            continue
        out[key.lstrip("+")] = value
    return out


def number(value: Any) -> float | None:
    """A record value as a float (``"nan"``/``"inf"`` strings included), ``None`` if absent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def finite(value: Any) -> float | None:
    """:func:`number`, but ``None`` for NaN and ±inf too."""
    x = number(value)
    return x if x is not None and math.isfinite(x) else None


def _natural(path: Path) -> list[Any]:
    """Sort key putting Hydra job ``2_...`` before ``10_...``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def load_run(directory: Path) -> Run:
    """The run in ``directory`` (which holds ``metrics.jsonl`` and ``config_resolved.yaml``)."""
    config = flatten(yaml.safe_load((directory / "config_resolved.yaml").read_text()) or {})
    overrides_file = directory / ".hydra" / "overrides.yaml"
    overrides = (
        parse_overrides(yaml.safe_load(overrides_file.read_text()) or [])
        if overrides_file.exists()
        else {}
    )
    records = read_jsonl(directory / "metrics.jsonl")
    return Run(dir=directory, config=config, overrides=overrides, records=records)


def load_runs(
    paths: str | Path | Sequence[str | Path], *, skipped: list[Path] | None = None
) -> list[Run]:
    """Every run in or under ``paths`` (run or multirun directories), each once.

    Runs are ordered by path, then by directory name with numbers compared as
    numbers (Hydra's job order). A run directory inside another one (a
    deployment's per-node ``nodes/node_<i>/``) is part of that run, not a run
    of its own. A run whose ``metrics.jsonl`` is still empty (a failed or
    unstarted job) is left out and appended to ``skipped``.

    Raises:
      ReportError: a path does not exist or holds no run with records.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    runs: list[Run] = []
    seen: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise ReportError(f"path {str(path)!r} does not exist")
        candidates = {
            m.parent
            for m in path.rglob("metrics.jsonl")
            if (m.parent / "config_resolved.yaml").exists()
        }
        # a run inside a run is part of it (a deployment's nodes/node_<i>/)
        dirs = sorted(
            (d for d in candidates if not any(p in candidates for p in d.parents)), key=_natural
        )
        found = 0
        for directory in dirs:
            if directory.resolve() in seen:
                found += 1
                continue
            run = load_run(directory)
            if not run["records"]:
                if skipped is not None:
                    skipped.append(directory)
                continue
            seen.add(directory.resolve())
            runs.append(run)
            found += 1
        if not found:
            raise ReportError(
                f"path {str(path)!r} holds no runs (no directory with a non-empty "
                "metrics.jsonl and a config_resolved.yaml)"
            )
    return runs
