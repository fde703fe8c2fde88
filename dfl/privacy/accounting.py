"""Privacy accounting of DP-SGD per node with ``dp_accounting`` (RDP and PLD).

Node i runs T = rounds × local_steps steps of the sampled Gaussian mechanism on
its own n_i examples, with noise multiplier σ and sampling rate q_i. Its
example-level guarantee (ε_i, δ) follows from the composed event

* Poisson sampling (add/remove-one adjacency): ``SelfComposedDpEvent(
  PoissonSampledDpEvent(q_i, GaussianDpEvent(σ)), T)``, accounted by RDP (Mironov
  2017; Zhu & Wang 2019) or PLD (Koskela et al. 2020; Doroshenko et al. 2022);
* fixed-size sampling without replacement (replace-one adjacency): ``SelfComposed(
  SampledWithoutReplacementDpEvent(n_i, B, GaussianDpEvent(σ/2)), T)``, RDP only
  (Wang, Balle, Kasiviswanathan 2019). Replacing one example moves the clipped
  sum by up to 2C, so the noise is σ/2 in units of the sensitivity.

Gossip is post-processing of each node's noisy updates, so ε_i is node i's
guarantee against everything the other nodes see. ε differs per node when the
partition gives the nodes different n_i (q_i = B/n_i).

References:
  Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
  Mironov, "Rényi Differential Privacy", CSF 2017.
  Balle, Wang, "Improving the Gaussian Mechanism for Differential Privacy:
  Analytical Calibration and Optimal Denoising", ICML 2018.
  Doroshenko, Ghazi, Kamath, Kumar, Manurangsi, "Connect the Dots: Tighter Discrete
  Approximations of Privacy Loss Distributions", PETS 2022.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Sequence
from typing import Any

import dp_accounting
import numpy as np
from dp_accounting import pld, rdp


class _UnconvergedOrders(logging.Filter):
    """Drops dp_accounting's "_compute_log_a_frac failed to converge" warnings.

    The RDP accountant logs one per fractional order it cannot evaluate (104
    lines for one ``dp_sgd_eps`` calibration) and excludes that order; ε from
    the remaining orders is still a valid upper bound, so nothing is lost.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("_compute_log_a_frac failed to converge")


if not any(isinstance(f, _UnconvergedOrders) for f in logging.getLogger("absl").filters):
    logging.getLogger("absl").addFilter(_UnconvergedOrders())

ACCOUNTANTS = ("rdp", "pld")
"""Supported accountants: Rényi DP and privacy loss distributions."""
SAMPLINGS = ("poisson", "fixed")
"""Supported batch samplings (see :mod:`dfl.privacy.sampling`)."""


def check_combination(accountant: str, sampling: str) -> None:
    """Raises ``ValueError`` for an accountant/sampling pair that cannot be accounted."""
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"privacy.accountant={accountant!r}; expected one of {ACCOUNTANTS}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"privacy.sampling={sampling!r}; expected one of {SAMPLINGS}")
    if sampling == "fixed" and accountant == "pld":
        raise ValueError(
            "privacy.sampling='fixed' with privacy.accountant='pld' is not supported: "
            "dp_accounting's PLD accountant has no fixed-size (without replacement) "
            "sampled Gaussian; use accountant='rdp' (replace-one adjacency) or "
            "sampling='poisson'"
        )


def dp_sgd_event(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    *,
    sampling: str = "poisson",
    dataset_size: int | None = None,
) -> dp_accounting.DpEvent:
    """The ``dp_accounting`` event of ``steps`` DP-SGD steps at one node.

    Args:
      noise_multiplier: σ (noise std / clip norm).
      sample_rate: q (Poisson rate; for fixed sampling B/n).
      steps: T.
      sampling: ``poisson`` or ``fixed``.
      dataset_size: n, required for ``fixed`` (batch B = round(q·n)).

    Returns:
      The composed event.
    """
    if sampling == "poisson":
        inner = dp_accounting.PoissonSampledDpEvent(
            sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier)
        )
    elif sampling == "fixed":
        if dataset_size is None:
            raise ValueError("sampling='fixed' needs the node's dataset_size")
        batch = round(sample_rate * dataset_size)
        gaussian = dp_accounting.GaussianDpEvent(noise_multiplier / 2)
        inner = (
            gaussian
            if batch >= dataset_size
            else dp_accounting.SampledWithoutReplacementDpEvent(dataset_size, batch, gaussian)
        )
    else:
        raise ValueError(f"sampling={sampling!r}; expected one of {SAMPLINGS}")
    return dp_accounting.SelfComposedDpEvent(inner, int(steps))


