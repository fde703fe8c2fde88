"""A user-supplied graph read from an edge-list file.

Format: one edge per line, two 0-based integer node ids ``u v`` separated by
whitespace or a comma; blank lines and text after ``#`` are ignored. For a
directed graph the line ``u v`` is the arc ``u → v`` (``v`` hears ``u``).
"""

from __future__ import annotations

import os
import re

from dfl.topology.graph import Topology


def parse_edge_list(text: str, *, source: str = "<string>") -> list[tuple[int, int]]:
    """Parses edge-list text into ``(u, v)`` pairs.

    Raises:
      ValueError: naming the file and line of the first malformed line.
    """
    edges = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[\s,]+", line) if f]
        try:
            if len(fields) != 2:
                raise ValueError
            u, v = int(fields[0]), int(fields[1])
        except ValueError:
            raise ValueError(
                f"edge list {source}, line {lineno}: expected two integer node ids 'u v', "
                f"found {raw.strip()!r}"
            ) from None
        if u < 0 or v < 0:
            raise ValueError(
                f"edge list {source}, line {lineno}: node ids must be >= 0, found {u}, {v}"
            )
        edges.append((u, v))
    return edges


def from_edge_list(path: str | os.PathLike, *, n: int = 0, directed: bool = False) -> Topology:
    """Reads a graph from an edge-list file.

    Args:
      path: the file.
      n: number of nodes; 0 infers ``1 + max node id``. Larger ``n`` leaves the
        extra nodes isolated (and then the graph is refused as disconnected).
      directed: whether ``u v`` is a one-way arc.

    Returns:
      The :class:`Topology`.
    """
    if not path:
        raise ValueError("topology 'edge_list': set topology.path to an edge-list file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"topology 'edge_list': cannot read {str(path)!r}: {e.strerror}") from e
    edges = parse_edge_list(text, source=repr(str(path)))
    if not edges:
        raise ValueError(f"topology 'edge_list': {str(path)!r} contains no edges")
    largest = max(max(u, v) for u, v in edges)
    if n == 0:
        n = largest + 1
    elif largest >= n:
        raise ValueError(
            f"topology 'edge_list': {str(path)!r} names node {largest} but n={n} "
            f"(node ids must be < n; set n=0 to infer n={largest + 1})"
        )
    name = f"edge_list({os.path.basename(str(path))})"
    return Topology.from_edges(n, edges, name=name, directed=directed)
