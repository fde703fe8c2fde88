"""The dependency rules of docs/architecture.md, checked on every module's imports.

Each rule names a layer and the dfl packages (or third-party roots) it must not
import; a violation names the file, the line and the forbidden module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dfl"

MATH = (
    "algorithms",
    "compression",
    "gossip",
    "models",
    "data",
    "privacy",
    "robust",
    "topology",
)
"""The pure math layer: no I/O, no runner, no transport, no Hydra."""
RUNTIME = ("sim", "node", "transport", "launch", "train", "metrics", "checkpoint", "report")
HYDRA = ("hydra", "omegaconf")
ENTRY_POINTS = (
    "train.py",
    "launch.py",
    "inspect.py",
    "report",
    "cli.py",
    "resume.py",  # re-composes a run's saved overrides for +resume (train and launch)
    "sweep.py",  # dfl.train's sweep wrapper and Hydra callback
    "collect.py",  # python -m dfl.collect RUN_DIR (re-composes the run's saved overrides)
    "node/__main__.py",
)
"""Where Hydra may be used (besides the config schema's store)."""

RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # layer: (its packages under dfl/, the dfl modules and third-party roots it may not import)
    "math": (MATH, (*(f"dfl.{m}" for m in RUNTIME), "dfl.config.store", *HYDRA)),
    "transport": (("transport",), (*(f"dfl.{m}" for m in (*MATH, "sim", "node")), *HYDRA)),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, nested ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def files_of(packages: tuple[str, ...]) -> list[Path]:
    out = []
    for name in packages:
        target = PACKAGE / name
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    return [p for p in out if p.exists()]


def forbidden(module: str, banned: tuple[str, ...]) -> bool:
    return any(module == b or module.startswith(b + ".") for b in banned)


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_what_it_may(layer):
    packages, banned = RULES[layer]
    violations = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in files_of(packages)
        for line, module in imports_of(path)
        if forbidden(module, banned)
    ]
    assert not violations, "\n".join(violations)


def test_hydra_lives_only_in_entry_points_and_the_config_store():
    allowed = {PACKAGE / "config" / "store.py"}
    for entry in ENTRY_POINTS:
        target = PACKAGE / entry
        allowed |= set(target.rglob("*.py")) if target.is_dir() else {target}
    violations = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in allowed
        for line, module in imports_of(path)
        if forbidden(module, HYDRA)
    ]
    assert not violations, "\n".join(violations)


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dfl.transport.tcp import TcpTransport\n")
    assert imports_of(bad) == [(2, "dfl.transport.tcp")]
    assert forbidden("dfl.transport.tcp", RULES["math"][1])
    assert not forbidden("dfl.transportation", ("dfl.transport",))
