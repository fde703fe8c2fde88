"""The schema is closed: keys outside it are an error, however they were added.

Hydra refuses ``topolgy.n=8`` (no such key), but its hint ``+topolgy.n=8`` adds the
key anyway (``+`` bypasses a structured config's key check), and the run would
silently use the defaults. :func:`check_known_keys` finds every such key in the
built :class:`~dfl.config.schema.Config`.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any


def unknown_keys(obj: Any, prefix: str = "") -> list[tuple[str, list[str], str | None]]:
    """``(dotted key, known keys, choice name)`` of every attribute outside the schema.

    The choice name is the ``name`` of the group the key was added to (e.g. the
    algorithm), ``None`` where the level has none.

    Args:
      obj: a schema dataclass instance (e.g. the result of ``OmegaConf.to_object``,
        which sets keys unknown to the dataclass as plain attributes).
      prefix: the dotted path of ``obj``.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return []
    known = [f.name for f in dataclasses.fields(obj)]
    choice = getattr(obj, "name", None) if "name" in known else None
    found = [(prefix + key, known, choice) for key in vars(obj) if key not in known]
    for name in known:
        found += unknown_keys(getattr(obj, name), f"{prefix}{name}.")
    return found


def check_known_keys(config: Any) -> None:
    """Raises ``ValueError`` naming every key of ``config`` outside its schema.

    Raises:
      ValueError: e.g. ``unknown config key 'topolgy' (did you mean 'topology'?)``.
    """
    problems = []
    for key, known, choice in unknown_keys(config):
        leaf = key.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, known, n=1)
        owner = key.rsplit(".", 1)[0] if "." in key else ""
        label = f"{owner}={choice!s}" if choice is not None else owner
        where = f" ({label} takes: {', '.join(known)})" if owner else ""
        hint = f" (did you mean {key[: len(key) - len(leaf)] + close[0]!r}?)" if close else ""
        problems.append(f"{key!r}{hint}{where}")
    if problems:
        raise ValueError(
            "unknown config key "
            + "; ".join(problems)
            + ". Keys outside the schema are refused, also when added with '+'"
        )
