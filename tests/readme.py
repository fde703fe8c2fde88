"""The README's tested command blocks: a fenced block right after ``<!-- test: NAME -->``.

:func:`commands` returns each ``python -m dfl.*`` command of block NAME as written
(``\\``-continued lines joined, comments dropped), so a test runs the README's own
command with its small-run overrides appended (Hydra: the last value of a key wins).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = re.compile(r"<!-- test: ([\w-]+) -->\n```bash\n(.*?)```", re.S)
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=")


@dataclasses.dataclass(frozen=True)
class Command:
    """One README command: its leading ``VAR=value`` settings and ``python -m`` arguments."""

    env: dict[str, str]
    module: str
    args: tuple[str, ...]


def blocks(text: str | None = None) -> dict[str, str]:
    """``{NAME: block text}`` of every marked block (a name used twice is an error)."""
    found: dict[str, str] = {}
    for name, body in MARK.findall(README.read_text() if text is None else text):
        assert name not in found, f"README marks two blocks '{name}'"
        found[name] = body
    return found


def commands(name: str) -> list[Command]:
    """The ``python -m dfl.*`` commands of the README block marked ``name``."""
    body = blocks()[name].replace("\\\n", " ")
    out = []
    for line in body.splitlines():
        tokens = [t for t in shlex.split(line, comments=True) if t not in ("&", ";")]
        if "python" not in tokens:
            continue
        at = tokens.index("python")
        assert tokens[at + 1] == "-m", line
        env = dict(t.split("=", 1) for t in tokens[:at] if ENV.match(t))
        out.append(Command(env, tokens[at + 2], tuple(tokens[at + 3 :])))
    assert out, f"README block '{name}' has no python -m command"
    return out
