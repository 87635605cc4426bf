"""The theory as properties (hypothesis): soft/hard limits, activation identities exactly and by Monte Carlo,
region-count bounds, 1-D densities and local complexity.

Strategies build valid inputs directly (a seed drawn by hypothesis feeds NumPy for the weights); the default
profile is derandomised (tests/conftest.py) and every property runs at least 200 examples.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import maso
from maso import bounds, measures, soft
from maso.layers import Dense, Maxout, absolute, leaky_relu, relu

N = 200
DT = torch.float64
ACTS = {"relu": relu, "leaky": lambda: leaky_relu(0.2), "abs": absolute}


@st.composite
def networks(draw, max_in=3, max_width=6, max_depth=3, acts=("relu", "leaky", "abs", "maxout"), bias=True):
    """A random chain network: Dense + spline layers (ReLU, leaky ReLU, abs or maxout), Dense output."""
    seed = draw(st.integers(0, 2**32 - 1))
    d = draw(st.integers(1, max_in))
    depth = draw(st.integers(1, max_depth))
    widths = [d] + [draw(st.integers(1, max_width)) for _ in range(depth)]
    act = draw(st.sampled_from(acts))
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in itertools.pairwise(widths):
        k = 2 if act == "maxout" else 1
        W = rng.normal(size=(b * k, a)) / math.sqrt(a)
        layers += [Dense(W, rng.normal(size=b * k) * 0.5 if bias else np.zeros(b * k))]
        layers.append(Maxout(2) if act == "maxout" else ACTS[act]())
    layers.append(Dense(rng.normal(size=(2, widths[-1])), rng.normal(size=2) if bias else np.zeros(2)))
    return maso.Network.sequential((d,), layers), rng


def _points(rng, net, n=16, scale=2.0):
    return rng.normal(size=(n, net.input_dim)) * scale


# -------------------------------------------------------------------------------------------- soft limits
@settings(max_examples=N)
@given(case=networks())
def test_soft_to_hard_limit(case):
    """beta -> 1 (temperature -> 0) gives back the hard MASO network, its outputs and its codes."""
    net, rng = case
    x = _points(rng, net)
    s = soft.soften(net, beta=1 - 1e-13)
    np.testing.assert_allclose(s(x), net(x), rtol=0, atol=1e-9)
    hard = net.codes(x)
    np.testing.assert_array_equal(s.soft_codes(x).argmax(-1), hard)
    np.testing.assert_array_equal(s.codes(x), hard)


@settings(max_examples=N)
@given(seed=st.integers(0, 2**32 - 1), R=st.integers(1, 4), C=st.integers(1, 3))
def test_soft_to_linear_limit(seed, R, C):
    """beta -> 0 (temperature -> inf) gives the uniform mixture: the mean of the pieces (a linear map)."""
    rng = np.random.default_rng(seed)
    S, B = rng.normal(size=(R, C)), rng.normal(size=(R, C))
    base = maso.layers.Elementwise(S, B)
    u = torch.as_tensor(rng.normal(size=(5, C, 3)) * 3)
    y = maso.Network.sequential((C, 3), [soft.Soft(base, "logistic", 1e13)])(u)
    want = (torch.as_tensor(S).mean(0)[:, None] * u + torch.as_tensor(B).mean(0)[:, None])
    torch.testing.assert_close(y, want, rtol=1e-9, atol=1e-9)
    mo = maso.Network.sequential((R * C,), [soft.Soft(Maxout(R), "logistic", 1e13)])
    v = torch.as_tensor(rng.normal(size=(4, R * C)))
    torch.testing.assert_close(mo(v), v.reshape(4, C, R).mean(-1), rtol=1e-9, atol=1e-9)


@settings(max_examples=N)
@given(seed=st.integers(0, 2**32 - 1), R=st.integers(2, 5), shift=st.floats(-50, 50), tau=st.floats(0.05, 20))
def test_soft_code_is_a_distribution_invariant_to_shifting_all_scores(seed, R, shift, tau):
    rng = np.random.default_rng(seed)
    S, B = rng.normal(size=R), rng.normal(size=R)
    u = torch.as_tensor(rng.normal(size=(6, 4)) * 3)
    p1 = maso.Network.sequential((4,), [soft.Soft(maso.layers.Elementwise(S, B), "logistic", tau)]).soft_codes(u)
    p2 = maso.Network.sequential((4,), [soft.Soft(maso.layers.Elementwise(S, B + shift), "logistic", tau)])
    p2 = p2.soft_codes(u)
    assert bool((p1 >= 0).all()) and torch.allclose(p1.sum(-1), torch.ones(6, 4, dtype=DT), atol=1e-12)
    torch.testing.assert_close(p1, p2, rtol=1e-9, atol=1e-12)


@settings(max_examples=N)
@given(case=networks(acts=("relu", "leaky", "abs")), beta=st.floats(0.05, 0.95))
def test_expected_affine_map_reproduces_soft_network(case, beta):
    net, rng = case
    s = soft.soften(net, beta=beta)
    x = _points(rng, net, n=4)
    f = s.expected_affine_at(x)
    np.testing.assert_allclose(np.einsum("nmd,nd->nm", f.A, x) + f.b, s(x), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------- activation identities
FINITE = st.floats(-30, 30, allow_nan=False)


@settings(max_examples=N)
@given(u=st.lists(FINITE, min_size=1, max_size=32), beta=st.floats(0.02, 0.98))
def test_silu_gelu_sigmoid_tanh_identities_exactly(u, beta):
    t = torch.tensor(u, dtype=DT)
    run = lambda layer: maso.Network.sequential((len(u),), [layer])(t)
    c = beta / (1 - beta)
    torch.testing.assert_close(run(soft.silu(beta)), t * torch.sigmoid(c * t), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(run(soft.silu()), F.silu(t), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(run(soft.gelu()), F.gelu(t), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(run(soft.gelu("tanh")), F.gelu(t, approximate="tanh"), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(run(soft.sigmoid()), torch.sigmoid(t), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(run(soft.tanh()), torch.tanh(t), rtol=1e-14, atol=4e-16)
    torch.testing.assert_close(run(soft.beta_vq(absolute(), beta)), t * torch.tanh(c * t), rtol=1e-13,
                               atol=1e-15)


@settings(max_examples=N)
@given(u=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=32))
def test_gpt2_gate_hard_code_is_the_sign(u):
    t = torch.tensor(u, dtype=DT)
    net = maso.Network.sequential((len(u),), [soft.gelu("tanh")])
    p = net.soft_codes(t)[:, 1]
    # p is monotone with p(0) = 1/2; in float64 it rounds to exactly 1/2 within ~1e-16 of 0, so the strict
    # comparison holds away from that band and the weak one everywhere. The hard code compares u itself.
    assert bool(((p >= 0.5) | (t <= 0)).all()) and bool(((p <= 0.5) | (t >= 0)).all())
    far = t.abs() > 1e-15
    assert torch.equal((p > 0.5)[far], (t > 0)[far])
    assert torch.equal(net.codes(t).bool(), t > 0)


@settings(max_examples=N)
@given(u=st.floats(-4, 4), seed=st.integers(0, 2**32 - 1))
def test_perturbed_max_monte_carlo_gives_silu_and_gelu(u, seed):
    """Hard selection between pieces {0, u} with noisy scores, un-noised output: Gumbel(0, 1) noise -> SiLU,
    N(0, 1/2) noise on each score -> GELU (exactly, in expectation)."""
    rng = np.random.default_rng(seed)
    n = 400_000
    g = rng.gumbel(size=(n, 2))
    y_gumbel = np.where(u + g[:, 1] > g[:, 0], u, 0.0).mean()
    e = rng.normal(scale=math.sqrt(0.5), size=(n, 2))
    y_gauss = np.where(u + e[:, 1] > e[:, 0], u, 0.0).mean()
    silu = float(F.silu(torch.tensor(u, dtype=DT)))
    gelu = float(F.gelu(torch.tensor(u, dtype=DT)))
    for got, want, p in ((y_gumbel, silu, 1 / (1 + math.exp(-u))), (y_gauss, gelu, 0.5 * math.erfc(-u / 2**0.5))):
        sd = abs(u) * math.sqrt(p * (1 - p) / n)
        assert abs(got - want) <= 6 * sd + 1e-12


@settings(max_examples=N)
@given(case=networks(max_depth=2))
def test_soft_distance_properties(case):
    """L1 soft distance: 0 iff equal codes, at most the code length, -> Hamming as temperature -> 0."""
    net, rng = case
    x, y = _points(rng, net, 8), _points(rng, net, 8)
    s = soft.soften(net, temperature=1.0)
    P, Q = s.soft_codes(x), s.soft_codes(y)
    d = measures.soft_distance(P, Q)
    assert np.all(d >= 0) and np.all(d <= net.n_units + 1e-12)
    assert np.all(measures.soft_distance(P, P) == 0)
    assert np.all((d == 0) == np.all(P == Q, axis=(1, 2)))
    cold = soft.soften(net, temperature=1e-12)
    d0 = measures.soft_distance(cold.soft_codes(x), cold.soft_codes(y))
    ham = measures.hamming(net.codes(x), net.codes(y))
    # the limit holds where no unit sits within ~1e-10 of a tie
    np.testing.assert_allclose(d0, ham, atol=1e-6)


# ----------------------------------------------------------------------------------------------- bounds
@settings(max_examples=N)
@given(n0=st.integers(1, 4), hidden=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_bound_ordering_and_serra_equals_zaslavsky_for_one_layer(n0, hidden):
    w = [n0] + [max(h, n0) for h in hidden]
    lower, serra = bounds.montufar2014_lower(w), bounds.serra2018_upper(w)
    m17, trivial = bounds.montufar2017_upper(w), bounds.trivial_upper(w)
    assert lower <= serra <= m17 <= trivial
    w_any = [n0] + hidden  # widths below n_0 are fine for the upper bounds
    assert bounds.serra2018_upper(w_any) <= bounds.montufar2017_upper(w_any) <= bounds.trivial_upper(w_any)
    assert bounds.serra2018_upper([n0, hidden[0]]) == bounds.zaslavsky(hidden[0], n0)


@settings(max_examples=N)
@given(case=networks(max_in=2, max_width=4, max_depth=2, acts=("relu",)))
def test_enumerated_counts_never_exceed_the_bounds(case):
    net, _ = case
    d = net.input_dim
    regions = maso.enumerate_regions(net, maso.Box(-3 * np.ones(d), 3 * np.ones(d)), progress=False)
    assert len(regions) <= bounds.serra2018_upper(bounds.layer_widths(net))


@settings(max_examples=N)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), d=st.integers(1, 2))
def test_generic_single_layer_count_equals_zaslavsky(seed, n, d):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(n, d)), rng.normal(size=n)
    # the box must hold a point of every intersection of the hyperplanes (vertices when n >= d)
    flats = [np.linalg.lstsq(W[list(s)], -b[list(s)], rcond=None)[0]
             for k in range(1, min(n, d) + 1) for s in itertools.combinations(range(n), k)]
    half = 1.5 * max(1.0, float(np.max(np.abs(flats))))
    net = maso.Network.sequential((d,), [Dense(W, b), relu()])
    regions = maso.enumerate_regions(net, maso.Box(-half * np.ones(d), half * np.ones(d)), progress=False)
    assert len(regions) == bounds.zaslavsky(n, d) == bounds.serra2018_upper([d, n])


# ---------------------------------------------------------------------------------------- paths and density
@settings(max_examples=N)
@given(case=networks(bias=False, acts=("relu", "leaky", "abs", "maxout")))
def test_bias_free_networks_have_zero_scaling_density(case):
    net, rng = case
    a = _points(rng, net, 1)[0]
    rc = maso.ray_crossings(net, a, 1e-3, 100.0)
    assert len(rc.t) == 0
    s = np.exp(rng.uniform(np.log(1e-3), np.log(100), size=8))
    np.testing.assert_array_equal(net.codes(s[:, None] * a[None]), np.repeat(net.codes(a)[None], 8, 0))


@settings(max_examples=N)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), d=st.integers(1, 5))
def test_one_layer_segment_crossings_equal_the_closed_form(seed, n, d):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(n, d)), rng.normal(size=n)
    net = maso.Network.sequential((d,), [Dense(W, b), relu()])
    x0, x1 = rng.normal(size=d) * 2, rng.normal(size=d) * 2
    t = -(W @ x0 + b) / (W @ (x1 - x0))
    inside = np.sort(t[(t > 0) & (t < 1)])
    sc = maso.segment_crossings(net, x0, x1)
    np.testing.assert_allclose(sc.t, inside, rtol=0, atol=1e-12)
    assert measures.hamming(net.codes(x0), net.codes(x1)) == len(inside)


@settings(max_examples=N)
@given(case=networks(max_width=8), steps=st.integers(1, 64), k=st.integers(2, 4))
def test_summed_step_hamming_never_decreases_under_refinement(case, steps, k):
    """Refining a path's grid (every old point kept) never lowers the summed step Hamming, which is at least the
    endpoint Hamming and at most the exact number of unit flips."""
    net, rng = case
    a, b = _points(rng, net, 2, 3.0)

    def summed(n):
        t = np.linspace(0, 1, n + 1)
        c = net.codes(a + t[:, None] * (b - a))
        return int((c[1:] != c[:-1]).sum())

    coarse, fine = summed(steps), summed(steps * k)
    exact = measures.path_density(net, a, b).total
    assert measures.hamming(net.codes(a), net.codes(b)) <= coarse <= fine <= exact


@settings(max_examples=N)
@given(case=networks(max_in=3, max_depth=2, acts=("relu",)), lam=st.floats(0.01, 100))
def test_density_scale_conventions(case, lam):
    """Rescaling the input by lam and the first layer by 1/lam keeps the crossings and divides the density by
    lam; rescaling only the path keeps the count per unit length of the original path."""
    net, rng = case
    a, b = _points(rng, net, 2)
    first = net.nodes[1].layer
    scaled = maso.Network.sequential(
        (net.input_dim,), [Dense(first.weight / lam, first.bias)] + [n.layer for n in net.nodes[2:]])
    p = measures.path_density(net, a, b)
    q = measures.path_density(scaled, lam * a, lam * b)
    assert p.total == q.total
    assert math.isclose(q.density, p.density / lam, rel_tol=1e-9, abs_tol=1e-12)


# ----------------------------------------------------------------------------------------- local complexity
@settings(max_examples=N)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 6), n=st.integers(1, 20), k=st.integers(1, 6),
       r1=st.floats(1e-3, 2), grow=st.floats(1, 5))
def test_local_complexity_exact_in_the_first_layer_and_monotone_in_radius(seed, d, n, k, r1, grow):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(n, d)), rng.normal(size=n)
    net = maso.Network.sequential((d,), [Dense(W, b), relu(), Dense(rng.normal(size=(3, n)), np.zeros(3)), relu()])
    X = rng.normal(size=(8, d))
    frame = rng.normal(size=(min(k, d), d))
    small = measures.local_complexity(net, X, r1, directions=frame)
    large = measures.local_complexity(net, X, r1 * grow, directions=frame)
    U = small.directions
    for lc in (small, large):
        reach = lc.radius * np.abs(W @ U.T).max(axis=1)
        margin = np.abs(X @ W.T + b)
        exact = (margin <= reach).sum(axis=1)
        near = np.isclose(margin, reach, rtol=1e-9, atol=1e-12).sum(axis=1)  # ties decided by rounding
        assert np.all(np.abs(lc.by_layer["1"] - exact) <= near)
    assert np.all(small.by_layer["1"] <= large.by_layer["1"])
