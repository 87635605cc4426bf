"""Exact mode (sympy): rational twins of float networks, exact maps and regions, symbolic and piecewise forms,
and exact verification of enumerations, degenerate arrangements included; it must catch broken enumerations."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from cases import degenerate_nets as _degenerate_nets, mlp_from_weights as _mlp

import maso
from maso import exact


def _box(d, b=1.0):
    return maso.Box(-b * np.ones(d), b * np.ones(d))


@pytest.mark.parametrize("seed, widths, act", [(0, [2, 4, 3, 1], "relu"), (1, [3, 5, 2], "leaky_relu"),
                                              (2, [2, 3, 3, 2], "abs"), (3, [4, 6, 2], "maxout")])
def test_exact_twin_agrees_with_float_network(seed, widths, act):
    kw = {"pieces": 3} if act == "maxout" else {}
    net = maso.mlp(widths, seed=seed, activation=act, **kw)
    en = exact.from_network(net)
    rng = np.random.default_rng(seed)
    for x in rng.normal(size=(10, widths[0])):
        y = en(x)
        assert np.allclose(np.array(y.T.tolist()[0], dtype=float), net(x), rtol=1e-12, atol=1e-14)
        code = en.code(x)
        assert np.array_equal(code, net.codes(x))
        A, b = en.affine_map(code)
        f = net.affine_at(x)
        assert np.allclose(np.array(A.tolist(), dtype=float), f.A, atol=1e-13)
        assert np.allclose(np.array(b.T.tolist()[0], dtype=float), f.b, atol=1e-13)
        # the exact map reproduces the exact output exactly (no rounding anywhere)
        assert A * sp.Matrix([exact.rational(v) for v in x]) + b == y
        H, h = en.region(code)
        P = net.region_at(x)
        assert H.shape == P.A.shape
        assert all(v <= 0 for v in (H * sp.Matrix([exact.rational(v) for v in x]) - h))


def test_rational_weights_and_symbolic_forms():
    # |x0 - x1| and a ReLU: y = 2*relu(x0 - x1) + relu(x0 + x1 - 1)
    en = exact.from_weights([([[1, -1], [1, 1]], [0, -1]), ([[2, 1]], [0])])
    x0, x1 = en.symbols()
    expr = en.expression()[0]
    assert sp.simplify(expr - (2 * sp.Max(0, x0 - x1) + sp.Max(0, x0 + x1 - 1))) == 0
    assert en([sp.Rational(3, 4), sp.Rational(1, 4)])[0] == 1
    assert en.affine_expression([1, 0]) == [2 * x0 - 2 * x1]
    assert en.affine_expression([1, 1]) == [3 * x0 - x1 - 1]
    codes = [[0, 0], [0, 1], [1, 0], [1, 1]]
    pw = en.piecewise(codes)[0]
    rng = np.random.default_rng(0)
    for _ in range(30):
        pt = [Fraction(int(v), 97) for v in rng.integers(-200, 200, size=2)]
        vals = {x0: sp.Rational(pt[0].numerator, pt[0].denominator),
                x1: sp.Rational(pt[1].numerator, pt[1].denominator)}
        assert pw.subs(vals) == expr.subs(vals) == en(list(vals.values()))[0]
    net = en.to_network()
    assert np.isclose(net(np.array([0.75, 0.25]))[0], 1.0)
    regions = maso.enumerate_regions(net, maso.Box([-2, -2], [2, 2]), progress=False)
    assert len(regions) == 4 and en.verify(regions).area_sum == 16
    assert np.array_equal(en.code([1, "1/4"]), net.codes(np.array([1.0, 0.25])))
    lk = exact.from_weights([([[1]], [0]), ([[1]], [0])], activation="leaky_relu", negative_slope="1/10")
    assert lk([-3])[0] == sp.Rational(-3, 10)


def test_verify_random_and_degenerate_enumerations():
    for seed, widths in [(4, [2, 5, 4, 1]), (5, [2, 6, 1]), (6, [3, 4, 3, 1])]:
        net = maso.mlp(widths, seed=seed)
        regions = maso.enumerate_regions(net, _box(widths[0], 2.0), progress=False)
        rep = exact.from_network(net).verify(regions)
        assert rep.ok, rep.problems
        assert rep.n_regions == len(regions) and rep.max_map_error < 1e-12
        if widths[0] == 2:
            assert rep.area_sum == rep.domain_area == 16
        else:
            assert rep.area_sum is None
    rng = np.random.default_rng(0)
    for name, hidden in _degenerate_nets():
        net = _mlp(hidden + [(rng.normal(size=(1, hidden[-1][0].shape[0])), np.zeros(1))])
        regions = maso.enumerate_regions(net, _box(2), progress=False)
        rep = exact.from_network(net).verify(regions)
        assert rep.ok, (name, rep.problems)
        assert rep.area_sum == 4


def test_verify_catches_missing_duplicated_and_mislabelled_regions():
    net = maso.mlp([2, 5, 3, 1], seed=7)
    regions = list(maso.enumerate_regions(net, _box(2), progress=False))
    en = exact.from_network(net)
    dom = _box(2)
    missing = en.verify(regions[1:], domain=dom)
    assert not missing.ok and missing.area_sum < 4 and "areas" in missing.problems[0]
    dup = en.verify(regions + regions[:1], domain=dom)
    assert not dup.ok and not dup.distinct_codes
    r0 = regions[0]
    wrong = r0.code.copy()
    wrong[0] = 1 - wrong[0]
    bad = dataclasses.replace(r0, code=wrong)
    rep = en.verify([bad] + regions[1:], domain=dom)
    assert not rep.ok


def test_exact_interior_lp_finds_thin_regions():
    """A region whose float interior point is rounded onto its boundary is still proven non-empty by the
    exact LP: a sliver between two nearly parallel lines."""
    eps = 2.0 ** -40
    en = exact.from_weights([([[1, 0], [1, eps]], [0, 0]), ([[1, -1]], [0])])
    H, h = en.region([1, 0])  # x0 > 0 and x0 + eps*x1 <= 0: needs x1 < -x0/eps
    from maso.exact import _interior_point

    p = _interior_point(H, h)
    assert p is not None and all(v < 0 for v in H * p - h)
    H2, h2 = en.region([1, 0])
    assert _interior_point(H2.col_join(sp.Matrix([[0, 1]])), h2.col_join(sp.Matrix([-10**20]))) is not None
    assert _interior_point(sp.Matrix([[1, 0], [-1, 0]]), sp.Matrix([0, 0])) is None  # a line: no interior


def test_errors():
    with pytest.raises(maso.errors.ParameterError):
        exact.rational(float("inf"))
    with pytest.raises(maso.errors.ParameterError):
        exact.rational("one half")
    with pytest.raises(maso.errors.ShapeError):
        exact.from_weights([([[1, 2]], [0, 1])])
    with pytest.raises(maso.errors.ShapeError):
        exact.from_weights([([[1, 2]], [0]), ([[1, 2]], [0])])
    with pytest.raises(maso.errors.ParameterError):
        exact.from_weights([([[1]], [0])], activation="gelu")
    en = exact.from_weights([([[1, 2]], [0]), ([[1]], [0])])
    with pytest.raises(maso.errors.ShapeError):
        en([1, 2, 3])
    with pytest.raises(maso.errors.ShapeError):
        en.affine_map([2])
    with pytest.raises(maso.errors.ShapeError):
        en.affine_map([0, 1])
    with pytest.raises(maso.errors.SubnetworkError):
        spec = [("a", maso.layers.relu(), ["input"]), ("s", maso.layers.Sum((1.0, 1.0)), ["a", "input"])]
        exact.from_network(maso.Network.from_graph((2,), spec))
