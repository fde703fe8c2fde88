"""Calibrating σ (``privacy=dp_sgd_eps``) does not flood the log with per-order warnings."""

from __future__ import annotations

import logging

from dfl.privacy import accounting
from dfl.privacy.accounting import calibrate_noise

NOISY = (8.0, 32 / 90, 400, 1e-5)  # digits over 16 nodes, batch 32, 200 rounds × 2 steps


def unconverged(caplog) -> int:
    return sum("failed to converge" in r.getMessage() for r in caplog.records)


def test_calibration_logs_no_failed_to_converge_lines(caplog):
    with caplog.at_level(logging.WARNING):
        sigma = calibrate_noise(*NOISY, "rdp")
    assert sigma > 0
    assert unconverged(caplog) == 0


def test_without_the_filter_dp_accounting_would_log_them(caplog):
    absl = logging.getLogger("absl")
    (f,) = [f for f in absl.filters if isinstance(f, accounting._UnconvergedOrders)]
    absl.removeFilter(f)
    try:
        with caplog.at_level(logging.WARNING):
            calibrate_noise(*NOISY, "rdp")
    finally:
        absl.addFilter(f)
    assert unconverged(caplog) > 10
