"""Region-count bounds against published values and brute force, code distances, path density (exact walk vs
sampling vs closed forms), local complexity against the exact cross-polytope test."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import maso
from maso import bounds, measures
from maso.layers import Dense, relu


# ------------------------------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("widths, lower, serra, trivial", [
    ([2, 4], 11, 11, 16),
    ([2, 4, 4], 44, 121, 256),
    ([2, 8, 8, 8], 9472, 50653, 16_777_216),
])
def test_bounds_match_published_fixtures(widths, lower, serra, trivial):
    """Values from the theory notes' fixture table (n_0 = 2)."""
    assert bounds.montufar2014_lower(widths) == lower
    assert bounds.serra2018_upper(widths) == serra
    assert bounds.trivial_upper(widths) == trivial


def _serra_bruteforce(w):
    n0, ns = w[0], w[1:]
    total = 0
    for js in itertools.product(*[range(n + 1) for n in ns]):
        ok, cap = True, n0
        for j, n in zip(js, ns):
            if j > min(cap, n):
                ok = False
                break
            cap = min(cap, n - j)
        if ok:
            total += math.prod(math.comb(n, j) for j, n in zip(js, ns))
    return total


@pytest.mark.parametrize("widths", [[1, 3], [1, 3, 2], [2, 3, 5], [3, 2, 4], [3, 4, 4, 4], [2, 1, 5], [4, 6, 3, 5]])
def test_serra_dynamic_programme_equals_the_sum_over_J(widths):
    assert bounds.serra2018_upper(widths) == _serra_bruteforce(widths)


def test_serra_exact_for_one_input_dimension():
    """For n_0 = 1 the Serra bound is attained: a chain of 1-D 'sawtooth'-free layers with every unit
    cutting every piece... checked here on one layer, where it is 1 + n (n points on a line)."""
    for n in range(1, 9):
        assert bounds.serra2018_upper([1, n]) == n + 1 == bounds.zaslavsky(n, 1)


def test_bounds_errors():
    with pytest.raises(maso.errors.ParameterError, match="widths"):
        bounds.serra2018_upper([3])
    with pytest.raises(maso.errors.ParameterError, match="widths"):
        bounds.montufar2017_upper([2, 0, 3])
    with pytest.raises(maso.errors.ParameterError, match="widths"):
        bounds.trivial_upper([2, 2.5])
    with pytest.raises(maso.errors.ParameterError, match="input dimension"):
        bounds.montufar2014_lower([3, 2, 4])
    with pytest.raises(maso.errors.ParameterError, match="non-negative"):
        bounds.zaslavsky(-1, 2)
    net = maso.Network.sequential((1, 6), [maso.layers.MaxPool(1, 3, 3)])
    with pytest.raises(maso.errors.ParameterError, match="two-piece"):
        bounds.layer_widths(net)
    assert bounds.layer_widths(maso.mlp([3, 5, 4, 2], seed=0)) == (3, 5, 4)


# ---------------------------------------------------------------------------------------------- distances
def test_soft_distance_is_shared_randomness_expected_hamming():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(30,))
    q = rng.uniform(size=(30,))
    P = np.stack([1 - p, p], -1)
    Q = np.stack([1 - q, q], -1)
    assert np.isclose(measures.soft_distance(P, Q), np.abs(p - q).sum())
    u = rng.uniform(size=(200_000, 30))
    shared = ((u < p) != (u < q)).sum(1).mean()
    assert abs(shared - measures.soft_distance(P, Q)) < 0.02
    v = rng.uniform(size=(200_000, 30))
    indep = ((u < p) != (v < q)).sum(1).mean()
    assert abs(indep - measures.independent_mismatch(P, Q)) < 0.02
    assert np.isclose(measures.independent_mismatch(P, P), (2 * p * (1 - p)).sum())
    assert measures.soft_distance(P, P) == 0
    # three pieces: total variation per unit
    A = np.array([[[0.2, 0.5, 0.3]]])
    B = np.array([[[0.6, 0.1, 0.3]]])
    assert np.isclose(measures.soft_distance(A, B), 0.4)
    with pytest.raises(maso.errors.ShapeError):
        measures.soft_distance(np.ones(3), np.ones(3))
    with pytest.raises(maso.errors.ShapeError):
        measures.hamming(np.ones((2, 3)), np.ones((2, 4)))


