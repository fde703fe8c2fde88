"""DP-SGD for the runner: the private GradFn, and a run's resolved privacy plan.

:func:`private_grad_fn` is the whole per-step mechanism at one node: per-example
gradients (vmap over the batch), clipping to C, the masked sum, then
:func:`~dfl.privacy.noise.add_dp_noise` seeded with the step's key and division
by the expected batch size. The key a :data:`~dfl.algorithms.local.GradFn`
receives is ``fold_in(fold_in(round_key, node_id), local_step)`` in both the
simulation and a deployed node, so noise is independent across nodes and steps
and identical between the two modes. (An optax ``init`` has no key, so a noise
transform chained into the shared optimizer would give every ``vmap``-ed node the
same noise.)

:func:`plan_privacy` resolves a :class:`~dfl.config.privacy_schema.PrivacyConfig`
for one run (σ, q_i, M, sampler) and reports ε per node after any round.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from dfl.algorithms.base import LossFn, Params
from dfl.algorithms.local import GradFn
from dfl.privacy.accounting import calibrate_noise, check_combination, epsilon_per_node
from dfl.privacy.clipping import dp_grad_fn
from dfl.privacy.noise import add_dp_noise
from dfl.privacy.sampling import (
    MaskedBatches,
    fixed_batches,
    fixed_node_batches,
    poisson_batches,
    poisson_max_batch,
    poisson_node_batches,
    sample_rates,
)

if TYPE_CHECKING:
    from dfl.config.privacy_schema import PrivacyConfig

NOISE_TAG = 0x6470  # folded into the step key: DP noise never shares a key with anything else


def private_grad_fn(
    loss_fn: LossFn, *, l2_clip: float, noise_multiplier: float, expected_batch_size: float
) -> GradFn:
    """The DP-SGD gradient: ``(Σ_e m_e clip_C(g_e) + N(0, σ²C²)) / B``.

    Args:
      loss_fn: ``loss_fn(params, (x, y)) -> scalar`` mean loss over a batch.
      l2_clip: C.
      noise_multiplier: σ.
      expected_batch_size: B (q_i·n_i; the configured batch size).

    Returns:
      ``grad_fn(params, batch, key) -> (loss, noisy mean gradient)`` for batches
      ``(x, y, mask)`` (or ``(x, y)``); ``key`` must be the node's step key.
    """
    clipped = dp_grad_fn(loss_fn, l2_clip=l2_clip)

    def grad_fn(params: Params, batch: Any, key: jax.Array) -> tuple[jax.Array, Params]:
        loss, summed = clipped(params, batch, key)
        noise = add_dp_noise(
            noise_multiplier, l2_clip, expected_batch_size, jax.random.fold_in(key, NOISE_TAG)
        )
        noisy, _ = noise.update(summed, noise.init(summed))
        return loss, noisy

    return grad_fn


@dataclasses.dataclass(frozen=True)
class PrivacyPlan:
    """A run's privacy, resolved: σ, per-node rates, the sampler and the accountant.

    Attributes:
      config: the privacy config.
      noise_multiplier: σ (``config.noise_multiplier`` or calibrated to
        ``config.target_epsilon`` for the worst node).
      counts: n_i per node.
      sample_rates: q_i = min(1, B/n_i).
      batch_size: B, the expected batch size.
      local_steps: K, DP-SGD steps per round.
      max_batch: M, the padded batch (Poisson) or B (fixed).
    """

    config: Any
    noise_multiplier: float
    counts: tuple[int, ...]
    sample_rates: tuple[float, ...]
    batch_size: int
    local_steps: int
    max_batch: int

    def sample(self, key: jax.Array, node_data: Any) -> MaskedBatches:
        """All nodes' batches for one round (node i from ``fold_in(key, i)``)."""
        if self.config.sampling == "poisson":
            return poisson_batches(
                key,
                node_data,
                rates=jnp.asarray(self.sample_rates, jnp.float32),
                max_batch=self.max_batch,
                local_steps=self.local_steps,
            )
        return fixed_batches(
            key, node_data, batch_size=self.batch_size, local_steps=self.local_steps
        )

    def sample_node(
        self, key: jax.Array, node: int, x_i: jax.Array, y_i: jax.Array, count_i: Any
    ) -> MaskedBatches:
        """Node ``node``'s batches (``key`` already ``fold_in(round_key, node)``)."""
        if self.config.sampling == "poisson":
            return poisson_node_batches(
                key,
                x_i,
                y_i,
                count_i,
                rate=jnp.float32(self.sample_rates[node]),
                max_batch=self.max_batch,
                local_steps=self.local_steps,
            )
        return fixed_node_batches(
            key, x_i, y_i, count_i, batch_size=self.batch_size, local_steps=self.local_steps
        )

    def grad_fn(self, loss_fn: LossFn) -> GradFn:
        """The DP-SGD :data:`~dfl.algorithms.local.GradFn` of this plan."""
        return private_grad_fn(
            loss_fn,
            l2_clip=self.config.l2_clip,
            noise_multiplier=self.noise_multiplier,
            expected_batch_size=self.batch_size,
        )

    def epsilons(self, rounds: int) -> list[float]:
        """ε_i of every node after ``rounds`` rounds (at ``config.delta``)."""
        return epsilon_per_node(
            self.noise_multiplier,
            self.sample_rates,
            rounds * self.local_steps,
            self.config.delta,
            self.config.accountant,
            sampling=self.config.sampling,
            dataset_sizes=self.counts,
        )

    def epsilon(self, rounds: int) -> float:
        """The worst node's ε after ``rounds`` rounds."""
        return max(self.epsilons(rounds))


