"""Synthetic(α, β): the non-IID multinomial logistic regression data of LEAF / FedProx.

Device ``k`` draws its own model and its own input distribution:

.. math::

   u_k \\sim N(0, α^2),\\; B_k \\sim N(0, β^2),\\;
   W_k \\sim N(u_k, 1)^{60 \\times 10},\\; b_k \\sim N(u_k, 1)^{10},\\;
   v_k \\sim N(B_k, 1)^{60},\\; x \\sim N(v_k, Σ),\\; Σ_{jj} = j^{-1.2},\\;
   y = \\arg\\max \\operatorname{softmax}(W_k^\\top x + b_k).

α controls how much the device models differ, β how much their inputs differ
(α = β = 0 is still non-IID through the per-device draws). As in the reference
code, α and β are the *standard deviations* passed to ``numpy``'s ``normal``.
Device sizes are ``int(lognormal(4, 2)) + 50`` unless a fixed
``samples_per_device`` is asked for.

References:
  Li et al., "Federated Optimization in Heterogeneous Networks" (FedProx), 2020.
  Caldas et al., "LEAF: A Benchmark for Federated Settings", 2018.
"""

from __future__ import annotations

import numpy as np

from dfl.data.dataset import Dataset, check_fraction

NUM_FEATURES = 60
NUM_CLASSES = 10


def device_sizes(rng: np.random.Generator, num_devices: int, samples_per_device: int) -> np.ndarray:
    """Samples per device: fixed if ``samples_per_device > 0``, else LEAF's lognormal.

    Args:
      rng: the generator.
      num_devices: number of devices.
      samples_per_device: fixed count, or 0 for ``int(lognormal(4, 2)) + 50``.

    Returns:
      int64 sizes ``[num_devices]``.
    """
    if samples_per_device > 0:
        return np.full(num_devices, samples_per_device, dtype=np.int64)
    return rng.lognormal(4.0, 2.0, num_devices).astype(np.int64) + 50


def device_samples(
    rng: np.random.Generator, n: int, u_k: float, b_k: float
) -> tuple[np.ndarray, np.ndarray]:
    """Device k's ``n`` samples: ``x ~ N(v_k, Σ)``, ``y = argmax(W_k x + b_k)``.

    ``v_k ~ N(B_k, 1)``, ``W_k, b_k ~ N(u_k, 1)`` (drawn from ``rng`` in that order),
    ``Σ = diag(j^-1.2)``.
    """
    scale = np.arange(1, NUM_FEATURES + 1, dtype=np.float64) ** (-1.2 / 2)  # sqrt(Σ_jj)
    v = rng.normal(b_k, 1.0, NUM_FEATURES)
    W = rng.normal(u_k, 1.0, (NUM_FEATURES, NUM_CLASSES))
    b = rng.normal(u_k, 1.0, NUM_CLASSES)
    x = v + rng.standard_normal((n, NUM_FEATURES)) * scale
    return x, np.argmax(x @ W + b, axis=1)  # argmax of softmax == argmax of logits


def _check_options(
    test_fraction: float, alpha: float, beta: float, num_devices: int, samples_per_device: int
) -> None:
    check_fraction(test_fraction)
    if alpha < 0 or beta < 0:
        raise ValueError(f"synthetic alpha and beta must be >= 0, found {alpha=}, {beta=}")
    if num_devices < 1:
        raise ValueError(f"synthetic num_devices must be >= 1, found {num_devices}")
    if samples_per_device < 0 or samples_per_device == 1:
        raise ValueError(
            "synthetic samples_per_device must be 0 (lognormal sizes) or >= 2, found "
            f"{samples_per_device}"
        )


def load_synthetic(
    *,
    seed: int,
    test_fraction: float = 0.2,
    alpha: float = 1.0,
    beta: float = 1.0,
    num_devices: int = 30,
    samples_per_device: int = 0,
) -> Dataset:
    """Generates Synthetic(α, β) and splits every device's samples into train and test.

    Each device holds out ``round(test_fraction * n_k)`` of its samples, chosen
    at random (at least one sample stays in train); the union of the held-out
    parts is the global test set. ``train_groups`` gives the device of every
    training sample, for the ``natural`` partition (device ``k`` -> node ``k``).

    Args:
      seed: seed of the generator and of the split.
      test_fraction: held-out fraction of each device, in ``(0, 1)``.
      alpha: standard deviation of the per-device model means ``u_k``.
      beta: standard deviation of the per-device input means ``B_k``.
      num_devices: number of devices (natural groups).
      samples_per_device: fixed count per device, or 0 for LEAF's lognormal sizes.

    Returns:
      A :class:`Dataset` with features ``(60,)``, 10 classes and ``train_groups``.
    """
    _check_options(test_fraction, alpha, beta, num_devices, samples_per_device)
    rng = np.random.default_rng(seed)
    split_rng = np.random.default_rng([seed, 1])
    sizes = device_sizes(rng, num_devices, samples_per_device)
    u = rng.normal(0.0, alpha, num_devices)
    B = rng.normal(0.0, beta, num_devices)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("xtr", "ytr", "gtr", "xte", "yte")}
    for k in range(num_devices):
        x, y = device_samples(rng, int(sizes[k]), u[k], B[k])
        perm = split_rng.permutation(len(y))
        n_test = min(round(test_fraction * len(y)), len(y) - 1)
        te, tr = perm[:n_test], np.sort(perm[n_test:])
        parts["xtr"].append(x[tr])
        parts["ytr"].append(y[tr])
        parts["gtr"].append(np.full(tr.size, k, dtype=np.int32))
        parts["xte"].append(x[np.sort(te)])
        parts["yte"].append(y[np.sort(te)])
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Dataset(
        x_train=cat["xtr"].astype(np.float32),
        y_train=cat["ytr"].astype(np.int32),
        x_test=cat["xte"].astype(np.float32).reshape(-1, NUM_FEATURES),
        y_test=cat["yte"].astype(np.int32),
        num_classes=NUM_CLASSES,
        name="synthetic",
        train_groups=cat["gtr"],
    )
