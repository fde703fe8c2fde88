"""Build everything a run needs from a :class:`~dfl.config.schema.Config`.

The simulation runner and the node runner both start here, so a node process
rebuilds exactly the data partition, model, topology and algorithm that the
simulation uses for the same config and seed.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dfl import data as dfl_data
from dfl.algorithms import ALGORITHMS, Algorithm, build_algorithm
from dfl.compression import build_compressor
from dfl.config.optimizer_checks import learning_rate_problem
from dfl.config.schema import Config
from dfl.data.sizes import check_batch_size
from dfl.models import FunctionalModel, build_model
from dfl.privacy import PrivacyPlan, make_local_update, plan_privacy, with_message_noise
from dfl.robust.attacks import flip_labels
from dfl.robust.plan import ByzantinePlan, active, make_plan
from dfl.topology import build_schedule, check_requirements

INIT_STREAM, BATCH_STREAM, ALGORITHM_STREAM, STATE_STREAM = 0, 1, 2, 3
"""``fold_in(key(seed), stream)``: independent key streams of a run."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The pure objects of one run (no I/O, no Hydra).

    Attributes:
      config: the run's config.
      model: the functional model shared by every node.
      algorithm: the per-node algorithm.
      federated: the per-node data and the held-out test set.
      schedule: the mixing schedule (``weights(round)``).
      privacy: the resolved DP-SGD plan (σ, per-node sampling rates,
        accountant), or ``None`` without DP-SGD.
      byzantine: the attackers, attack and robust rule (:mod:`dfl.robust.plan`), or
        ``None`` for an ordinary run (``byzantine=none``, no attackers, no detection).
    """

    config: Config
    model: FunctionalModel
    algorithm: Algorithm
    federated: Any
    schedule: Any
    privacy: PrivacyPlan | None = None
    byzantine: ByzantinePlan | None = None

    @property
    def n(self) -> int:
        """Number of nodes."""
        return self.schedule.n

    def stream(self, stream: int, round_: int | None = None) -> jax.Array:
        """The key of ``stream``, folded with the round where one is given."""
        key = jax.random.fold_in(jax.random.key(self.config.seed), stream)
        return key if round_ is None else jax.random.fold_in(key, round_)


def validate_config(cfg: Config) -> None:
    """Raises ``ValueError`` naming every out-of-range scalar of ``cfg``."""
    checks = [
        ("rounds", cfg.rounds, cfg.rounds >= 1, "≥ 1"),
        ("eval_every", cfg.eval_every, cfg.eval_every >= 1, "≥ 1"),
        ("topology.n", cfg.topology.n, cfg.topology.n >= 2, "≥ 2: a decentralized run needs two"),
        ("algorithm.local_steps", cfg.algorithm.local_steps, cfg.algorithm.local_steps >= 1, "≥ 1"),
        ("data.batch_size", cfg.data.batch_size, cfg.data.batch_size >= 1, "≥ 1"),
        (
            "model.init",
            cfg.model.init,
            cfg.model.init in ("same", "independent"),
            "'same' or 'independent'",
        ),
    ]
    bad = [f"{name}={value!r} (expected {want})" for name, value, ok, want in checks if not ok]
    bad += filter(None, [learning_rate_problem(cfg.optimizer)])
    if bad:
        raise ValueError("invalid config: " + "; ".join(bad))


def model_options(cfg: Config) -> dict[str, Any]:
    """Constructor keywords of the configured model."""
    name = cfg.model.name
    if name == "mlp":
        return {"hidden": tuple(cfg.model.hidden)}
    if name == "cnn":
        hidden = cfg.model.hidden[0] if cfg.model.hidden else 64
        return {"channels": tuple(cfg.model.channels), "hidden": hidden}
    return {}


def algorithm_options(cfg: Config) -> dict[str, Any]:
    """Builder keywords of the configured algorithm (besides its local training).

    ``cfg.algorithm`` is the chosen algorithm's own schema
    (:mod:`dfl.config.algorithm_schema`), so every option in it is one the
    builder takes (``local_steps`` goes to the sampler, not the builder). A
    non-identity compressor is passed as ``compressor=``; an algorithm that
    cannot take one refuses it.
    """
    builder = ALGORITHMS.get(cfg.algorithm.name)
    if builder is None:
        raise ValueError(
            f"unknown algorithm {cfg.algorithm.name!r}; expected one of {sorted(ALGORITHMS)}"
        )
    accepted = inspect.signature(builder).parameters
    options = {
        k: v for k, v in dataclasses.asdict(cfg.algorithm).items() if k in accepted and k != "local"
    }
    if cfg.compression.name != "identity":
        if "compressor" not in accepted:
            raise ValueError(
                f"algorithm {cfg.algorithm.name!r} does not compress its messages; "
                f"compression={cfg.compression.name!r} needs one that does "
                "(e.g. choco, or dsgd_ef), or compression=identity"
            )
        compression = dataclasses.asdict(cfg.compression)
        options["compressor"] = build_compressor(compression.pop("name"), **compression)
    return options


def build_experiment(cfg: Config, optimizer: optax.GradientTransformation) -> Experiment:
    """Builds the model, algorithm, per-node data and mixing schedule of ``cfg``.

    Raises:
      ValueError: for a bad config value, or a W that misses the algorithm's
        requirements.
    """
    validate_config(cfg)
    federated = dfl_data.from_config(cfg.data, num_nodes=cfg.topology.n, seed=cfg.seed)
    check_batch_size(np.asarray(federated.train.counts), cfg.data.batch_size)
    model = build_model(
        cfg.model.name,
        input_shape=tuple(federated.feature_shape),
        num_classes=federated.num_classes,
        **model_options(cfg),
    )
    privacy = None
    if cfg.privacy.enabled:
        privacy = plan_privacy(
            cfg.privacy,
            counts=np.asarray(federated.train.counts),
            batch_size=cfg.data.batch_size,
            rounds=cfg.rounds,
            local_steps=cfg.algorithm.local_steps,
        )
    options = algorithm_options(cfg)
    local = make_local_update(model.loss, optimizer, privacy)
    algorithm = build_algorithm(cfg.algorithm.name, local, **options)
    if cfg.privacy.message_noise:
        if "compressor" in options:
            raise ValueError(
                "privacy.message_noise needs dense messages; it cannot be combined with "
                f"compression={cfg.compression.name!r}"
            )
        algorithm = with_message_noise(algorithm, cfg.privacy.message_noise)
    schedule = build_schedule(
        cfg.topology, cfg.mixing, seed=cfg.seed, requirements=algorithm.requirements
    )
    check_requirements(schedule, algorithm.requirements, algorithm.name)
    byzantine = None
    if active(cfg.byzantine):
        byzantine = make_plan(
            cfg.byzantine,
            schedule,
            algorithm=algorithm.name,
            missing_rule=algorithm.missing_rule,
            seed=cfg.seed,
        )
        if byzantine.attack.name == "label_flip":
            federated = flip_attackers_labels(federated, byzantine)
    return Experiment(cfg, model, algorithm, federated, schedule, privacy, byzantine)


def flip_attackers_labels(federated: Any, plan: ByzantinePlan) -> Any:
    """``federated`` with the attackers' training labels flipped (``C − 1 − y``)."""
    train = federated.train
    _, flipped = flip_labels(train.x, train.y, num_classes=federated.num_classes)
    rows = jnp.asarray(plan.byzantine)[:, None]
    y = jnp.where(rows, flipped, train.y)
    return dataclasses.replace(federated, train=train._replace(y=y))