def make_accountant(accountant: str, sampling: str = "poisson", *, pld_interval: float = 1e-4):
    """A fresh ``dp_accounting`` accountant for the pair (refuses unsupported pairs).

    ``pld_interval`` is the PLD's privacy-loss discretisation (coarser is faster
    and pessimistic: it can only overstate ε).
    """
    check_combination(accountant, sampling)
    if accountant == "pld":
        return pld.PLDAccountant(value_discretization_interval=pld_interval)
    relation = (
        dp_accounting.NeighboringRelation.REPLACE_ONE
        if sampling == "fixed"
        else dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    )
    return rdp.RdpAccountant(neighboring_relation=relation)


@functools.lru_cache(maxsize=1024)
def _rdp_per_step(
    noise_multiplier: float,
    sample_rate: float,
    sampling: str,
    dataset_size: int | None,
    orders: tuple[float, ...] | None,
) -> tuple[np.ndarray, np.ndarray]:
    check_combination("rdp", sampling)
    relation = (
        dp_accounting.NeighboringRelation.REPLACE_ONE
        if sampling == "fixed"
        else dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    )
    if orders is None:
        accountant = rdp.RdpAccountant(neighboring_relation=relation)
    else:
        accountant = rdp.RdpAccountant(list(orders), neighboring_relation=relation)
    accountant.compose(
        dp_sgd_event(noise_multiplier, sample_rate, 1, sampling=sampling, dataset_size=dataset_size)
    )
    return np.asarray(accountant.orders), np.asarray(accountant.rdp)


