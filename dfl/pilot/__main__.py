"""``python -m dfl.pilot``: a loopback Pilot cluster and run networks.

    python -m dfl.pilot up --nodes N --dir D [--rendezvous BIN]
    python -m dfl.pilot down --dir D
    python -m dfl.pilot network create --dir D --run RUN_ID
    python -m dfl.pilot network create --registry HOST:PORT --owner NODE_ID \
        --run RUN_ID --out FILE          # admin token from $DFL_PILOT_ADMIN_TOKEN

``up`` refuses to start outside a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

ADMIN_TOKEN_ENV = "DFL_PILOT_ADMIN_TOKEN"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m dfl.pilot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start a rendezvous and N daemons on loopback")
    p_up.add_argument("--nodes", type=int, required=True)
    p_up.add_argument("--dir", required=True)
    p_up.add_argument("--rendezvous", default="", help="the rendezvous binary")
    p_down = sub.add_parser("down", help="stop what `up` started in --dir")
    p_down.add_argument("--dir", required=True)
    p_net = sub.add_parser("network", help="run networks")
    net_sub = p_net.add_subparsers(dest="action", required=True)
    p_create = net_sub.add_parser("create", help="create (or show) the network of a run")
    p_create.add_argument("--dir", default="", help="a `python -m dfl.pilot up` directory")
    p_create.add_argument("--run", required=True, help="the run id (transport.run_id)")
    p_create.add_argument("--registry", default="", help="without --dir: the registry")
    p_create.add_argument("--owner", type=int, default=0, help="a registered Pilot node id")
    p_create.add_argument("--out", default="", help="without --dir: where to write the network")
    args = parser.parse_args(argv)

    from dfl.pilot import cluster, network

    try:
        if args.command == "up":
            c = cluster.up(args.dir, args.nodes, rendezvous_bin=args.rendezvous)
            print(json.dumps({"registry": c.registry, "daemons": [d.address for d in c.daemons]}))
        elif args.command == "down":
            cluster.down(args.dir)
        elif args.dir:
            net = network.ensure(args.dir, args.run)
            print(json.dumps({"network_id": net.network_id, "name": net.name}))
        else:
            token = os.environ.get(ADMIN_TOKEN_ENV, "")
            if not (args.registry and args.owner and args.out and token):
                needs = f"--registry, --owner, --out and ${ADMIN_TOKEN_ENV}"
                parser.error(f"network create needs --dir, or {needs}")
            net = network.create(
                args.registry, run_id=args.run, admin_token=token, owner_node_id=args.owner
            )
            net.save(Path(args.out))
            print(json.dumps({"network_id": net.network_id, "name": net.name}))
    except (RuntimeError, OSError, ValueError) as e:
        print(f"dfl.pilot: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
