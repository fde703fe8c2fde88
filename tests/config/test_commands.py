"""Every ``python -m dfl.*`` command the README, the studies' READMEs and the presets
show composes against the schema (each combination of a ``-m`` sweep)."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest

from dfl.cli import to_config
from dfl.config.store import conf_dir
from tests.conftest import compose_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "experiments").glob("*/README.md"))]
PRESETS = sorted((conf_dir() / "experiment").glob("*.yaml"))
COMMAND = re.compile(r"python -m dfl\.(train|inspect|launch|node)\b(.*)")
FLAGS_WITH_VALUE = {"--cfg", "--package", "-p"}
SHELL_VARIABLES = {"$HOME": "/home/user", "$I": "0"}
"""What the shell substitutes in the documented commands (a host's home, the node index)."""


def commands() -> list[tuple[str, list[str]]]:
    """``(source line, overrides)`` of every documented command, continuations joined."""
    found = []
    for path in DOCS + PRESETS:
        text = re.sub(r"\\\n\s*", " ", path.read_text())
        for line in text.splitlines():
            match = COMMAND.search(line)
            if match is None:
                continue
            rest = match.group(2).split(" #")[0].split("`")[0]
            for variable, value in SHELL_VARIABLES.items():
                rest = rest.replace(variable, value)
            tokens = shlex.split(rest)
            sweep = "-m" in tokens or "--multirun" in tokens
            overrides, skip = [], False
            for token in tokens:
                if skip:
                    skip = False
                elif token.startswith("-"):
                    skip = token in FLAGS_WITH_VALUE
                elif "=" in token:
                    overrides.append(token)
            if "NAME" in " ".join(overrides) or "RUN_DIR" in " ".join(overrides):
                continue  # a placeholder, not a command
            axes = [
                [f"{o.split('=', 1)[0]}={v}" for v in o.split("=", 1)[1].split(",")]
                if sweep and "[" not in o
                else [o]
                for o in overrides
            ]
            for combination in itertools.product(*axes):
                found.append((f"{path.name}: {line.strip()}", list(combination)))
    return found


COMMANDS = commands()


def test_commands_are_found():
    lines = {line for line, _ in COMMANDS}
    assert any("topology=ring,complete" in line for line in lines)
    assert any("study_compression algorithm=dsgd compression=identity" in line for line in lines)
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize(("line", "overrides"), COMMANDS, ids=lambda x: str(x)[:90])
def test_documented_command_composes(line, overrides):
    del line
    to_config(compose_config(overrides))
