"""Sweeps that survive failures and resume: the per-job guard and the Hydra callback.

A ``-m`` sweep runs each job through :func:`sweep_job` (a wrapper of the task
function, since only the task can decide not to run) and reports through
:class:`SweepCallback` (``hydra.callbacks.sweep`` in ``conf/config.yaml``):

* **Resume.** A job whose directory holds a finished run (:func:`finished_accuracy`)
  of the same resolved config is skipped and returns that run's final accuracy; a
  job whose directory holds a finished run of another config is refused
  (:func:`dfl.rundir.check_run_dir`); every other job runs. Re-running a sweep into
  the same ``hydra.sweep.dir`` therefore runs only what is missing.
* **Failures.** A job that raises (or exits through ``dfl: error:``) does not stop
  the sweep: under Hydra's basic sweeper (with any launcher: basic, joblib, submitit)
  it returns ``nan``, since that sweeper stops at the first failed job; a sweeper with
  its own failure policy (optuna's ``hydra.sweeper.max_failure_rate``) gets a
  :class:`JobFailedError` instead, which it counts as a failed trial.
* **Report.** Each job writes ``job_status.json`` into its directory; at the end of
  the sweep the callback reads those written since the sweep started, logs how many
  jobs ran, were skipped and failed (each failure with its directory and error), and
  exits with status 1 if any failed.
* **Threads.** Under the joblib launcher each job is pinned to its share of the
  CPU cores (``threads_per_job``; by default cores // ``n_jobs``) and, at one core
  per job, XLA's Eigen thread pool is disabled, so parallel jobs do not
  oversubscribe the machine.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from dfl.rundir import FINISHED_MARK, SAVED_CONFIG, same_config

log = logging.getLogger(__name__)

STATUS_FILE = "job_status.json"
"""What a sweep job did (``ran``, ``skipped`` or ``failed``), written into its directory."""

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
"""XLA_FLAGS for one thread per job (jax-ml/jax#743)."""


class JobFailedError(RuntimeError):
    """A sweep job failed; raised to sweepers that count failures themselves (optuna)."""


def finished_accuracy(workdir: str | Path, config: dict[Any, Any]) -> float | None:
    """The final accuracy of a finished run of ``config`` in ``workdir``, else ``None``.

    A run is finished when its directory holds ``config_resolved.yaml`` equal to
    ``config`` and a ``metrics.jsonl`` whose last record is round ``config["rounds"]``
    (the last round is always evaluated; an interrupted run's last record is earlier).

    Args:
      workdir: the job's output directory.
      config: the job's resolved config as plain containers.
    """
    workdir = Path(workdir)
    saved, metrics = workdir / SAVED_CONFIG, workdir / FINISHED_MARK
    if not (saved.is_file() and metrics.is_file()):
        return None
    if not same_config(
        yaml.safe_load(saved.read_text()) or {}, yaml.safe_load(yaml.safe_dump(config))
    ):
        return None
    lines = [line for line in metrics.read_text().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        last = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None  # cut off mid-line: interrupted
    if last.get("round") != config.get("rounds"):
        return None
    accuracy = last.get("test_accuracy_mean")
    return float("nan") if accuracy is None else float(accuracy)


def write_status(workdir: str | Path, status: str, **fields: Any) -> None:
    """Writes ``job_status.json`` into ``workdir``: ``status``, the time, the CPU cores
    the job could use and its ``XLA_FLAGS``, and ``fields``."""
    record = {
        "status": status,
        "time": time.time(),
        "cpus": len(os.sched_getaffinity(0)),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        **fields,
    }
    Path(workdir, STATUS_FILE).write_text(json.dumps(record, indent=2) + "\n")


def _reason(error: BaseException) -> BaseException:
    # dfl.cli.user_errors prints the error and raises SystemExit(2) from None: the
    # error it handled is still the exit's __context__.
    if isinstance(error, SystemExit) and error.__context__ is not None:
        return error.__context__
    return error


def sweep_job(task: Callable[[DictConfig], float]) -> Callable[[DictConfig], float]:
    """Wraps a Hydra task function returning the final accuracy for resumable sweeps.

    Outside a ``-m`` sweep the task runs unchanged. In a sweep: a finished run of the
    same config in the job's directory is skipped (its accuracy is returned); a
    failure is recorded in ``job_status.json`` and logged, then the job returns
    ``nan`` (or raises :class:`JobFailedError` where the sweeper has ``max_failure_rate``).
    ``KeyboardInterrupt`` still stops the sweep.
    """

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> float:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return task(cfg)
        workdir = Path(hydra_cfg.runtime.output_dir)
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        assert isinstance(config, dict)
        accuracy = finished_accuracy(workdir, config)
        if accuracy is not None:
            log.info("skipped: %s already holds this finished run", workdir)
            write_status(workdir, "skipped", final_accuracy=accuracy)
            return accuracy
        (workdir / STATUS_FILE).unlink(missing_ok=True)
        try:
            accuracy = task(cfg)
        except KeyboardInterrupt:
            raise
        except (Exception, SystemExit) as e:
            if isinstance(e, SystemExit) and e.code in (0, None):
                raise
            reason = _reason(e)
            message = f"{type(reason).__name__}: {reason}"
            log.error("job failed in %s: %s", workdir, message)
            details = "".join(traceback.format_exception(reason))
            write_status(workdir, "failed", error=message, traceback=details)
            if "max_failure_rate" in hydra_cfg.sweeper:
                raise JobFailedError(message) from reason
            return float("nan")
        write_status(workdir, "ran", final_accuracy=accuracy)
        return accuracy

    return wrapped


def sweep_statuses(sweep_dir: str | Path, since: float = 0.0) -> dict[Path, dict[str, Any]]:
    """Each job directory under ``sweep_dir`` with its ``job_status.json`` from ``since`` on."""
    found = {}
    for path in sorted(Path(sweep_dir).rglob(STATUS_FILE)):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("time", 0.0) >= since:
            found[path.parent] = record
    return found


def summarize(statuses: dict[Path, dict[str, Any]]) -> list[str]:
    """Report lines: the counts, then one ``failed: DIR: ERROR`` line per failed job."""
    counts = {s: sum(r["status"] == s for r in statuses.values()) for s in ("ran", "skipped")}
    failed = {d: r for d, r in statuses.items() if r["status"] == "failed"}
    lines = [
        f"sweep: {len(statuses)} jobs: {counts['ran']} ran, {counts['skipped']} skipped "
        f"(finished before, same config), {len(failed)} failed"
    ]
    lines += [
        f"failed: {d}: {' '.join(str(r.get('error', '?')).split())}" for d, r in failed.items()
    ]
    return lines


def job_threads(n_jobs: int, cores: int) -> int:
    """Cores for each of ``n_jobs`` parallel jobs (joblib's ``n_jobs``: -1 = all cores)."""
    if n_jobs == 0:
        raise ValueError(f"hydra.launcher.n_jobs must not be 0 (got {n_jobs}); -1 uses every core")
    jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, cores // jobs)


class SweepCallback(Callback):
    """Hydra callback: per-job CPU share under joblib, and the failure report at the end.

    Args:
      threads_per_job: cores each joblib job may use; ``None`` (the default) gives each
        of ``hydra.launcher.n_jobs`` jobs an equal share.
    """

    def __init__(self, threads_per_job: int | None = None) -> None:
        self.threads_per_job = threads_per_job
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = config.hydra.launcher
        if "JoblibLauncher" not in str(launcher.get("_target_", "")):
            return
        cores = sorted(os.sched_getaffinity(0))
        k = self.threads_per_job or job_threads(int(launcher.n_jobs), len(cores))
        if k >= len(cores):
            return
        slot = int(config.hydra.job.num) % max(1, len(cores) // k)
        os.sched_setaffinity(0, cores[slot * k : (slot + 1) * k])
        flags = os.environ.get("XLA_FLAGS", "")
        if k == 1 and "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_XLA}".strip()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        statuses = sweep_statuses(sweep_dir, since=self.started)
        if not statuses:
            return  # an entry point without the sweep_job guard (dfl.launch, dfl.node)
        lines = summarize(statuses)
        for line in lines:
            (log.error if line.startswith("failed:") else log.info)(line)
        if len(lines) > 1:
            print(
                f"dfl: error: {len(lines) - 1} of {len(statuses)} sweep jobs failed (listed "
                f"above); re-run with hydra.sweep.dir={sweep_dir} to run only the missing ones",
                file=sys.stderr,
            )
            raise SystemExit(1)
