"""``python -m dfl.train +experiment=NAME [overrides]``: run a vectorized simulation.

Every run writes into its Hydra output directory: ``.hydra/`` (the composed
config and overrides), ``config_resolved.yaml``, ``metadata.json``,
``metrics.jsonl`` and ``metrics.csv``. Sweep with ``-m``, e.g.
``python -m dfl.train -m topology=ring,complete seed=0,1``; a sweep skips jobs
whose directory holds the same finished run and survives failed jobs
(:mod:`dfl.sweep`).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dfl.cli import instantiate_optimizer, to_config, user_errors
from dfl.config.store import conf_dir, register
from dfl.rundir import check_run_dir
from dfl.sweep import sweep_job

register()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
@sweep_job
def main(cfg: DictConfig) -> float:
    """Runs the simulation; returns the final mean test accuracy (for sweepers)."""
    if cfg.sim.distributed:
        import jax

        jax.distributed.initialize()
    from dfl.sim.runner import print_summary, simulate

    workdir = Path(HydraConfig.get().runtime.output_dir)
    user_errors(
        lambda: check_run_dir(workdir, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    )
    (workdir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    def run():
        return simulate(to_config(cfg), instantiate_optimizer(cfg), workdir=workdir)

    result = user_errors(run)
    print_summary(result)
    print(f"outputs: {workdir}")
    return result.records[-1]["test_accuracy_mean"]


if __name__ == "__main__":
    main()