def dp_sgd_rdp(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    *,
    sampling: str = "poisson",
    dataset_size: int | None = None,
    orders: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(orders, rdp)``: the Rényi DP curve ε(α) of ``steps`` DP-SGD steps.

    RDP composes additively, so this is ``steps`` times the one-step curve
    (cached per σ, q): cheap to re-evaluate every round.

    Args:
      noise_multiplier: σ.
      sample_rate: q.
      steps: T.
      sampling: ``poisson`` or ``fixed``.
      dataset_size: n, for ``fixed``.
      orders: the Rényi orders α (default: ``dp_accounting``'s).

    Returns:
      The orders and RDP ε(α) at each.
    """
    key = None if orders is None else tuple(float(a) for a in orders)
    orders_, per_step = _rdp_per_step(
        float(noise_multiplier), float(sample_rate), sampling, dataset_size, key
    )
    return orders_, steps * per_step


@functools.lru_cache(maxsize=4096)
def _epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str,
    sampling: str,
    dataset_size: int | None,
) -> float:
    check_combination(accountant, sampling)
    if steps == 0 or sample_rate == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    if accountant == "rdp":
        orders, curve = dp_sgd_rdp(
            noise_multiplier, sample_rate, steps, sampling=sampling, dataset_size=dataset_size
        )
        return float(rdp.compute_epsilon(orders.tolist(), curve.tolist(), delta)[0])
    acc = make_accountant("pld", sampling)
    acc.compose(dp_sgd_event(noise_multiplier, sample_rate, steps, sampling=sampling))
    return float(acc.get_epsilon(delta))


def dp_sgd_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
    *,
    sampling: str = "poisson",
    dataset_size: int | None = None,
) -> float:
    """ε of ``steps`` DP-SGD steps at (σ, q) for a given δ.

    Args:
      noise_multiplier: σ ≥ 0 (0: ε = ∞).
      sample_rate: q in [0, 1].
      steps: T ≥ 0 (rounds × local steps).
      delta: δ in (0, 1).
      accountant: ``rdp`` or ``pld``.
      sampling: ``poisson`` (add/remove-one) or ``fixed`` (replace-one, RDP only).
      dataset_size: n, for ``fixed``.

    Returns:
      ε (``math.inf`` without noise). Results are cached.

    Raises:
      ValueError: for an unsupported accountant/sampling pair or bad values.
    """
    if not 0 <= sample_rate <= 1:
        raise ValueError(f"sample_rate must lie in [0, 1], found {sample_rate=}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), found {delta=}")
    if noise_multiplier < 0 or steps < 0:
        raise ValueError(
            f"expected noise_multiplier >= 0 and steps >= 0, found {noise_multiplier=}, {steps=}"
        )
    return _epsilon(
        float(noise_multiplier),
        float(sample_rate),
        int(steps),
        float(delta),
        accountant,
        sampling,
        None if dataset_size is None else int(dataset_size),
    )


def epsilon_per_node(
    noise_multiplier: float,
    sample_rates: Sequence[float],
    steps: int,
    delta: float,
    accountant: str = "rdp",
    *,
    sampling: str = "poisson",
    dataset_sizes: Sequence[int] | None = None,
) -> list[float]:
    """ε of every node (equal rates are computed once).

    Args:
      noise_multiplier: σ shared by the nodes.
      sample_rates: q_i per node.
      steps: T, the same at every node.
      delta: δ.
      accountant: ``rdp`` or ``pld``.
      sampling: ``poisson`` or ``fixed``.
      dataset_sizes: n_i per node, for ``fixed``.

    Returns:
      ``[ε_i]`` in node order.
    """
    sizes = [None] * len(sample_rates) if dataset_sizes is None else list(dataset_sizes)
    return [
        dp_sgd_epsilon(
            noise_multiplier, q, steps, delta, accountant, sampling=sampling, dataset_size=n
        )
        for q, n in zip(sample_rates, sizes, strict=True)
    ]


def calibrate_noise(
    target_epsilon: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
    *,
    sampling: str = "poisson",
    dataset_size: int | None = None,
    tol: float = 1e-4,
) -> float:
    """The smallest σ whose ``steps`` steps at rate ``sample_rate`` reach ``target_epsilon``.

    Pass the worst node: the largest q_i (for ``fixed``, the smallest n_i); every
    other node then ends with ε_i ≤ target. Uses ``dp_accounting``'s Brent search.

    Args:
      target_epsilon: ε > 0.
      sample_rate: q of the worst node.
      steps: T.
      delta: δ.
      accountant: ``rdp`` or ``pld``.
      sampling: ``poisson`` or ``fixed``.
      dataset_size: n of the worst node, for ``fixed``.
      tol: absolute tolerance on σ; the result is rounded up to it, so its ε
        never exceeds the target.

    Returns:
      σ.
    """
    if not target_epsilon > 0:
        raise ValueError(f"target_epsilon must be > 0, found {target_epsilon=}")
    check_combination(accountant, sampling)
    problem = NoiseSearch(target_epsilon, sample_rate, steps, delta, sampling, dataset_size, tol)
    # RDP is cheap at any σ and never below PLD, so its σ bounds PLD's from above;
    # PLD itself is only evaluated in a bracket (tiny σ would need huge grids).
    sigma = problem.search("rdp", dp_accounting.LowerEndpointAndGuess(1e-3, 1.0))
    if accountant == "pld":
        bracket = dp_accounting.ExplicitBracketInterval(problem.pld_lower(sigma), sigma)
        sigma = problem.search("pld", bracket)
    while problem.epsilon(sigma, accountant) > target_epsilon:
        sigma += tol / 2
    return sigma


@dataclasses.dataclass(frozen=True)
class NoiseSearch:
    """One noise calibration: the σ of ``steps`` DP-SGD steps at ``target_epsilon``.

    Attributes: the arguments of :func:`calibrate_noise` of the same names.
    """

    target_epsilon: float
    sample_rate: float
    steps: int
    delta: float
    sampling: str
    dataset_size: int | None
    tol: float

    def event(self, sigma: float) -> dp_accounting.DpEvent:
        """The composed DP-SGD event at noise multiplier ``sigma``."""
        return dp_sgd_event(
            sigma,
            self.sample_rate,
            self.steps,
            sampling=self.sampling,
            dataset_size=self.dataset_size,
        )

    def epsilon(self, sigma: float, accountant: str) -> float:
        """ε at ``sigma`` on the accountant's standard grid (:func:`dp_sgd_epsilon`)."""
        return dp_sgd_epsilon(
            sigma,
            self.sample_rate,
            self.steps,
            self.delta,
            accountant,
            sampling=self.sampling,
            dataset_size=self.dataset_size,
        )

    def coarse_epsilon(self, sigma: float, accountant: str) -> float:
        """ε at ``sigma`` with PLD on a 10× coarser grid (never below the standard one)."""
        acc = make_accountant(accountant, self.sampling, pld_interval=1e-3)
        return float(acc.compose(self.event(sigma)).get_epsilon(self.delta))

    def search(self, accountant: str, bracket: Any) -> float:
        """Brent's σ in ``bracket``, raised in steps of ``tol / 2`` until its coarse ε is on target.

        PLD is searched on a 10× coarser grid (10× faster): the pessimistic
        discretisation rounds losses up to a grid that contains the standard one, so
        it can only overstate ε; :func:`calibrate_noise` checks on the standard grid.
        """
        step = self.tol / 2
        sigma = dp_accounting.calibrate_dp_mechanism(
            lambda: make_accountant(accountant, self.sampling, pld_interval=1e-3),
            self.event,
            self.target_epsilon,
            self.delta,
            bracket_interval=bracket,
            tol=step,
        )
        # Brent returns a point within tol/2 of σ*; round up onto the private side.
        sigma = math.ceil(float(sigma) / step) * step
        while self.coarse_epsilon(sigma, accountant) > self.target_epsilon:
            sigma += step
        return sigma

    def pld_lower(self, rdp_sigma: float) -> float:
        """A σ below PLD's, from RDP's (PLD's σ is typically 5–15 % below RDP's)."""
        lower = 0.8 * rdp_sigma
        while lower > 1e-2 and self.coarse_epsilon(lower, "pld") <= self.target_epsilon:
            lower *= 0.8
        return lower
