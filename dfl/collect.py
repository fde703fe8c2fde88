"""``python -m dfl.collect RUN_DIR``: the combined results of a launched run from its nodes' files.

For a ``python -m dfl.launch`` run that was stopped (Ctrl-C, SIGTERM, the launcher
killed): writes ``metrics.jsonl``/``metrics.csv``, ``metadata.json`` and
``deployment.json`` into ``RUN_DIR`` exactly as the launcher does at the end of a run
(:func:`dfl.launch.collect_launch`), from ``RUN_DIR/.hydra/overrides.yaml`` and the
nodes' ``metrics.jsonl`` and parameters. Every evaluation round some node reported
gets a record over the nodes that reported it (``nodes_reporting``). What the
launcher alone knew (the nodes' addresses, crash-fault restarts) is not in the run
directory: ``deployment.json`` has no addresses and zero restarts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OVERRIDES_FILE = ".hydra/overrides.yaml"
"""The launcher's overrides in its run directory (its config: these over ``conf/``)."""


def collect_run(run_dir: str | Path) -> list[dict[str, Any]]:
    """Combines and writes the results of the launched run in ``run_dir``.

    Returns:
      The combined records (also written to ``run_dir``).

    Raises:
      FileNotFoundError: ``run_dir`` has no ``.hydra/overrides.yaml`` (not a launcher's run).
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from dfl.cli import instantiate_optimizer, to_config
    from dfl.config.store import conf_dir, register
    from dfl.launch import Child, collect_launch
    from dfl.node.collect import node_dir
    from dfl.node.setup import run_id

    run_dir = Path(run_dir).resolve()
    path = run_dir / OVERRIDES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected a python -m dfl.launch run directory")
    overrides = [str(o) for o in OmegaConf.load(path)]  # pyright: ignore[reportGeneralTypeIssues]
    register()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        raw = compose("config", overrides=overrides)
    cfg = to_config(raw)
    children = [Child(i, [], node_dir(run_dir, i)) for i in range(cfg.topology.n)]
    optimizer = instantiate_optimizer(raw)
    return collect_launch(cfg, optimizer, run_dir, children, addresses=[], rid=run_id(cfg))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m dfl.collect RUN_DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m dfl.collect", description="the combined results of a launched run"
    )
    parser.add_argument("run_dir", type=Path, help="the launcher's run directory")
    args = parser.parse_args(argv)
    try:
        records = collect_run(args.run_dir)
    except FileNotFoundError as e:
        print(f"dfl: error: {e}", file=sys.stderr)
        return 2
    last = records[-1]["round"] if records else None
    print(
        f"{len(records)} combined records (last round {last}) in {args.run_dir / 'metrics.jsonl'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
