"""Structured-config schema of the ``privacy`` group."""

from __future__ import annotations

import dataclasses

from dfl.config.choices import Accountant, Sampling


@dataclasses.dataclass
class PrivacyConfig:
    """Differential privacy at every node (``conf/privacy/*.yaml``).

    DP-SGD (per-example clipping to ``l2_clip``, Gaussian noise of standard
    deviation ``noise_multiplier · l2_clip`` on the summed gradient) at every
    local step, on batches sampled as ``sampling`` says; the accountant turns
    rounds × local steps into an (ε, δ) guarantee per node (example-level, for
    node i's own data). See :mod:`dfl.privacy`.

    Attributes:
      enabled: run DP-SGD and account for it.
      noise_multiplier: σ, the noise standard deviation in units of ``l2_clip``
        (used when ``target_epsilon`` is unset).
      l2_clip: C, the per-example gradient norm bound.
      delta: δ of the reported (ε, δ); should be well below 1/n_i.
      target_epsilon: calibrate σ so that the worst node (largest sampling rate)
        reaches this ε after all rounds; ``None`` or 0 uses ``noise_multiplier``.
      accountant: ``rdp`` (Rényi DP, fast, slightly loose) or ``pld`` (privacy
        loss distributions, tight, slower; Poisson sampling only).
      sampling: ``poisson`` (each example of node i joins a batch independently
        with rate q_i = batch_size / n_i; add/remove-one adjacency) or ``fixed``
        (batch_size examples without replacement; replace-one adjacency; RDP only).
      truncation_tail: Poisson batches are padded to a fixed M, the
        (1 − truncation_tail) quantile of Binomial(n_i, q_i) over nodes; a step
        that samples more drops the excess (counted, and voiding that step's
        guarantee), so keep this tiny.
      message_noise: standard deviation of Gaussian noise added by each node to
        its outgoing gossip message (local DP on messages, Muffliato-style);
        0 = off. Not included in ε.
    """

    enabled: bool = False
    noise_multiplier: float = 1.0
    l2_clip: float = 1.0
    delta: float = 1e-5
    target_epsilon: float | None = None
    accountant: Accountant = Accountant.rdp
    sampling: Sampling = Sampling.poisson
    truncation_tail: float = 1e-9
    message_noise: float = 0.0
