"""The node runner: one deployed node per process (or per thread over loopback).

* :class:`NodeRunner` runs one node's rounds over a :class:`~dfl.transport.Transport`.
* :func:`run_loopback` runs a whole deployment in one process (tests, debugging).
* :class:`NodeExchange` is a node's exchange (send, receive, plan, mix);
  :func:`plan_mix` applies the algorithm's missing-message rule.
* ``python -m dfl.node +experiment=NAME node.id=I transport=tcp`` runs one node;
  ``python -m dfl.launch`` starts all of them.
"""

from dfl.node.collect import combine_files, combine_round, make_scorer, node_dir
from dfl.node.deploy import DeployResult, run_in_process, run_loopback
from dfl.node.exchange import (
    MixPlan,
    NodeExchange,
    in_neighbours,
    mix,
    out_neighbours,
    plan_mix,
)
from dfl.node.program import NodeProgram, build_program
from dfl.node.runner import (
    Counters,
    NodeCrashError,
    NodeResult,
    NodeRunner,
    load_params,
    params_path,
    save_params,
)
from dfl.node.setup import run_id

__all__ = [
    "Counters",
    "DeployResult",
    "MixPlan",
    "NodeCrashError",
    "NodeExchange",
    "NodeProgram",
    "NodeResult",
    "NodeRunner",
    "build_program",
    "combine_files",
    "combine_round",
    "in_neighbours",
    "load_params",
    "make_scorer",
    "mix",
    "node_dir",
    "out_neighbours",
    "params_path",
    "plan_mix",
    "run_id",
    "run_in_process",
    "run_loopback",
    "save_params",
]
