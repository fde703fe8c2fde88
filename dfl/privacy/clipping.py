"""Per-example gradient clipping: the sensitivity bound of DP-SGD.

For per-example gradients g_e and a clip norm C the clipped sum

.. math::  \\bar g = \\sum_e m_e \\, g_e \\min\\left(1, \\frac{C}{\\|g_e\\|}\\right)

(m_e ∈ {0, 1} the mask of the padded batch) changes by at most C in ℓ₂ when one
example is added or removed, and by at most 2C when one is replaced: the
sensitivity the Gaussian noise of :mod:`dfl.privacy.noise` is calibrated to.

Per-example gradients are one ``jax.vmap`` over the examples of a node's batch;
the simulation ``vmap``-s that again over nodes (vmap inside vmap).

References:
  Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dfl.algorithms.base import LossFn, Params
from dfl.algorithms.local import GradFn


def split_batch(batch: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(x, y, mask)`` of a batch given as ``(x, y)`` (all real) or ``(x, y, mask)``."""
    if len(batch) == 3:
        x, y, mask = batch
    elif len(batch) == 2:
        x, y = batch
        mask = jnp.ones(jnp.shape(y)[:1], jnp.float32)
    else:
        raise ValueError(f"expected a batch (x, y) or (x, y, mask), found {len(batch)} arrays")
    return x, y, jnp.asarray(mask, jnp.float32)


def per_example_grads(
    loss_fn: LossFn, params: Params, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, Params]:
    """Loss and gradient of every example: ``loss_fn(params, (x[e:e+1], y[e:e+1]))``.

    Args:
      loss_fn: ``loss_fn(params, (x, y)) -> scalar`` mean loss over a batch.
      params: the node's parameters.
      x: features ``[M, ...]``.
      y: labels ``[M, ...]``.

    Returns:
      ``(losses [M], grads)`` with every gradient leaf stacked on a leading ``M`` axis.
    """

    def one(xe: jax.Array, ye: jax.Array):
        return jax.value_and_grad(loss_fn)(params, (xe[None], ye[None]))

    return jax.vmap(one)(x, y)


def clip_factors(grads: Params, l2_clip: float) -> tuple[jax.Array, jax.Array]:
    """``(min(1, C/‖g_e‖), ‖g_e‖)`` per example of stacked gradients ``[M, ...]``."""
    sq = sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1) for g in jax.tree.leaves(grads))
    norms = jnp.sqrt(sq)
    return jnp.minimum(1.0, l2_clip / jnp.maximum(norms, 1e-12)), norms


def clipped_sum(grads: Params, l2_clip: float, mask: jax.Array) -> Params:
    """``Σ_e m_e · clip_C(g_e)`` of stacked per-example gradients."""
    factors, _ = clip_factors(grads, l2_clip)
    weights = factors * mask
    return jax.tree.map(lambda g: jnp.tensordot(weights.astype(g.dtype), g, axes=1), grads)


def dp_grad_fn(loss_fn: LossFn, *, l2_clip: float) -> GradFn:
    """A :data:`~dfl.algorithms.local.GradFn` returning the clipped per-example SUM.

    Compose with :func:`dfl.privacy.add_dp_noise` (noise, then division by the
    expected batch size) or use :func:`dfl.privacy.private_grad_fn` for both.

    Args:
      loss_fn: ``loss_fn(params, (x, y)) -> scalar`` mean loss over a batch.
      l2_clip: C > 0, the per-example ℓ₂ bound.

    Returns:
      ``grad_fn(params, batch, key) -> (loss, Σ_e m_e clip_C(g_e))`` for a batch
      ``(x, y)`` or ``(x, y, mask)``; ``loss`` is the mean over the real examples
      (0 for an empty batch). The key is unused.
    """
    if not l2_clip > 0:
        raise ValueError(f"l2_clip must be > 0, found {l2_clip=}")

    def grad_fn(params: Params, batch: Any, key: jax.Array) -> tuple[jax.Array, Params]:
        del key
        x, y, mask = split_batch(batch)
        losses, grads = per_example_grads(loss_fn, params, x, y)
        loss = jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)
        return loss, clipped_sum(grads, l2_clip, mask)

    return grad_fn
