"""Models (flax nnx) and their functional form used by every algorithm."""

from __future__ import annotations

from flax import nnx

from dfl.models.cnn import CNN
from dfl.models.functional import FunctionalModel, Params, functionalize
from dfl.models.logreg import LogisticRegression
from dfl.models.mlp import MLP

MODELS = {"logreg": LogisticRegression, "mlp": MLP, "cnn": CNN}


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    **options,
) -> FunctionalModel:
    """Builds the named model as a :class:`FunctionalModel`.

    Args:
      name: one of ``logreg``, ``mlp``, ``cnn``.
      input_shape: shape of one example.
      num_classes: number of logits.
      **options: constructor keywords (e.g. ``hidden=(256,)`` for the MLP).

    Raises:
      ValueError: for an unknown name.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    cls = MODELS[name]

    def make(rngs: nnx.Rngs) -> nnx.Module:
        return cls(tuple(input_shape), num_classes, rngs=rngs, **options)

    return functionalize(make)


__all__ = [
    "CNN",
    "MLP",
    "MODELS",
    "FunctionalModel",
    "LogisticRegression",
    "Params",
    "build_model",
    "functionalize",
]
