"""The accountant against closed forms and published values (never against itself)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from dfl.privacy import (
    calibrate_noise,
    dp_sgd_epsilon,
    dp_sgd_rdp,
    epsilon_per_node,
)

# TensorFlow Privacy's order list of compute_dp_sgd_privacy.py (tensorflow/privacy,
# tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy.py).
TF_ORDERS = [1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5, *range(5, 64), 128, 256, 512]


def analytic_gaussian_delta(eps: float, sigma: float) -> float:
    """δ(ε) of one Gaussian release with sensitivity 1 (Balle & Wang 2018, Theorem 8)."""
    return stats.norm.cdf(1 / (2 * sigma) - eps * sigma) - math.exp(eps) * stats.norm.cdf(
        -1 / (2 * sigma) - eps * sigma
    )


def analytic_gaussian_epsilon(delta: float, sigma: float) -> float:
    return optimize.brentq(lambda e: analytic_gaussian_delta(e, sigma) - delta, 1e-9, 200)


@pytest.mark.parametrize("sigma", [0.7, 2.0])
@pytest.mark.parametrize("steps", [1, 10])
def test_rdp_of_the_gaussian_mechanism_is_alpha_over_two_sigma_squared(sigma, steps):
    orders, curve = dp_sgd_rdp(sigma, 1.0, steps)
    np.testing.assert_allclose(curve, steps * orders / (2 * sigma**2), rtol=1e-10)


@pytest.mark.parametrize("sigma", [0.8, 2.0, 5.0])
def test_pld_matches_analytic_gaussian_and_rdp_bounds_it(sigma):
    delta = 1e-5
    exact = analytic_gaussian_epsilon(delta, sigma)
    pld = dp_sgd_epsilon(sigma, 1.0, 1, delta, "pld")
    rdp = dp_sgd_epsilon(sigma, 1.0, 1, delta, "rdp")
    assert pld == pytest.approx(exact, rel=2e-3, abs=2e-3)
    assert pld >= exact - 1e-9  # PLD's discretisation is pessimistic
    assert rdp >= exact
    assert rdp > 1.02 * exact  # and RDP is strictly looser here


def test_published_abadi_mnist_example():
    """TF Privacy's compute_dp_sgd_privacy.py docstring (Abadi et al. 2016's MNIST setting):
    N=60000, batch 256, noise_multiplier 1.12, 60 epochs, δ=1e-5 ⇒ "(2.92, 1e-5)-DP",
    computed from the RDP curve with the classic conversion ε = min_α rdp(α) + log(1/δ)/(α−1)
    on its order list. (The figure is for σ = 1.12, not 1.1.)"""
    steps = math.ceil(60 * 60000 / 256)
    orders, curve = dp_sgd_rdp(1.12, 256 / 60000, steps, orders=TF_ORDERS)
    classic = np.min(curve + math.log(1 / 1e-5) / (orders - 1))
    assert round(float(classic), 2) == 2.92
    # dp_accounting's conversion (Canonne, Kamath, Steinke 2020) only tightens it.
    assert 2.3 < dp_sgd_epsilon(1.12, 256 / 60000, steps, 1e-5) < 2.92


@pytest.mark.parametrize(
    ("n", "batch", "sigma", "epochs", "delta", "expected"),
    [
        (60000, 150, 1.3, 15, 1e-5, 0.7242234026109595),
        (100000, 100, 1.0, 30, 1e-7, 1.4154988495444842),
    ],
)
def test_published_tf_privacy_rdp_values(n, batch, sigma, epochs, delta, expected):
    """tensorflow/privacy compute_dp_sgd_privacy_test.py, test_compute_dp_sgd_privacy
    (Poisson rate batch/n, steps = ceil(epochs·n/batch), RDP)."""
    steps = math.ceil(epochs * n / batch)
    assert dp_sgd_epsilon(sigma, batch / n, steps, delta) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("rate", "steps", "accountant", "expected"),
    [
        (1e-2, 120, "rdp", 3.2392676),
        (1e-2, 120, "pld", 2.4612381),
        (1.0, 2, "rdp", 10.8602036),
        (1.0, 2, "pld", 10.1224946),
    ],
)
def test_published_tf_privacy_example_privacy(rate, steps, accountant, expected):
    """tensorflow/privacy compute_dp_sgd_privacy_test.py, test_compute_dp_sgd_example_privacy
    (no microbatching): 1.2 epochs at noise 0.7, δ=1e-5; with Poisson rate 1e-2 that is
    ceil(1.2/0.01) = 120 steps, without subsampling ceil(1.2) = 2 full-batch releases."""
    eps = dp_sgd_epsilon(0.7, rate, steps, 1e-5, accountant)
    assert eps == pytest.approx(expected, abs=1e-6)


def test_epsilon_per_node_follows_the_rates():
    rates = [0.01, 0.02, 0.01, 0.05]
    eps = epsilon_per_node(1.0, rates, 500, 1e-5)
    assert eps[0] == eps[2]
    assert eps[0] < eps[1] < eps[3]
    assert eps[3] == dp_sgd_epsilon(1.0, 0.05, 500, 1e-5)


def test_edge_cases_and_refusals():
    assert dp_sgd_epsilon(1.0, 0.1, 0, 1e-5) == 0.0
    assert dp_sgd_epsilon(0.0, 0.1, 10, 1e-5) == math.inf
    with pytest.raises(ValueError, match=r"sampling='fixed'.*accountant='pld'"):
        dp_sgd_epsilon(1.0, 0.1, 10, 1e-5, "pld", sampling="fixed", dataset_size=100)
    with pytest.raises(ValueError, match="accountant='gdp'"):
        dp_sgd_epsilon(1.0, 0.1, 10, 1e-5, "gdp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        dp_sgd_epsilon(1.0, 0.1, 10, 0.0)


def test_fixed_size_sampling_is_replace_one():
    """A full batch (B = n) is one Gaussian release at sensitivity 2C: RDP = 2α/σ²."""
    sigma = 3.0
    orders, curve = dp_sgd_rdp(sigma, 1.0, 1, sampling="fixed", dataset_size=50)
    np.testing.assert_allclose(curve, orders / (2 * (sigma / 2) ** 2), rtol=1e-10)
    sub = dp_sgd_epsilon(sigma, 0.1, 100, 1e-5, sampling="fixed", dataset_size=100)
    full = dp_sgd_epsilon(sigma, 1.0, 100, 1e-5, sampling="fixed", dataset_size=100)
    assert 0 < sub < full


def test_calibrate_noise_rdp_hits_target_from_the_private_side():
    tol = 1e-4
    sigma = calibrate_noise(2.0, 0.02, 800, 1e-5, tol=tol)
    assert dp_sgd_epsilon(sigma, 0.02, 800, 1e-5) <= 2.0
    assert dp_sgd_epsilon(sigma - 2 * tol, 0.02, 800, 1e-5) > 2.0


def test_calibrate_noise_pld_needs_less_noise_than_rdp():
    sigma_pld = calibrate_noise(3.0, 0.05, 40, 1e-5, "pld", tol=1e-2)
    sigma_rdp = calibrate_noise(3.0, 0.05, 40, 1e-5, "rdp", tol=1e-2)
    assert dp_sgd_epsilon(sigma_pld, 0.05, 40, 1e-5, "pld") <= 3.0
    assert sigma_pld < sigma_rdp
