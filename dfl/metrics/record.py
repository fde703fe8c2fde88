"""The metrics record: one builder for the simulation, a node and the launcher's combiner.

Every record starts with the same keys in the same order (``round``,
``wall_time``, ``compile_time``, ``train_loss``, the evaluation keys,
``bytes_sent_per_node``), followed by what the runner adds (privacy, message
counters, ...). The evaluation keys are aggregates over nodes; a record whose
writer did not compute one of them (a deployed node sees only its own model)
holds ``None`` there instead of a stand-in value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat, SupportsInt

EVALUATION_KEYS = (
    "test_accuracy_mean",
    "test_accuracy_min",
    "test_accuracy_max",
    "test_accuracy_avg_model",
    "consensus_distance",
)
"""Evaluation metrics over all nodes that every record has (``None`` where not computed)."""


def is_eval_round(round_: int, rounds: int, eval_every: int) -> bool:
    """Whether 1-based ``round_`` is evaluated: every ``eval_every`` rounds and the last.

    Raises:
      ValueError: if ``eval_every`` is not positive.
    """
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, found {eval_every}")
    return round_ % eval_every == 0 or round_ == rounds


def metrics_record(
    round_: int,
    *,
    wall_time: SupportsFloat,
    compile_time: SupportsFloat,
    train_loss: SupportsFloat,
    evaluation: Mapping[str, SupportsFloat | None],
    bytes_sent_per_node: SupportsFloat,
    **extra: Any,
) -> dict[str, Any]:
    """One metrics record (see the README's metrics table).

    Args:
      round_: rounds completed (1-based).
      wall_time: seconds since the first round started.
      compile_time: seconds spent compiling (included in ``wall_time``).
      train_loss: the mean local-step loss of the round.
      evaluation: scalar evaluation metrics (``make_evaluate``'s keys but
        ``accuracy``, local-test keys, a node's own ``test_accuracy``); the
        :data:`EVALUATION_KEYS` it lacks are ``None``, the values are floats.
      bytes_sent_per_node: cumulative bytes sent per node, headers included.
      **extra: further keys, in order after ``bytes_sent_per_node``.

    Returns:
      The record: a flat dict of JSON-serialisable values.
    """
    scalars = {k: None if v is None else float(v) for k, v in evaluation.items()}
    return {
        "round": int(round_),
        "wall_time": float(wall_time),
        "compile_time": float(compile_time),
        "train_loss": float(train_loss),
        **{k: scalars.get(k) for k in EVALUATION_KEYS},
        **{k: v for k, v in scalars.items() if k not in EVALUATION_KEYS},
        "bytes_sent_per_node": float(bytes_sent_per_node),
        **extra,
    }


def privacy_record(
    epsilons: Sequence[SupportsFloat], delta: SupportsFloat, dropped: SupportsInt
) -> dict[str, Any]:
    """The DP-SGD keys of a record over ``epsilons`` (one ε per node, in node order).

    Returns:
      ``epsilon`` (the worst node's), ``epsilon_per_node``, ``delta`` and
      ``dp_dropped_examples`` (Poisson examples cut by the batch cap, all nodes).
    """
    eps = [float(e) for e in epsilons]
    if not eps:
        raise ValueError("privacy_record needs at least one node's epsilon, found none")
    return {
        "epsilon": max(eps),
        "epsilon_per_node": eps,
        "delta": float(delta),
        "dp_dropped_examples": int(dropped),
    }
