"""Gaussian noise: the DP-SGD privatizer and local DP on gossip messages.

:func:`add_dp_noise` is an optax transformation for the clipped gradient SUM of
:func:`dfl.privacy.dp_grad_fn`:

.. math::  \\tilde g = \\frac{1}{B}\\left(\\bar g + \\mathcal N(0, \\sigma^2 C^2 I)\\right),

σ the noise multiplier, C the clip norm, B the *expected* batch size (a constant,
so the division is post-processing and the Poisson batch size stays private).
Its state holds its own key; step t draws with ``fold_in(key, t)``. The key must
belong to the node: optax ``init`` receives no key, so a transform built once and
``vmap``-ed over nodes would give every node the *same* noise, which a neighbour
could subtract. :func:`dfl.privacy.private_grad_fn` therefore seeds it with the
per-node, per-step key that every :data:`~dfl.algorithms.local.GradFn` receives.

:func:`add_message_noise` adds N(0, s²) to every float leaf of a message a node
is about to send (Muffliato's local DP on gossip).

References:
  Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
  Cyffers, Even, Bellet, Massoulié, "Muffliato: Peer-to-Peer Privacy Amplification
  for Decentralized Optimization and Averaging", NeurIPS 2022.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu


class DPNoiseState(NamedTuple):
    """State of :func:`add_dp_noise`.

    Attributes:
      key: the node's noise key.
      count: updates so far (step t draws with ``fold_in(key, t)``).
    """

    key: jax.Array
    count: jax.Array


def gaussian_like(tree: Any, key: jax.Array, stddev: float | jax.Array) -> Any:
    """Independent N(0, stddev²) noise shaped like every leaf of ``tree`` (its dtypes).

    Leaf ``i`` draws with the ``i``-th key of ``jax.random.split(key, leaves)``
    (:func:`optax.tree_utils.tree_random_like`), which under JAX's default
    partitionable threefry is ``fold_in(key, i)``.
    """
    return otu.tree_scale(stddev, otu.tree_random_like(key, tree, jax.random.normal))


def add_dp_noise(
    noise_multiplier: float, l2_clip: float, expected_batch_size: float, key: jax.Array
) -> optax.GradientTransformation:
    """Adds N(0, (σC)²) to a clipped gradient sum and divides by the expected batch size.

    Args:
      noise_multiplier: σ ≥ 0 (0 adds no noise: no privacy).
      l2_clip: C, the clip norm of the summed per-example gradients.
      expected_batch_size: B > 0, e.g. q_i·n_i = the configured batch size.
      key: the node's key (``fold_in(key, node_id)``, or a per-step key).

    Returns:
      An ``optax.GradientTransformation`` with :class:`DPNoiseState`; chain it
      before the local optimizer: ``optax.chain(add_dp_noise(...), optimizer)``.
    """
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, found {noise_multiplier=}")
    if not expected_batch_size > 0:
        raise ValueError(f"expected_batch_size must be > 0, found {expected_batch_size=}")
    stddev = noise_multiplier * l2_clip

    def init(params: Any) -> DPNoiseState:
        del params
        return DPNoiseState(key, jnp.zeros((), jnp.int32))

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, DPNoiseState]:
        del params
        noise = gaussian_like(updates, jax.random.fold_in(state.key, state.count), stddev)
        noisy = jax.tree.map(lambda g, n: (g + n) / expected_batch_size, updates, noise)
        return noisy, DPNoiseState(state.key, state.count + 1)

    return optax.GradientTransformation(init, update)


def add_message_noise(message: Any, key: jax.Array, stddev: float) -> Any:
    """Adds N(0, stddev²) to every entry of a dense outgoing message (sender side).

    What it protects: every message a node sends (its parameters, for D-SGD) is
    released with Gaussian noise, so any neighbour or eavesdropper sees only a
    noisy view of the node's model, round by round (local DP of each message,
    Muffliato). The guarantee is relative to the message's sensitivity, which is
    bounded only when the local updates are (e.g. DP-SGD clipping: a step moves
    x by at most lr·C/B per example); this module does not account it. With
    DP-SGD on, messages are already DP by post-processing; this adds protection
    of the model itself (e.g. against inference of the node's data distribution).

    Args:
      message: the pytree the node is about to send; its leaves must be float
        (compressed wires hold integers: add the noise before compressing).
      key: this node's key for this round (``fold_in(round_key, node_id)``-derived).
      stddev: noise standard deviation; 0 returns ``message`` unchanged.

    Returns:
      The noisy message, same structure and dtypes.

    Raises:
      ValueError: for a leaf that is not floating point.
    """
    if stddev == 0:
        return message
    for leaf in jax.tree.leaves(message):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise ValueError(
                f"message noise needs float leaves, found {jnp.result_type(leaf)} "
                "(a compressed wire?): add the noise to the message before compressing"
            )
    return otu.tree_add(message, gaussian_like(message, key, stddev))
