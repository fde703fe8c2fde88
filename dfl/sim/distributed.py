"""Multi-host start-up: the arguments of ``jax.distributed.initialize`` (``sim.distributed``).

JAX reads only the coordinator's address from the environment
(``JAX_COORDINATOR_ADDRESS``); without a cluster manager it detects (SLURM,
Open MPI) it also needs the number of processes and this process's id. dfl
passes all three explicitly: ``sim.coordinator_address``, ``sim.num_processes``
and ``sim.process_id``, each defaulting to ``$JAX_COORDINATOR_ADDRESS``,
``$JAX_NUM_PROCESSES`` and ``$JAX_PROCESS_ID``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dfl.config.schema import SimConfig

COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"
CLUSTER_ENVS = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
"""Variables of cluster managers JAX detects by itself (SLURM, Open MPI, MPICH)."""


def _int(value: int | str | None, key: str, env: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{key} (or ${env}) must be an integer, found {value!r}") from None


def initialize_args(sim: SimConfig, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments for ``jax.distributed.initialize`` of a ``sim.distributed`` run.

    Config values win over the environment. With none of the three set, the
    result is ``{}`` (JAX detects a cluster manager by itself).
    ``sim.coordinator_bind_address`` (no environment variable) is passed when set.

    Raises:
      ValueError: a non-integer count or id, an id outside ``0..num_processes-1``,
        or a coordinator without the count and id outside a cluster manager.
    """
    env = os.environ if environ is None else environ
    address = sim.coordinator_address or env.get(COORDINATOR_ENV) or None
    num = _int(
        sim.num_processes if sim.num_processes is not None else env.get(NUM_PROCESSES_ENV),
        "sim.num_processes",
        NUM_PROCESSES_ENV,
    )
    pid = _int(
        sim.process_id if sim.process_id is not None else env.get(PROCESS_ID_ENV),
        "sim.process_id",
        PROCESS_ID_ENV,
    )
    if num is not None and num < 1:
        raise ValueError(f"sim.num_processes must be >= 1, found {num}")
    if num is not None and pid is not None and not 0 <= pid < num:
        raise ValueError(f"sim.process_id={pid} is outside 0..{num - 1} (sim.num_processes={num})")
    cluster = any(k in env for k in CLUSTER_ENVS)
    if address is not None and not cluster and (num is None or pid is None):
        missing = [k for k, v in (("sim.num_processes", num), ("sim.process_id", pid)) if v is None]
        raise ValueError(
            f"sim.distributed=true with coordinator {address!r} also needs "
            + " and ".join(missing)
            + f" (or ${NUM_PROCESSES_ENV} / ${PROCESS_ID_ENV}) on every host"
        )
    args = {
        "coordinator_address": address,
        "num_processes": num,
        "process_id": pid,
        "coordinator_bind_address": sim.coordinator_bind_address or None,
    }
    return {k: v for k, v in args.items() if v is not None}


def initialize(sim: SimConfig) -> None:
    """Calls ``jax.distributed.initialize`` with :func:`initialize_args`."""
    import jax

    jax.distributed.initialize(**initialize_args(sim))
