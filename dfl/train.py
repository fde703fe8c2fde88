"""``python -m dfl.train +experiment=NAME [overrides]``: run a vectorized simulation.

Every run writes into its Hydra output directory: ``.hydra/`` (the composed
config and overrides), ``config_resolved.yaml``, ``metadata.json``,
``metrics.jsonl`` and ``metrics.csv``. Sweep with ``-m``, e.g.
``python -m dfl.train -m topology=ring,complete seed=0,1``; a sweep skips jobs
whose directory holds the same finished run and survives failed jobs
(:mod:`dfl.sweep`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dfl.cli import instantiate_optimizer, to_config, user_errors
from dfl.config.store import conf_dir, register
from dfl.resume import record_resume, resume_config, resume_hint
from dfl.rundir import check_run_dir
from dfl.sweep import sweep_job

register()


def resolved_yaml(cfg: DictConfig, *, noise_multiplier: float | None = None) -> str:
    """``config_resolved.yaml``: ``cfg`` resolved; with ``noise_multiplier``, the calibrated σ
    (``privacy.target_epsilon``) in place of the configured one."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    if noise_multiplier is not None:
        resolved["privacy"]["noise_multiplier"] = noise_multiplier
    return OmegaConf.to_yaml(resolved)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
@sweep_job
def main(cfg: DictConfig) -> float:
    """Runs the simulation; returns the final mean test accuracy (for sweepers).

    With ``+resume=RUN_DIR`` the run continues with RUN_DIR's config, in RUN_DIR
    (:mod:`dfl.resume`).
    """
    hydra_dir = Path(HydraConfig.get().runtime.output_dir)
    resumed = user_errors(lambda: resume_config(cfg, list(HydraConfig.get().overrides.task)))
    cfg = resumed.cfg
    if cfg.sim.distributed:
        from dfl.sim.distributed import initialize

        user_errors(lambda: initialize(to_config(cfg).sim))
    from dfl.sim.runner import print_summary, simulate

    workdir = resumed.run_dir or hydra_dir
    if resumed.run_dir is None:  # a resumed run continues its own directory
        plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        user_errors(lambda: check_run_dir(workdir, plain))
    (workdir / "config_resolved.yaml").write_text(resolved_yaml(cfg))

    def run():
        return simulate(to_config(cfg), instantiate_optimizer(cfg), workdir=workdir)

    hint = resume_hint("dfl.train", workdir, cfg.checkpoint.every)
    result = user_errors(run, interrupted=f"stopped; {hint}")
    record_resume(resumed, hydra_dir)
    if result.experiment.privacy is not None and cfg.privacy.target_epsilon:
        sigma = result.experiment.privacy.noise_multiplier
        (workdir / "config_resolved.yaml").write_text(resolved_yaml(cfg, noise_multiplier=sigma))
    if resumed.run_dir is not None:  # the whole run, not only the rounds run now
        from dfl.metrics.writer import read_jsonl

        result = dataclasses.replace(result, records=read_jsonl(workdir / "metrics.jsonl"))
    print_summary(result)
    print(f"outputs: {workdir}")
    return result.records[-1]["test_accuracy_mean"]


if __name__ == "__main__":
    main()
