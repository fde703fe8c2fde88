"""Jittable private batch sampling: Poisson (accounted default) and fixed-size.

**Poisson** (what the accountant assumes for add/remove-one DP): at every local step
each real example of node i joins the batch independently with rate q_i, so the
batch size is Binomial(n_i, q_i). For static shapes the batch is padded to M rows
with a mask; M is the (1 − tail) quantile of Binomial(n_i, q_i), maximised over
nodes (:func:`poisson_max_batch`). If a step samples more than M examples a
uniformly random M of them are kept and the excess is reported in ``dropped``;
such a step is no longer the accounted mechanism (adding one example can then
evict another), so ``tail`` is tiny (1e-9 by default: M ≈ mean + 6 std). With
q_i = B/n_i (:func:`sample_rates`) the expected batch is B at every node, while ε
differs between nodes of different sizes.

**Fixed-size**: B examples without replacement (uniform over the node's rows), the
mask all ones (all n_i rows when n_i < B). Accounted by RDP with the replace-one
relation only.

Node i draws with ``fold_in(key, i)`` (as :mod:`dfl.data.batching`), so the
stacked samplers equal the per-node ones that a deployed node runs.

References:
  Zhu, Wang, "Poission Subsampled Rényi Differential Privacy", ICML 2019.
  Chua et al., "How Private are DP-SGD Implementations?", ICML 2024 (why the
  sampling scheme must match the accountant).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from dfl.data.batching import over_nodes
from dfl.data.node_data import NodeData


class MaskedBatches(NamedTuple):
    """``local_steps`` padded batches of one node (or of all, with a node axis).

    Attributes:
      x: features ``[K, M, ...]``.
      y: labels ``[K, M]``.
      mask: float32 ``[K, M]``, 1 for a sampled example, 0 for padding.
      dropped: int32 ``[K]``, Poisson-sampled examples cut by the cap M (0 when fine).
    """

    x: jax.Array
    y: jax.Array
    mask: jax.Array
    dropped: jax.Array

    @property
    def batch(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(x, y, mask)``: what the algorithm's ``step`` and the DP grad_fn take."""
        return self.x, self.y, self.mask


def sample_rates(counts: Sequence[int] | np.ndarray, batch_size: int) -> np.ndarray:
    """Poisson rates ``q_i = min(1, B / n_i)`` (expected batch B wherever n_i ≥ B)."""
    counts = np.asarray(counts, dtype=np.float64)
    if np.any(counts < 1):
        raise ValueError(f"every node needs at least one example, found counts {counts.tolist()}")
    return np.minimum(1.0, batch_size / counts)


def poisson_max_batch(
    counts: Sequence[int] | np.ndarray, rates: Sequence[float] | np.ndarray, *, tail: float = 1e-9
) -> int:
    """The padded Poisson batch size M: max over nodes of the (1 − tail) Binomial quantile.

    Args:
      counts: n_i per node.
      rates: q_i per node.
      tail: per-step probability that a node samples more than M examples.

    Returns:
      M ≥ 1 with P(Binomial(n_i, q_i) > M) ≤ tail for every node.
    """
    if not 0 < tail < 1:
        raise ValueError(f"tail must lie in (0, 1), found {tail=}")
    counts, rates = np.asarray(counts), np.asarray(rates, np.float64)
    quantiles = [
        stats.binom.isf(tail, int(n), float(q)) for n, q in zip(counts, rates, strict=True)
    ]
    return max(1, int(np.max(quantiles)))


