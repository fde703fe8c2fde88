"""Differential privacy at every node: DP-SGD mechanisms, sampling and accounting.

* mechanism: per-example clipping (:func:`dp_grad_fn`), Gaussian noise as an optax
  transform (:func:`add_dp_noise`), both in :func:`private_grad_fn`; local DP on
  gossip messages (:func:`add_message_noise`);
* sampling: Poisson (:func:`poisson_node_batches`, :func:`poisson_batches`) and
  fixed-size (:func:`fixed_node_batches`) padded, masked batches;
* accounting with ``dp_accounting``: :func:`dp_sgd_epsilon`,
  :func:`epsilon_per_node`, :func:`calibrate_noise`;
* the runner's entry point: :func:`plan_privacy` (its :class:`PrivacyPlan`).
"""

from __future__ import annotations

from dfl.privacy.accounting import (
    calibrate_noise,
    check_combination,
    dp_sgd_epsilon,
    dp_sgd_event,
    dp_sgd_rdp,
    epsilon_per_node,
    make_accountant,
)
from dfl.privacy.clipping import clip_factors, clipped_sum, dp_grad_fn, per_example_grads
from dfl.privacy.message import with_message_noise
from dfl.privacy.noise import DPNoiseState, add_dp_noise, add_message_noise, gaussian_like
from dfl.privacy.private import PrivacyPlan, plan_privacy, private_grad_fn
from dfl.privacy.sampling import (
    MaskedBatches,
    fixed_batches,
    fixed_node_batches,
    poisson_batches,
    poisson_max_batch,
    poisson_node_batches,
    sample_rates,
)

__all__ = [
    "DPNoiseState",
    "MaskedBatches",
    "PrivacyPlan",
    "add_dp_noise",
    "add_message_noise",
    "calibrate_noise",
    "check_combination",
    "clip_factors",
    "clipped_sum",
    "dp_grad_fn",
    "dp_sgd_epsilon",
    "dp_sgd_event",
    "dp_sgd_rdp",
    "epsilon_per_node",
    "fixed_batches",
    "fixed_node_batches",
    "gaussian_like",
    "make_accountant",
    "per_example_grads",
    "plan_privacy",
    "poisson_batches",
    "poisson_max_batch",
    "poisson_node_batches",
    "private_grad_fn",
    "sample_rates",
    "with_message_noise",
]