def plan_privacy(
    cfg: PrivacyConfig,
    *,
    counts: Any,
    batch_size: int,
    rounds: int,
    local_steps: int,
) -> PrivacyPlan:
    """Resolves ``cfg`` for a run over nodes with ``counts`` examples.

    Args:
      cfg: the privacy config (must be enabled).
      counts: n_i per node (``federated.train.counts``).
      batch_size: B, the configured batch size (expected under Poisson).
      rounds: the run's rounds (for ``target_epsilon`` calibration).
      local_steps: K.

    Returns:
      The :class:`PrivacyPlan`.

    Raises:
      ValueError: naming a bad value or an unsupported sampling/accountant pair.
    """
    if not cfg.enabled:
        raise ValueError("plan_privacy needs privacy.enabled=true")
    check_combination(cfg.accountant, cfg.sampling)
    bad = [
        f"{name}={value!r} (expected {want})"
        for name, value, ok, want in [
            ("privacy.l2_clip", cfg.l2_clip, cfg.l2_clip > 0, "> 0"),
            ("privacy.delta", cfg.delta, 0 < cfg.delta < 1, "in (0, 1)"),
            ("privacy.noise_multiplier", cfg.noise_multiplier, cfg.noise_multiplier >= 0, ">= 0"),
            ("privacy.message_noise", cfg.message_noise, cfg.message_noise >= 0, ">= 0"),
        ]
        if not ok
    ]
    if bad:
        raise ValueError("invalid privacy config: " + "; ".join(bad))
    counts = tuple(int(c) for c in np.asarray(counts))
    rates = tuple(float(q) for q in sample_rates(counts, batch_size))
    steps = rounds * local_steps
    sigma = cfg.noise_multiplier
    if cfg.target_epsilon:
        worst = int(np.argmax(rates))
        sigma = calibrate_noise(
            cfg.target_epsilon,
            rates[worst],
            steps,
            cfg.delta,
            cfg.accountant,
            sampling=cfg.sampling,
            dataset_size=counts[worst],
        )
    if cfg.sampling == "poisson":
        max_batch = poisson_max_batch(counts, rates, tail=cfg.truncation_tail)
    else:
        max_batch = batch_size
    return PrivacyPlan(cfg, float(sigma), counts, rates, batch_size, local_steps, max_batch)