def _select(
    include: jax.Array, priority: jax.Array, max_batch: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Row indices, mask and overflow of the ≤ M included rows of smallest priority."""
    max_n = include.shape[0]
    m = min(max_batch, max_n)
    score = jnp.where(include, -priority, -jnp.inf)
    top, idx = jax.lax.top_k(score, m)
    mask = jnp.isfinite(top)
    if m < max_batch:
        idx = jnp.pad(idx, (0, max_batch - m))
        mask = jnp.pad(mask, (0, max_batch - m))
    total = jnp.sum(include, dtype=jnp.int32)
    return idx, mask.astype(jnp.float32), jnp.maximum(total - max_batch, 0)


@functools.partial(jax.jit, static_argnames=("max_batch", "local_steps"))
def poisson_node_batches(
    key: jax.Array,
    x_i: jax.Array,
    y_i: jax.Array,
    count_i: jax.Array | int,
    *,
    rate: jax.Array | float,
    max_batch: int,
    local_steps: int,
) -> MaskedBatches:
    """Poisson-samples ``local_steps`` batches of one node, padded to ``max_batch``.

    Args:
      key: this node's key for this round, ``fold_in(round_key, node_id)``.
      x_i: the node's padded features ``[max_n, ...]``.
      y_i: the node's padded labels ``[max_n]``.
      count_i: number of real rows (padding rows are never sampled).
      rate: q_i, each real example's inclusion probability per step.
      max_batch: M, the padded batch size (:func:`poisson_max_batch`).
      local_steps: K.

    Returns:
      :class:`MaskedBatches` with ``x [K, M, ...]``, ``y [K, M]``, ``mask [K, M]``
      and ``dropped [K]``.
    """
    max_n = x_i.shape[0]
    u = jax.random.uniform(key, (local_steps, max_n))
    real = jnp.arange(max_n) < count_i
    include = (u < rate) & real
    # Among the included rows, u is i.i.d. uniform: keeping the smallest u gives a
    # uniformly random subset when the cap binds.
    idx, mask, dropped = jax.vmap(lambda inc, pr: _select(inc, pr, max_batch))(include, u)
    return MaskedBatches(x_i[idx], y_i[idx], mask, dropped)


@functools.partial(jax.jit, static_argnames=("batch_size", "local_steps"))
def fixed_node_batches(
    key: jax.Array,
    x_i: jax.Array,
    y_i: jax.Array,
    count_i: jax.Array | int,
    *,
    batch_size: int,
    local_steps: int,
) -> MaskedBatches:
    """Samples ``batch_size`` distinct real rows per step (without replacement).

    Args:
      key: this node's key for this round.
      x_i: the node's padded features ``[max_n, ...]``.
      y_i: the node's padded labels ``[max_n]``.
      count_i: number of real rows.
      batch_size: B (every real row once when n_i < B; the rest masked out).
      local_steps: K.

    Returns:
      :class:`MaskedBatches` with ``M = batch_size`` and ``dropped`` zeros.
    """
    max_n = x_i.shape[0]
    u = jax.random.uniform(key, (local_steps, max_n))
    real = jnp.broadcast_to(jnp.arange(max_n) < count_i, u.shape)
    idx, mask, _ = jax.vmap(lambda inc, pr: _select(inc, pr, batch_size))(real, u)
    return MaskedBatches(x_i[idx], y_i[idx], mask, jnp.zeros((local_steps,), jnp.int32))


@functools.partial(jax.jit, static_argnames=("max_batch", "local_steps"))
def poisson_batches(
    key: jax.Array, node_data: NodeData, *, rates: jax.Array, max_batch: int, local_steps: int
) -> MaskedBatches:
    """:func:`poisson_node_batches` for all nodes; node i uses ``fold_in(key, i)``.

    Args:
      key: the round's key.
      node_data: stacked data, leading axis N.
      rates: q_i per node ``[N]``.
      max_batch: M (shared by all nodes).
      local_steps: K.

    Returns:
      :class:`MaskedBatches` with a leading node axis.
    """
    return over_nodes(
        poisson_node_batches,
        key,
        node_data,
        {"rate": jnp.asarray(rates)},
        max_batch=max_batch,
        local_steps=local_steps,
    )


@functools.partial(jax.jit, static_argnames=("batch_size", "local_steps"))
def fixed_batches(
    key: jax.Array, node_data: NodeData, *, batch_size: int, local_steps: int
) -> MaskedBatches:
    """:func:`fixed_node_batches` for all nodes; node i uses ``fold_in(key, i)``."""
    return over_nodes(
        fixed_node_batches, key, node_data, batch_size=batch_size, local_steps=local_steps
    )
