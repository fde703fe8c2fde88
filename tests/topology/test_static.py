"""Static builders: structure and closed-form spectra."""

from __future__ import annotations

import numpy as np
import pytest

from dfl.topology import static
from dfl.topology.mixing import max_degree, metropolis_hastings, uniform


def eig(W: np.ndarray) -> np.ndarray:
    return np.sort(np.linalg.eigvalsh(W))


@pytest.mark.parametrize("n", [3, 4, 7, 16])
def test_ring_mh_spectrum(n):
    W = metropolis_hastings(static.ring(n))
    expected = 1 / 3 + 2 / 3 * np.cos(2 * np.pi * np.arange(n) / n)
    np.testing.assert_allclose(eig(W), np.sort(expected), atol=1e-12)


@pytest.mark.parametrize(("rows", "cols"), [(3, 3), (3, 5), (4, 4)])
def test_torus_mh_spectrum(rows, cols):
    W = metropolis_hastings(static.torus(rows * cols, rows, cols))
    a, b = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    lam_A = 2 * np.cos(2 * np.pi * a / rows) + 2 * np.cos(2 * np.pi * b / cols)
    np.testing.assert_allclose(eig(W), np.sort(((1 + lam_A) / 5).ravel()), atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_hypercube_mh_spectrum(d):
    from math import comb

    W = metropolis_hastings(static.hypercube(2**d))
    expected = [(1 + d - 2 * j) / (d + 1) for j in range(d + 1) for _ in range(comb(d, j))]
    np.testing.assert_allclose(eig(W), np.sort(expected), atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_complete_uniform_is_exactly_j(n):
    W = uniform(static.complete(n))
    assert np.array_equal(W, np.full((n, n), 1.0 / n))


@pytest.mark.parametrize("n", [3, 6, 10])
def test_star_spectrum(n):
    # MH on the star is I - L/n, the Laplacian spectrum is {0, 1 (n-2 times), n}.
    W = metropolis_hastings(static.star(n))
    expected = [1.0] + [1 - 1 / n] * (n - 2) + [0.0]
    np.testing.assert_allclose(eig(W), np.sort(expected), atol=1e-12)
    np.testing.assert_allclose(max_degree(static.star(n)), W, atol=1e-12)


def test_grid_and_path_structure():
    g = static.grid(12, 3, 4)
    assert g.num_edges == 3 * 3 + 2 * 4
    assert g.name == "grid(3x4)"
    assert static.path(5).num_edges == 4 and static.path(5).is_connected()
    assert static.grid(16).name == "grid(4x4)"
    assert static.torus(12, rows=3).name == "torus(3x4)"
    assert (static.torus(16).degree == 4).all()


def test_grid_wrong_shape_names_values():
    with pytest.raises(ValueError, match=r"rows=3, cols=5 \(rows\*cols=15\) for n=16"):
        static.torus(16, 3, 5)
    with pytest.raises(ValueError, match="rows\\*cols must equal n"):
        static.grid(10, 3, 0)


def test_hypercube_needs_power_of_two():
    with pytest.raises(ValueError, match=r"power of 2, found n=12 \(nearest: 8 or 16\)"):
        static.hypercube(12)


@pytest.mark.parametrize("n", [2, 5, 8, 12, 16])
def test_exponential_graph(n):
    tau = int(np.ceil(np.log2(n)))
    d = static.exponential(n, directed=True)
    assert d.directed or n <= 2
    assert (d.in_degree == tau).all() and (d.out_degree == tau).all()
    W = uniform(d)  # the paper's weights 1/(tau+1), doubly stochastic
    np.testing.assert_allclose(W[W > 0], 1 / (tau + 1))
    np.testing.assert_allclose(W.sum(0), 1.0)
    i = 0
    assert set(d.in_neighbours(i).tolist()) == {(2**j) % n for j in range(tau)}
    u = static.exponential(n)
    assert not u.directed and u.is_connected()
