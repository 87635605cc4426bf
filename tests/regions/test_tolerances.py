"""Tolerances that do not depend on scale: s * f has f's regions for any s > 0 float64 can hold, values that
overflow are a typed error, thin, tiny and far domains are refused with the reason (or handled exactly), bounds
that are not real numbers are refused, and the engine's thresholds are named constants."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
import torch

import maso
from maso import kernels as _kernels
from maso.layers import Dense, relu

SCALES = (1e-30, 1e-11, 1e10, 1e30, 1e200)


def _scaled(s: float, seed: int = 0, act: type = torch.nn.ReLU) -> maso.Network:
    """``s * f``: the first layer and every bias times ``s``, so every pre-activation scales by ``s`` and, for
    positively homogeneous units, the regions do not change."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = torch.nn.Sequential(torch.nn.Linear(2, 8), act(), torch.nn.Linear(8, 8), act(),
                                torch.nn.Linear(8, 1)).double().eval()
    with torch.no_grad():
        m[0].weight.mul_(s)
        for layer in (m[0], m[2], m[4]):
            layer.bias.mul_(s)
    return maso.from_torch(m, torch.zeros(1, 2, dtype=torch.float64))


def _codes(regions) -> set[bytes]:
    return {r.code.tobytes() for r in regions}


def _sampled_codes(net: maso.Network, lo, hi, n: int = 400) -> set[bytes]:
    """Codes of a dense grid of the box: an independent lower bound on the set of regions."""
    xs = [np.linspace(a, b, n) for a, b in zip(lo, hi)]
    pts = np.stack(np.meshgrid(*xs), axis=-1).reshape(-1, len(lo))
    return {c.tobytes() for c in np.asarray(net.codes(pts))}


@pytest.fixture(scope="module")
def reference():
    net = _scaled(1.0)
    ref = maso.enumerate_regions(net, maso.Box(-1, 1))
    assert ref.verify(rng=0).ok
    assert _sampled_codes(net, (-1, -1), (1, 1)) <= _codes(ref)  # every sampled code is a region
    return ref


