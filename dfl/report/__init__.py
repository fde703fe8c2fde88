"""``python -m dfl.report PATH [PATH...]``: tables and plots of runs, mean ± std over seeds.

Reads run directories (``metrics.jsonl`` + ``config_resolved.yaml``, and
``.hydra/overrides.yaml`` for sweep jobs) in or under each PATH, groups them by
the keys that vary except ``seed`` (``--by`` to choose), and writes into
``--out`` (default ``./report``, never a run directory):

* ``results.md`` / ``results.csv`` — per group: seeds, final and best accuracy,
  rounds, MB per node and wall seconds to ``--target`` accuracy, final consensus
  distance, ε where private; with a network model (records with ``sim_time``)
  simulated seconds to the target, final ``sim_time`` and total
  ``messages_missing`` / ``retransmissions``; mean ± sample std (ddof = 1) over seeds;
* ``accuracy_vs_{round,bytes,wall_time,sim_time,epsilon}.png`` (those recorded,
  or ``--x``) and ``consensus_vs_round.png`` (log y), shaded ± std over seeds.
"""

from dfl.report.cli import Report, main, report
from dfl.report.group import Group, default_by, group_runs, key_value, label
from dfl.report.load import ReportError, Run, flatten, load_runs
from dfl.report.plots import X_AXES, plot, write_plots
from dfl.report.summary import GroupSummary, RunSummary, Stat, summarize, summarize_run
from dfl.report.table import csv_table, markdown_table

__all__ = [
    "X_AXES",
    "Group",
    "GroupSummary",
    "Report",
    "ReportError",
    "Run",
    "RunSummary",
    "Stat",
    "csv_table",
    "default_by",
    "flatten",
    "group_runs",
    "key_value",
    "label",
    "load_runs",
    "main",
    "markdown_table",
    "plot",
    "report",
    "summarize",
    "summarize_run",
    "write_plots",
]
