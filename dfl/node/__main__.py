"""``python -m dfl.node +experiment=NAME node.id=I transport=tcp [overrides]``: run one node.

The node rebuilds the data partition, model, topology and its row of W from
the config and seed exactly as the simulation does, trains on its own data,
and exchanges messages with its neighbours over the transport. It writes into
``node.workdir`` (default: its Hydra output directory) ``metrics.jsonl``,
``params/round_<r>.npz`` at evaluation rounds, ``progress.json`` and, with
``checkpoint.every=K``, orbax checkpoints; ``+resume=PATH`` continues from one
(a restarted node rejoins its neighbours at their current round). Over tcp it
reads only its own key bundle (``transport.bundle=PATH``, or
``transport.keys_dir/node-<i>.json``; ``python -m dfl.keys init``) and talks
mutual TLS 1.3 with its peers (``transport.insecure=true``: plain TCP, warned).
``python -m dfl.launch`` starts every node of a run and combines their metrics.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dfl.cli import instantiate_optimizer, to_config, user_errors
from dfl.config.store import conf_dir, register
from dfl.node.parent import die_with_launcher
from dfl.resume import resume_hint

register()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> None:
    """Runs one node to the end of the run."""
    from dfl.node.standalone import run_node

    config = to_config(cfg)
    workdir = Path(config.node.workdir or HydraConfig.get().runtime.output_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    hint = resume_hint("dfl.node", workdir, config.checkpoint.every, same_overrides=True)
    user_errors(
        lambda: run_node(config, instantiate_optimizer(cfg), workdir),
        interrupted=f"node {config.node.id} stopped; {hint}",
    )


JOB_NAME = "dfl.node"
"""Hydra's job name (its ``--help`` title and ``<job name>.log``), instead of ``__main__``."""


def with_job_name(argv: list[str]) -> list[str]:
    """``argv`` naming the Hydra job :data:`JOB_NAME` unless it names one already."""
    if any(a.startswith("hydra.job.name=") for a in argv[1:]):
        return argv
    return [*argv, f"hydra.job.name={JOB_NAME}"]


if __name__ == "__main__":
    die_with_launcher()  # started by python -m dfl.launch: end with it, even on SIGKILL
    sys.argv = with_job_name(sys.argv)
    main()