# -------------------------------------------------------------------------------------------- scale
@pytest.mark.parametrize("method", ["vertices", "lp"])
@pytest.mark.parametrize("s", SCALES)
def test_scaled_network_has_the_unscaled_regions(reference, s, method):
    """Rows #47-#49: 19 of 22 regions at s = 1e-11, 1 at 1e-30 and 1e200, and verify() failing at 1e10 and
    1e30, all from absolute thresholds on unnormalised slopes and absolute map errors."""
    regions = maso.enumerate_regions(_scaled(s), maso.Box(-1, 1), method=method)
    assert _codes(regions) == _codes(reference) and len(regions) == len(reference)
    assert not regions.slivers
    report = regions.verify(rng=0)
    assert report.ok, report
    by_code = {r.code.tobytes(): r for r in reference}
    for r in regions:  # the same polytopes (distances are in input units) and maps times s
        ref = by_code[r.code.tobytes()]
        assert r.inradius == pytest.approx(ref.inradius, rel=1e-9)
        assert np.allclose(r.affine.A / s, ref.affine.A, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_independent_scales_per_layer(seed):
    """Each layer's pre-activations scaled by its own factor in 1e-60..1e60 (weights by the factor, biases by the
    running product): the regions of the unscaled network, by both methods."""
    rng = np.random.default_rng(seed)
    net = maso.mlp([2, 10, 10, 10, 1], seed=seed)
    dense = [i for i, node in enumerate(net.nodes) if isinstance(node.layer, Dense)]
    ref = _codes(maso.enumerate_regions(net, maso.Box(-1, 1)))
    factors = 10.0 ** rng.uniform(-60, 60, size=len(dense))
    layers, total = [], 1.0
    for i in range(1, len(net.nodes)):
        layer = net.nodes[i].layer
        if isinstance(layer, Dense):
            c = factors[dense.index(i)]
            total *= c
            layer = Dense(layer.weight * c, layer.bias * total)
        layers.append(layer)
    scaled = maso.Network.sequential((2,), layers)
    for method in ("vertices", "lp"):
        regions = maso.enumerate_regions(scaled, maso.Box(-1, 1), method=method)
        assert _codes(regions) == ref
        assert regions.verify(rng=seed, n_points=200).ok


@pytest.mark.skipif(not _kernels.AVAILABLE, reason="numba not installed (extra 'fast')")
@pytest.mark.parametrize("s", (1e-30, 1e200))
def test_scaled_network_without_kernels_is_bit_identical(monkeypatch, reference, s):
    from maso.regions._parallel import _pack_regions

    fast = _pack_regions(list(maso.enumerate_regions(_scaled(s), maso.Box(-1, 1), method="vertices")))
    for name in _kernels._NAMES:
        monkeypatch.setattr(_kernels, name, None)
    slow = _pack_regions(list(maso.enumerate_regions(_scaled(s), maso.Box(-1, 1), method="vertices")))
    assert fast["n"] == slow["n"] == len(reference)
    for key in slow:
        assert np.array_equal(fast[key], slow[key]), key


@pytest.mark.parametrize("act", [torch.nn.LeakyReLU, maso.nn.Maxout], ids=["leaky", "maxout"])
def test_scale_invariance_of_other_homogeneous_units(act):
    width = 2 if act is not torch.nn.LeakyReLU else 1

    def build(s):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            if act is torch.nn.LeakyReLU:
                m = torch.nn.Sequential(torch.nn.Linear(2, 6), act(0.1), torch.nn.Linear(6, 6), act(0.1),
                                        torch.nn.Linear(6, 1))
            else:
                m = torch.nn.Sequential(torch.nn.Linear(2, 6 * width), act(width), torch.nn.Linear(6, 6 * width),
                                        act(width), torch.nn.Linear(6, 1))
        m = m.double().eval()
        with torch.no_grad():
            m[0].weight.mul_(s)
            for layer in (m[0], m[2], m[4]):
                layer.bias.mul_(s)
        return maso.from_torch(m, torch.zeros(1, 2, dtype=torch.float64))

    ref = _codes(maso.enumerate_regions(build(1.0), maso.Box(-1, 1)))
    for s in (1e-25, 1e25):
        regions = maso.enumerate_regions(build(s), maso.Box(-1, 1))
        assert _codes(regions) == ref
        assert regions.verify(rng=1).ok


def test_values_that_overflow_float64_are_a_domain_error():
    """A network whose slopes or maps are infinite on the domain: a typed error naming the overflow, not one
    region with NumPy overflow warnings (which the test configuration turns into errors)."""
    big = maso.Network.sequential((2,), [Dense(np.array([[1.5e308, 1.5e308], [1.0, -1.0]]), np.zeros(2)), relu(),
                                         Dense(np.array([[2.0, 1.0], [1.0, 1.0]]), np.zeros(2)), relu(),
                                         Dense(np.ones((1, 2)), np.zeros(1))])
    for method in ("vertices", "lp"):
        with pytest.raises(maso.errors.DomainError, match="overflow float64"):
            maso.enumerate_regions(big, maso.Box(-1, 1), method=method)
    maps = maso.Network.sequential((2,), [Dense(np.eye(2), np.array([0.1, -0.2])), relu(),
                                          Dense(np.full((1, 2), 1e308), np.zeros(1)),
                                          Dense(np.full((1, 1), 1e10), np.zeros(1))])
    with pytest.raises(maso.errors.DomainError, match="overflow float64"):
        maso.enumerate_regions(maps, maso.Box(-1, 1))


def test_slopes_near_underflow_are_a_domain_error():
    with pytest.raises(maso.errors.DomainError, match="underflow"):
        maso.enumerate_regions(_scaled(1e-300), maso.Box(-1, 1))


# ------------------------------------------------------------------------------------------- domains
@pytest.mark.parametrize("method", ["vertices", "lp"])
def test_box_thinner_than_tol_is_refused_and_resolved_below_it(method):
    """Row #27: Box([0, 0], [1, 1e-10]) gave 2 regions of inradius 1e6 (the vertex method merged the box's two
    long sides: its incidence tolerance was 1e-10)."""
    net = maso.mlp([2, 8, 8, 1], seed=0)
    thin = maso.Box([0, 0], [1, 1e-10])
    with pytest.raises(maso.errors.DomainError, match="thinner than tol"):
        maso.enumerate_regions(net, thin, method=method)
    regions = maso.enumerate_regions(net, thin, tol=1e-12, method=method)
    assert all(1e-12 < r.inradius <= 5e-11 * (1 + 1e-6) for r in regions)  # LP rounding: ~1e-18
    assert regions.verify(rng=0).ok
    # every code of a dense sampling of the strip is a region, and the volumes fill it
    xs = np.linspace(0, 1, 20001)
    pts = np.stack([xs, np.full_like(xs, 5e-11)], axis=1)
    assert {c.tobytes() for c in net.codes(pts)} <= _codes(regions)
    assert sum(r.volume() for r in regions) == pytest.approx(1e-10, rel=1e-9)


@pytest.mark.parametrize("method", ["vertices", "lp"])
def test_tiny_box(method):
    """Row #28: Box([0, 0], [1e-12, 1e-12]) raised a QhullError from deep inside."""
    net = maso.mlp([2, 8, 8, 1], seed=0)
    for tol in (1e-9, 1e-12):  # inradius 5e-13 is below every accepted tol
        with pytest.raises(maso.errors.DomainError, match="thinner than tol"):
            maso.enumerate_regions(net, maso.Box([0, 0], [1e-12, 1e-12]), tol=tol, method=method)
    regions = maso.enumerate_regions(net, maso.Box([0, 0], [1e-11, 1e-11]), tol=1e-12, method=method)
    assert len(regions) == 1 and regions[0].inradius == pytest.approx(5e-12, rel=1e-6)
    assert regions[0].volume() == pytest.approx(1e-22, rel=1e-9)
    assert regions.verify(rng=0).ok


def test_far_domain_gives_the_translated_networks_regions():
    """Distances are zero relative to the domain's coordinates: a box around (300, 300) has the regions of the
    network translated to the origin."""
    net = maso.mlp([2, 8, 8, 1], seed=1)
    W, b = net.nodes[1].layer.weight, net.nodes[1].layer.bias
    shift = np.array([300.0, 300.0])
    moved = maso.Network.sequential((2,), [Dense(W / 150, b - W @ shift / 150)]
                                    + [net.nodes[i].layer for i in range(2, len(net.nodes))])
    far = maso.enumerate_regions(moved, maso.Box(shift - 150, shift + 150))
    near = maso.enumerate_regions(net, maso.Box(-1, 1))
    assert _codes(far) == _codes(near)
    assert far.verify(rng=0).ok


def test_domain_beyond_float64_resolution_is_refused():
    with pytest.raises(maso.errors.DomainError, match="resolution"):
        maso.enumerate_regions(maso.mlp([2, 4, 1], seed=0), maso.Box([1e11, 1e11], [1e11 + 1, 1e11 + 1]))


@pytest.mark.parametrize("lo, hi, what", [
    ([1j, 0], [1, 1], "complex"),
    (np.array([1j, 0]), np.array([1 + 0j, 1]), "complex"),
    (np.array([0, 0], dtype=np.complex64), np.array([1, 1], dtype=np.complex64), "complex"),
    (["a", 0], [1, 1], "dtype <U.*'a'"),
    ([None, 0], [1, 1], "None"),
    ([[0, 1], [0]], [1, 1], "could not be read"),
    ([0, 0], [1, 1, 1], "same length"),
    ([], [], "at least one coordinate"),
])
def test_box_bounds_that_are_not_real_numbers(lo, hi, what):
    """Rows #25, #26: complex bounds lost their imaginary part with a ComplexWarning, strings gave a bare
    ValueError."""
    with pytest.raises(maso.errors.DomainError, match=what):
        maso.Box(lo, hi)


def test_box_accepts_integers_tensors_and_numpy_scalars():
    assert np.array_equal(maso.Box(torch.zeros(2), torch.ones(2)).hi, [1.0, 1.0])
    assert maso.Box(np.float32(-1), 1).lo.dtype == np.float64
    assert np.array_equal(maso.Box([0, 0], [2, 3]).hi, [2.0, 3.0])


def test_polytope_refuses_complex_and_strings():
    with pytest.raises(maso.errors.ShapeError, match="complex"):
        maso.Polytope(np.array([[1j, 0.0]]), np.ones(1))
    with pytest.raises(maso.errors.ShapeError, match="real numbers"):
        maso.Polytope([[1.0, 0.0]], ["x"])


def test_huge_polytope_rows_are_normalised_without_overflow():
    rows = np.vstack([np.eye(2), -np.eye(2)]) * 1e200
    regions = maso.enumerate_regions(maso.mlp([2, 4, 1], seed=0), maso.Polytope(rows, np.full(4, 1e200)))
    assert _codes(regions) == _codes(maso.enumerate_regions(maso.mlp([2, 4, 1], seed=0), maso.Box(-1, 1)))


# ------------------------------------------------------------------------------------------ constants
@pytest.mark.parametrize("module", ["maso.regions._engine", "maso.regions._lp_engine", "maso.regions._vertex_engine",
                                    "maso.regions._geometry", "maso.regions._certificate", "maso.regions._driver",
                                    "maso.regions._parallel", "maso.regions._tolerances", "maso.regions._engines",
                                    "maso.core.domain"])
def test_tolerances_are_named_constants(module):
    """Every small float literal (a tolerance) in a function body is a module-level constant with its reason
    (public parameters' defaults excepted)."""
    import importlib

    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    inline = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for sub in (s for stmt in node.body for s in ast.walk(stmt)):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, float) and 0 < abs(sub.value) <= 1e-3:
                    inline.append((node.name, sub.value))
    assert not inline, inline
