"""``python -m dfl.inspect topology=NAME topology.n=N [mixing=RULE] [plot=FILE.png]``.

Prints one JSON object describing the mixing schedule of the composed config:
the mixing rule used (``mixing``; ``mixing_default`` says whether it is the
topology's natural rule, picked by the default ``mixing=auto``), graph
statistics, stochasticity, symmetry, ``spectral_gap``/``slem`` and, for
time-varying topologies, ``period`` and ``product_slem`` (see
:func:`dfl.topology.spectral.diagnose`), plus whether the configured algorithm
accepts this W (``requirements_ok`` and, if not, ``requirements_error``).
``plot=FILE.png`` also draws the graph, the spectrum and plain gossip's
consensus error against the ``|λ|^t`` bound. Nothing is trained.
"""

from __future__ import annotations

import json
import sys
import warnings

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from dfl.cli import to_config, user_errors
from dfl.config.store import conf_dir, register

register()


def inspect_config(cfg) -> dict:
    """The diagnostics of ``cfg``'s topology and mixing, and the algorithm's verdict."""
    import jax.numpy as jnp
    import optax

    from dfl.algorithms import build_algorithm, local_update, value_and_grad
    from dfl.topology import build_schedule, check_requirements
    from dfl.topology.spectral import diagnose, plot_diagnostics

    local = local_update(optax.sgd(0.0), value_and_grad(lambda p, b: jnp.zeros(())))
    algorithm = build_algorithm(cfg.algorithm.name, local)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schedule = build_schedule(
            cfg.topology, cfg.mixing, seed=cfg.seed, requirements=algorithm.requirements
        )
    report = diagnose(schedule)
    report["mixing"] = schedule.rule_name
    report["mixing_default"] = cfg.mixing.name == "auto"
    report["warnings"] = [str(w.message) for w in caught]
    report["algorithm"] = algorithm.name
    try:
        check_requirements(schedule, algorithm.requirements, algorithm.name)
        report["requirements_ok"], report["requirements_error"] = True, None
    except ValueError as e:
        report["requirements_ok"], report["requirements_error"] = False, str(e)
    if cfg.plot:
        plot_diagnostics(schedule, cfg.plot)
        report["plot"] = cfg.plot
    return report


def main(argv: list[str] | None = None) -> None:
    """Composes the config from ``argv`` overrides and prints the JSON diagnostics.

    Uses Hydra's compose API (no output directory, no logging set-up): a pure
    inspection writes nothing but the optional plot.
    """
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        try:
            cfg = compose(config_name="config", overrides=argv)
        except HydraException as e:
            cause = f"\n{e.__cause__}" if e.__cause__ is not None else ""  # e.g. the allowed values
            print(f"dfl: error: {e}{cause}", file=sys.stderr)
            raise SystemExit(2) from None
    report = user_errors(lambda: inspect_config(to_config(cfg)))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