def test_soft_distance_tends_to_hamming_as_temperature_vanishes():
    net = maso.mlp([3, 10, 10, 1], seed=2)
    x = np.random.default_rng(1).normal(size=(20, 3))
    y = np.random.default_rng(2).normal(size=(20, 3))
    ham = measures.hamming(net.codes(x), net.codes(y))
    prev = None
    for tau in [1.0, 0.1, 1e-3, 1e-6]:
        s = maso.soft.soften(net, temperature=tau)
        d = measures.soft_distance(s.soft_codes(x), s.soft_codes(y))
        err = np.abs(d - ham).max()
        assert prev is None or err <= prev + 1e-12
        prev = err
    assert prev < 1e-6


# ------------------------------------------------------------------------------------------- path density
def test_exact_path_density_equals_dense_sampling_and_closed_form():
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(12, 4)), rng.normal(size=12)
    net = maso.Network.sequential((4,), [Dense(W, b), relu(), Dense(rng.normal(size=(1, 12)), np.zeros(1))])
    x0, x1 = rng.normal(size=4), rng.normal(size=4)
    pd = measures.path_density(net, x0, x1)
    t = -(W @ x0 + b) / (W @ (x1 - x0))
    closed = int(((t > 0) & (t < 1)).sum())
    assert pd.exact and pd.total == closed
    assert np.isclose(pd.density, closed / np.linalg.norm(x1 - x0))
    ts = np.linspace(0, 1, 200_001)
    c = net.codes(x0 + ts[:, None] * (x1 - x0))
    assert pd.total == (c[1:] != c[:-1]).sum()
    sampled = measures.path_density(net, x0, x1, method="sampled", n_steps=50)
    assert sampled.converged and sampled.total == pd.total and not sampled.exact
    assert [n for n, _ in sampled.history][:2] == [50, 100]


def test_sampled_density_never_decreases_under_refinement_and_warns_when_unconverged():
    net = maso.mlp([2, 32, 32, 1], seed=5)
    a, b = np.array([-3.0, -3.0]), np.array([3.0, 2.0])
    exact = measures.path_density(net, a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", maso.errors.NumericalWarning)
        totals = [measures.path_density(net, a, b, method="sampled", n_steps=n, max_steps=n).total
                  for n in (4, 8, 16, 64, 256, 4096)]
    assert all(x <= y for x, y in itertools.pairwise(totals))
    assert totals[-1] <= exact.total
    with pytest.warns(maso.errors.NumericalWarning, match="did not converge"):
        r = measures.path_density(net, a, b, method="sampled", n_steps=2, max_steps=4)
    assert not r.converged


def test_soft_path_density_of_a_gelu_network_converges():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.GELU(), nn.Linear(16, 1)).double()
    net = maso.from_torch(model, torch.zeros(1, 3, dtype=torch.float64))
    a, b = np.array([-2.0, 0.0, 1.0]), np.array([2.0, 1.0, -1.0])
    pd = measures.path_density(net, a, b, codes="soft", rtol=1e-4)
    assert pd.converged and not pd.exact
    # one layer: the soft total is the total variation of p_k(t) along the path, sum_k |Phi(u_k(1)) - ...|
    # summed over monotone pieces; here each u_k is affine in t, so p_k is monotone and TV = |p(1) - p(0)|
    p0, p1 = net.soft_codes(a)[:, 1], net.soft_codes(b)[:, 1]
    assert np.isclose(pd.total, np.abs(p1 - p0).sum(), rtol=1e-4)
    hard = measures.path_density(net, a, b, codes="hard")
    assert not hard.exact and hard.converged
    with pytest.raises(maso.errors.ParameterError, match="exact"):
        measures.path_density(net, a, b, method="exact")


def test_path_density_errors():
    net = maso.mlp([2, 3, 1], seed=0)
    with pytest.raises(maso.errors.ShapeError):
        measures.path_density(net, np.zeros(3), np.zeros(2))
    with pytest.raises(maso.errors.ParameterError):
        measures.path_density(net, np.zeros(2), np.ones(2), codes="fuzzy")
    with pytest.raises(maso.errors.ParameterError):
        measures.path_density(net, np.zeros(2), np.ones(2), n_steps=0)
    with pytest.raises(maso.errors.ShapeError):
        measures.path_density(net, np.zeros(2), np.array([np.nan, 1.0]))
    assert measures.path_density(net, np.ones(2), np.ones(2)).density == 0.0


