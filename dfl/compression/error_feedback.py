"""Error feedback: compressors that remember what they have not sent yet.

Two wrappers turn any compressor C (with decoder D) into a compressor whose
per-node state holds a residual, so that compression errors are sent later
instead of lost:

* :func:`error_feedback` — classic EF for a stream of *increments* Δ_t
  (Seide et al. 2014; Stich et al. 2018; Karimireddy et al. 2019). With residual e:

  .. math::  m_t = C(\\Delta_t + e_t), \\qquad e_{t+1} = \\Delta_t + e_t - D(m_t),

  so Σ_t D(m_t) = Σ_t Δ_t − e_{T}: the receivers' running sum lags the true one by
  the bounded residual only.

* :func:`ef21` — EF21 / public-copy form for a stream of *states* x_t
  (Richtárik et al. 2021; the x̂ of CHOCO-SGD, Koloskova et al. 2019). The node keeps
  the public copy x̂ that its receivers can reconstruct and sends the compressed
  gap to it:

  .. math::  m_t = C(x_t - \\hat x_t), \\qquad \\hat x_{t+1} = \\hat x_t + D(m_t).

  The residual is e_t = x_t − x̂_t; a receiver adds D(m_t) to its aggregate of x̂.

Both are exactly the same process when Δ_t = x_t − x_{t−1} and x̂_0 = x_0 − e_0
(e_t = x_t − x̂_t). With a contraction ω, ‖x_t − x̂_{t+1}‖² ≤ (1 − ω)‖x_t − x̂_t‖²
in expectation, so the public copy catches up with a fixed x geometrically.

``decompress`` of both is the inner decoder: what is mixed is D(m_t).

References:
  Seide et al., "1-Bit Stochastic Gradient Descent and its Application to
  Data-Parallel Distributed Training of Speech DNNs", Interspeech 2014.
  Karimireddy, Rebjock, Stich, Jaggi, "Error Feedback Fixes SignSGD and other
  Gradient Compression Schemes", ICML 2019.
  Richtárik, Sokolov, Fatkhullin, "EF21: A New, Simpler, Theoretically Better, and
  Practically Faster Error Feedback", NeurIPS 2021.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax.tree_utils as otu

from dfl.compression.base import Compressor


class ErrorFeedbackState(NamedTuple):
    """State of :func:`error_feedback`.

    Attributes:
      residual: e, what has been given to ``compress`` but not yet sent.
      inner: the wrapped compressor's state.
    """

    residual: Any
    inner: Any


class EF21State(NamedTuple):
    """State of :func:`ef21`.

    Attributes:
      public: x̂, the copy of x that the receivers can reconstruct.
      inner: the wrapped compressor's state.
    """

    public: Any
    inner: Any


def _add(a: Any, b: Any) -> Any:
    """``a + b``, ``b`` cast to ``a``'s dtypes."""
    return otu.tree_add(a, otu.tree_cast_like(b, a))


def _sub(a: Any, b: Any) -> Any:
    """``a − b``, ``b`` cast to ``a``'s dtypes."""
    return otu.tree_sub(a, otu.tree_cast_like(b, a))


def error_feedback(compressor: Compressor) -> Compressor:
    """Classic error feedback around ``compressor`` for a stream of increments.

    Args:
      compressor: the inner compressor C.

    Returns:
      A :class:`~dfl.compression.base.Compressor` named ``"ef_<name>"`` with
      :class:`ErrorFeedbackState` (residual starts at zero).
    """

    def init(x: Any, key: jax.Array) -> ErrorFeedbackState:
        return ErrorFeedbackState(otu.tree_zeros_like(x), compressor.init(x, key))

    def compress(delta: Any, state: ErrorFeedbackState) -> tuple[Any, ErrorFeedbackState]:
        v = _add(delta, state.residual)
        encoded, inner = compressor.compress(v, state.inner)
        return encoded, ErrorFeedbackState(_sub(v, compressor.decompress(encoded)), inner)

    return Compressor(f"ef_{compressor.name}", init, compress, compressor.decompress)


def ef21(compressor: Compressor) -> Compressor:
    """EF21 (public-copy) error feedback around ``compressor`` for a stream of states.

    The public copy starts at zero, so the first message sends C(x_0) and every
    receiver can rebuild x̂ from the messages alone (no shared initialisation).

    Args:
      compressor: the inner compressor C.

    Returns:
      A :class:`~dfl.compression.base.Compressor` named ``"ef21_<name>"`` with
      :class:`EF21State`; ``decompress`` gives the increment D(m) of x̂.
    """

    def init(x: Any, key: jax.Array) -> EF21State:
        return EF21State(otu.tree_zeros_like(x), compressor.init(x, key))

    def compress(x: Any, state: EF21State) -> tuple[Any, EF21State]:
        encoded, inner = compressor.compress(_sub(x, state.public), state.inner)
        return encoded, EF21State(_add(state.public, compressor.decompress(encoded)), inner)

    return Compressor(f"ef21_{compressor.name}", init, compress, compressor.decompress)


def residual(state: EF21State, x: Any) -> Any:
    """The unsent residual ``x − x̂`` of an :func:`ef21` state for the current ``x``."""
    return _sub(x, state.public)
