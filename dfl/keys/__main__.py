"""``python -m dfl.keys init --nodes N --out DIR [--run-id ID]``: a run CA and node bundles."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dfl.keys.ca import init


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m dfl.keys")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="make a run CA and one bundle per node")
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--run-id", default="", help="default: a random id")
    args = parser.parse_args(argv)
    try:
        ca = init(args.nodes, args.out, args.run_id)
    except (OSError, ValueError) as e:
        print(f"dfl.keys: {e}", file=sys.stderr)
        return 1
    print(f"run {ca.run_id}: CA and {args.nodes} node bundles in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