# --------------------------------------------------------------------------------------- local complexity
def test_local_complexity_first_layer_is_the_exact_cross_polytope_count():
    """A hyperplane w.y + b = 0 meets the cross-polytope conv{x +- r u_i} iff |w.x + b| <= r max_i |w.u_i|."""
    rng = np.random.default_rng(7)
    d, n = 6, 40
    W, b = rng.normal(size=(n, d)), rng.normal(size=n)
    net = maso.Network.sequential((d,), [Dense(W, b), relu(), Dense(rng.normal(size=(5, n)), rng.normal(size=5)),
                                         relu()])
    X = rng.normal(size=(25, d))
    for r in (0.05, 0.3, 1.0):
        lc = measures.local_complexity(net, X, r, n_directions=4, rng=11)
        U = lc.directions
        reach = r * np.abs(W @ U.T).max(axis=1)
        want = (np.abs(X @ W.T + b) <= reach).sum(axis=1)
        assert np.array_equal(lc.by_layer["1"], want)
        assert np.allclose(lc.fraction["1"], want / n)
        assert np.array_equal(lc.total, lc.by_layer["1"] + lc.by_layer["3"])


def test_local_complexity_zero_for_affine_nets_and_invariant_to_unit_rescaling():
    rng = np.random.default_rng(8)
    aff = maso.Network.sequential((3,), [Dense(rng.normal(size=(4, 3)), rng.normal(size=4))])
    assert measures.local_complexity(aff, rng.normal(size=(5, 3)), 1.0, rng=0).total.tolist() == [0] * 5
    W, b = rng.normal(size=(10, 3)), rng.normal(size=10)
    s = rng.uniform(0.1, 10, size=10)
    net1 = maso.Network.sequential((3,), [Dense(W, b), relu()])
    net2 = maso.Network.sequential((3,), [Dense(W * s[:, None], b * s), relu()])
    X = rng.normal(size=(30, 3))
    a = measures.local_complexity(net1, X, 0.5, rng=3)
    c = measures.local_complexity(net2, X, 0.5, rng=3)
    assert np.array_equal(a.total, c.total) and a.total.sum() > 0


def test_local_complexity_errors_and_explicit_frames():
    net = maso.mlp([3, 4, 1], seed=0)
    with pytest.raises(maso.errors.ParameterError, match="radius"):
        measures.local_complexity(net, np.zeros(3), 0.0)
    with pytest.raises(maso.errors.ParameterError, match="n_directions"):
        measures.local_complexity(net, np.zeros(3), 1.0, n_directions=4)
    with pytest.raises(maso.errors.ParameterError, match="dependent"):
        measures.local_complexity(net, np.zeros(3), 1.0, directions=[[1, 0, 0], [2, 0, 0]])
    with pytest.raises(maso.errors.ShapeError):
        measures.local_complexity(net, np.zeros(4), 1.0)
    lc = measures.local_complexity(net, np.zeros(3), 1.0, directions=[[2.0, 0, 0], [1.0, 1.0, 0]])
    assert np.allclose(lc.directions @ lc.directions.T, np.eye(2))
    assert lc.total.shape == (1,)


def test_path_density_batches_equal_single_paths():
    net = maso.mlp([3, 12, 12, 2], seed=9)
    rng = np.random.default_rng(9)
    A, B = rng.normal(size=(6, 3)) * 2, rng.normal(size=(6, 3)) * 2
    for method in ("exact", "sampled"):
        batch = measures.path_density(net, A, B, method=method, n_steps=64)
        assert len(batch) == 6
        for pd, a, b in zip(batch, A, B):
            one = measures.path_density(net, a, b, method=method, n_steps=64)
            assert pd.total == one.total and np.isclose(pd.length, np.linalg.norm(b - a))
            assert pd.exact == (method == "exact")
    with pytest.raises(maso.errors.ShapeError):
        measures.path_density(net, A, B[:5])
