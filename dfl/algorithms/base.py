"""The per-node algorithm interface shared by simulation and deployment.

An :class:`Algorithm` is a bundle of pure, per-node functions (no node axis).
The simulation runner ``jax.vmap``-s them over the stacked node axis and mixes
messages with a gossip operator; the node runner jits them without the node axis
and exchanges the wire messages over a transport. Neither mode is visible to the
algorithm.

One round at node ``i``::

    state, wire, info = step(state, batches, key)     # local phase
    message_j = decode(wire_j)                          # for every in-neighbour j (and i)
    mixed = sum_j W[i, j] * message_j                   # the exchange contract
    state = combine(state, mixed)                       # combine phase

``wire`` is the pytree of arrays that actually goes on the network (compressed
where the algorithm compresses); its size in bytes is what ``bytes_sent_per_node``
counts. ``decode`` turns a wire pytree back into the message pytree that is mixed
(by default the wire is the message). Builders take the run's local training as
one :class:`~dfl.algorithms.local.LocalUpdate` (optimizer and DP-SGD inside) and
their own keyword-only options.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, Literal

import jax
import numpy as np
import scipy.sparse

Params = Any
"""A pytree of trainable parameters (``nnx.Param`` leaves as a pure dict)."""
State = Any
"""A per-node algorithm state pytree (no node axis)."""
Batch = Any
"""A pytree ``(x, y)`` of one node's batches with a leading ``local_steps`` axis."""
LossFn = Callable[[Params, Any], jax.Array]
"""``loss_fn(params, (x, y)) -> scalar`` mean loss over one batch."""


class MissingRule(enum.StrEnum):
    """What a node does when a neighbour's message did not arrive by the deadline.

    * ``RENORMALIZE``: mix over the messages heard, the weights of the missing
      ones added to the node's own weight (row sums stay what they were). Sound
      for the D-SGD family (D-SGD, DSGDm, QG-DSGDm, DSGD-EF).
    * ``WAIT``: block until it arrives (no round can be skipped): gradient
      tracking, CHOCO, push-sum, D² and FedAvg, whose invariants a lost message breaks.

    (A third rule, reusing the neighbour's last message, is not offered: no
    algorithm here is sound with it.)
    """

    RENORMALIZE = "renormalize"
    WAIT = "wait"


Stochasticity = Literal["row", "column", "doubly"]


class RequirementError(ValueError):
    """A mixing matrix misses what the algorithm declared it needs."""


@dataclasses.dataclass(frozen=True)
class MixingRequirements:
    """What an algorithm needs from its mixing matrices ``W``.

    Attributes:
      stochastic: which sums of ``W`` must be one: ``"row"`` (each node's
        weights over its in-neighbours), ``"column"`` (push-sum) or ``"doubly"``.
      symmetric: whether ``W`` must equal ``W.T``.
      time_varying: whether a schedule whose ``W`` changes between rounds is allowed.
      exact_average: whether ``W`` must be ``J = 11ᵀ/n`` (FedAvg's exact average).
      min_eigenvalue: if set, every eigenvalue of ``W`` must be at least this
        (real part; D² needs ``λ_min(W) ≥ −1/3``).
    """

    stochastic: Stochasticity = "row"
    symmetric: bool = False
    time_varying: bool = True
    exact_average: bool = False
    min_eigenvalue: float | None = None

    def check(
        self,
        W: np.ndarray | scipy.sparse.sparray,
        *,
        time_varying: bool,
        algorithm: str,
        atol: float = 1e-6,
    ):
        """Raises :class:`RequirementError` naming what ``W`` misses for ``algorithm``.

        ``W`` may be a ``scipy.sparse`` matrix (a sparse schedule): the same checks in
        ``O(E)``, the smallest eigenvalue by ``scipy.sparse.linalg`` (Lanczos/Arnoldi).
        """
        need_eig = self.min_eigenvalue is not None
        facts = (
            _sparse_facts(W, atol, need_eig)
            if scipy.sparse.issparse(W)
            else _dense_facts(W, atol, need_eig)
        )
        rows, cols, symmetric, exact_average, lam = facts
        problems = []
        if time_varying and not self.time_varying:
            problems.append("a static mixing matrix (the topology is time-varying)")
        if self.stochastic in ("row", "doubly") and not np.allclose(rows, 1.0, atol=atol):
            bad = int(np.argmax(np.abs(rows - 1.0)))
            problems.append(f"row sums of 1 (row {bad} sums to {rows[bad]:.6g})")
        if self.stochastic in ("column", "doubly") and not np.allclose(cols, 1.0, atol=atol):
            bad = int(np.argmax(np.abs(cols - 1.0)))
            problems.append(f"column sums of 1 (column {bad} sums to {cols[bad]:.6g})")
        if self.symmetric and not symmetric:
            problems.append("a symmetric W")
        if self.exact_average and not exact_average:
            problems.append("W = 11ᵀ/n (exact averaging: topology=complete mixing=uniform)")
        if self.min_eigenvalue is not None and lam is not None and lam < self.min_eigenvalue - atol:
            problems.append(
                f"eigenvalues of W ≥ {self.min_eigenvalue:.6g} (smallest is {lam:.6g}; "
                "a lazy mixing rule, mixing=lazy, provides it)"
            )
        if problems:
            raise RequirementError(
                f"algorithm {algorithm!r} requires " + "; ".join(problems) + ". "
                "Choose a mixing rule/topology that provides it."
            )


