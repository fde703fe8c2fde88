"""``python -m dfl.inspect``: one JSON object of spectral diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dfl.inspect import main


def inspect(capsys, *overrides: str) -> dict:
    main(list(overrides))
    return json.loads(capsys.readouterr().out)


def test_ring_spectrum_matches_closed_form(capsys):
    report = inspect(capsys, "topology=ring", "topology.n=8")
    slem = 1 / 3 + 2 / 3 * np.cos(2 * np.pi / 8)  # Metropolis–Hastings ring: 1/3 + 2/3 cos(2πk/n)
    assert report["slem"] == pytest.approx(slem)
    assert report["spectral_gap"] == pytest.approx(1 - slem)
    assert (report["n"], report["edges"], report["degree_min"], report["degree_max"]) == (
        8,
        8,
        2,
        2,
    )
    assert report["connected"] and report["symmetric"] and not report["directed"]
    assert report["row_stochastic"] and report["column_stochastic"]
    assert report["requirements_ok"]


def test_one_peer_period_averages_exactly(capsys):
    report = inspect(
        capsys, "topology=one_peer_exponential", "topology.n=16", "mixing=graph_defined"
    )
    assert report["period"] == 4
    assert report["product_slem"] == pytest.approx(0.0, abs=1e-12)
    assert report["slem"] == pytest.approx(1.0)  # a single round does not contract everything


def test_algorithm_requirements_are_checked(capsys):
    report = inspect(capsys, "topology=ring", "algorithm=fedavg")
    assert not report["requirements_ok"]
    assert "fedavg" in report["requirements_error"]


def test_plot_is_written(capsys, tmp_path):
    path = tmp_path / "ring.png"
    report = inspect(capsys, "topology=ring", "topology.n=6", f"plot={path}")
    assert report["plot"] == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_override_is_a_message(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["topology=ringg"])
    assert exc.value.code == 2
    assert "dfl: error:" in capsys.readouterr().err


def test_base_k_default_mixing_averages_exactly(capsys):
    report = inspect(capsys, "topology=base_k", "topology.n=12")
    assert (report["mixing"], report["mixing_default"]) == ("graph_defined", True)
    assert report["product_slem"] == pytest.approx(0.0, abs=1e-12)
    assert report["warnings"] == [] and report["requirements_ok"]
    forced = inspect(capsys, "topology=base_k", "topology.n=12", "mixing=metropolis_hastings")
    assert (forced["mixing"], forced["mixing_default"]) == ("metropolis_hastings", False)
    assert forced["product_slem"] > 0.1
    assert "defines its own weights" in forced["warnings"][0]


def test_one_peer_exponential_with_default_mixing(capsys):
    report = inspect(capsys, "topology=one_peer_exponential", "topology.n=16")
    assert report["mixing"] == "graph_defined" and report["requirements_ok"]
    assert report["product_slem"] == pytest.approx(0.0, abs=1e-12)


def test_directed_default_mixing_follows_the_algorithm(capsys):
    push = inspect(capsys, "topology=exponential_directed", "algorithm=push_sum")
    assert push["mixing"] == "column_stochastic" and push["requirements_ok"]
    dsgd = inspect(capsys, "topology=exponential_directed", "algorithm=dsgd")
    assert dsgd["mixing"] == "uniform" and dsgd["requirements_ok"]


def test_option_of_another_algorithm_is_a_message_naming_it(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["algorithm=dsgd", "algorithm.gamma=0.3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "dfl: error:" in err and "Key 'gamma' not in 'DSGDConfig'" in err