def make_sampler(exp: Experiment) -> Callable[[jax.Array, Any], tuple[Any, jax.Array]]:
    """``sample(round_key, node_data) -> (batches, dropped)`` for all nodes, jitted.

    Without DP-SGD, batches are ``(x, y)`` drawn uniformly with replacement; with
    it, ``(x, y, mask)`` from the accounted sampler (Poisson or fixed size) and
    ``dropped`` counts the examples the Poisson cap cut (per node; else zeros).
    Node ``i`` uses ``fold_in(round_key, i)``, as :func:`make_node_sampler`.
    """
    cfg, plan = exp.config, exp.privacy

    def sample(key: jax.Array, node_data: Any) -> tuple[Any, jax.Array]:
        if plan is None:
            batches = dfl_data.sample_batches(
                key,
                node_data,
                batch_size=cfg.data.batch_size,
                local_steps=cfg.algorithm.local_steps,
            )
            return batches, jnp.zeros(node_data.counts.shape, jnp.int32)
        masked = plan.sample(key, node_data)
        return (masked.x, masked.y, masked.mask), masked.dropped.sum(axis=-1)

    return jax.jit(sample)


def make_node_sampler(exp: Experiment) -> Callable[..., tuple[Any, jax.Array]]:
    """``sample(node_key, node, x_i, y_i, count_i) -> (batches, dropped)`` for one node.

    ``node_key`` is ``fold_in(round_key, node)``; the result equals row ``node``
    of :func:`make_sampler`'s.
    """
    cfg, plan = exp.config, exp.privacy

    def sample(key, node, x_i, y_i, count_i):
        if plan is None:
            batches = dfl_data.sample_node_batches(
                key,
                x_i,
                y_i,
                count_i,
                batch_size=cfg.data.batch_size,
                local_steps=cfg.algorithm.local_steps,
            )
            return batches, jnp.zeros((), jnp.int32)
        masked = plan.sample_node(key, node, x_i, y_i, count_i)
        return (masked.x, masked.y, masked.mask), masked.dropped.sum()

    return sample


def init_node_params(exp: Experiment, node: int | jax.Array) -> Any:
    """Initial parameters of ``node``: shared or per node, as ``model.init`` says."""
    key = exp.stream(INIT_STREAM)
    if exp.config.model.init == "independent":
        key = jax.random.fold_in(key, node)
    return exp.model.init(key)


def init_node_state(exp: Experiment, node: int | jax.Array) -> Any:
    """The algorithm state of ``node`` (no node axis): what a node process starts from."""
    key = jax.random.fold_in(exp.stream(STATE_STREAM), node)
    return exp.algorithm.init(init_node_params(exp, node), key)


def init_state(exp: Experiment) -> Any:
    """The stacked state of all nodes, equal per node to :func:`init_node_state`."""
    return jax.jit(jax.vmap(lambda i: init_node_state(exp, i)))(jnp.arange(exp.n))