def _dense_facts(
    W: Any, atol: float, need_eig: bool
) -> tuple[np.ndarray, np.ndarray, bool, bool, float | None]:
    """``(row sums, column sums, symmetric, W = 11ᵀ/n, smallest eigenvalue)`` of a dense W."""
    W = np.asarray(W, dtype=np.float64)
    symmetric = bool(np.allclose(W, W.T, atol=atol))
    exact_average = bool(np.allclose(W, 1.0 / W.shape[0], atol=atol))
    lam = None
    if need_eig:
        eigs = np.linalg.eigvalsh(W) if symmetric else np.linalg.eigvals(W).real
        lam = float(np.min(eigs))
    return W.sum(axis=1), W.sum(axis=0), symmetric, exact_average, lam


def _sparse_facts(
    W: Any, atol: float, need_eig: bool
) -> tuple[np.ndarray, np.ndarray, bool, bool, float | None]:
    """:func:`_dense_facts` of a sparse W in ``O(E)`` (never an ``n x n`` array); the
    smallest eigenvalue by ``scipy.sparse.linalg`` (Lanczos/Arnoldi)."""
    import scipy.sparse.linalg

    W = scipy.sparse.csr_array(W, dtype=np.float64)
    n = W.shape[0]
    diff = abs(W - W.T)
    symmetric = diff.nnz == 0 or float(diff.max()) <= atol
    exact_average = W.nnz == n * n and bool(np.allclose(W.data, 1.0 / n, atol=atol))
    lam = None
    if need_eig:
        if symmetric:
            lam = float(scipy.sparse.linalg.eigsh(W, k=1, which="SA", tol=0)[0][0])
        else:
            lam = float(scipy.sparse.linalg.eigs(W, k=1, which="SR", tol=0)[0][0].real)
    return np.asarray(W.sum(axis=1)), np.asarray(W.sum(axis=0)), symmetric, exact_average, lam


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A decentralized algorithm as pure per-node phases.

    Attributes:
      name: registry name (``algorithm.name`` in the config).
      init: ``init(params, key) -> state``; ``key`` is already specific to the
        node (``fold_in(key, node_id)``).
      step: ``step(state, batches, key) -> (state, wire, info)``: the local
        phase on ``batches`` with a leading ``local_steps`` axis; ``info`` is a
        dict of scalar diagnostics, at least ``"loss"`` (mean local-step loss).
      combine: ``combine(state, mixed) -> state`` with ``mixed = Σ_j W_ij message_j``.
      decode: ``decode(wire) -> message``: what a receiver mixes (default: the
        wire itself, for algorithms that send uncompressed messages).
      params: ``params(state) -> params`` to evaluate (default: ``state.params``;
        push-sum de-biases here).
      requirements: what ``W`` must satisfy.
      missing_rule: how a missing neighbour message is treated.
    """

    name: str
    init: Callable[[Params, jax.Array], State]
    step: Callable[[State, Batch, jax.Array], tuple[State, Any, dict[str, jax.Array]]]
    combine: Callable[[State, Any], State]
    decode: Callable[[Any], Any] = lambda wire: wire
    params: Callable[[State], Params] = lambda state: state.params
    requirements: MixingRequirements = MixingRequirements()
    missing_rule: MissingRule = MissingRule.RENORMALIZE
