"""Exact region enumeration: closed-form counts, an exact rational 2-D reference, brute force over codes,
volumes, degenerate arrangements, adjacency, optimisation over regions, and typed errors."""

from __future__ import annotations

import dataclasses
import itertools
import math

import exact2d
import numpy as np
import pytest
import torch
from cases import (
    degenerate_nets as _degenerate_nets,
    mlp_from_weights as _mlp,
    random_2d_case,
    random_hidden as _hidden,
)
from hypothesis import given, settings, strategies as st
from scipy.optimize import linprog

import maso
from maso.layers import Dense, relu


def _box(d: int, b: float = 1.0) -> maso.Box:
    return maso.Box(-b * np.ones(d), b * np.ones(d))


# ---------------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize("d, n", [(1, 5), (2, 6), (2, 9), (3, 5), (3, 7), (4, 6)])
def test_one_generic_layer_equals_zaslavsky(d, n):
    """Property: n hyperplanes in general position in R^d cut a box holding all their vertices into
    sum_{i<=d} C(n, i) regions (Zaslavsky)."""
    rng = np.random.default_rng(d * 100 + n)
    W, b = rng.normal(size=(n, d)), rng.normal(size=n)
    verts = [np.linalg.solve(W[list(s)], -b[list(s)]) for s in itertools.combinations(range(n), d)]
    half = 1.5 * max(1.0, float(np.max(np.abs(verts))))
    net = maso.Network.sequential((d,), [Dense(W, b), relu()])
    regions = maso.enumerate_regions(net, _box(d, half))
    assert len(regions) == sum(math.comb(n, i) for i in range(d + 1))
    assert not regions.slivers


@settings(max_examples=25)
@given(seed=st.integers(0, 2**20), depth=st.integers(1, 3), act=st.sampled_from(["relu", "leaky", "abs"]))
def test_2d_counts_equal_exact_rational_reference(seed, depth, act):
    """Property: 2-D counts and codes equal exact convex-polygon splitting in rational arithmetic."""
    net, ref = random_2d_case(seed, depth, act, max_width=6)
    got = maso.enumerate_regions(net, _box(2))
    assert len(got) == len(ref)
    assert {r.code.tobytes() for r in got} == {np.array(c, dtype=np.uint8).tobytes() for _, c in ref}
    assert sum(r.volume() for r in got) == pytest.approx(4.0, rel=1e-9)


@pytest.mark.parametrize("name, hidden", list(_degenerate_nets()), ids=[n for n, _ in _degenerate_nets()])
def test_degenerate_arrangements_are_counted_exactly(name, hidden):
    """Degenerate geometry gives exact counts (against the rational reference), with no slivers."""
    rng = np.random.default_rng(0)
    net = _mlp(hidden + [(rng.normal(size=(1, hidden[-1][0].shape[0])), np.zeros(1))])
    ref = exact2d.regions([(W, b, (0.0, 1.0)) for W, b in hidden], -1, 1)
    got = maso.enumerate_regions(net, _box(2))
    assert len(got) == len(ref), name
    assert not got.slivers
    assert got.verify(rng=0).ok
    if name == "duplicated-and-constant-units":
        # A facet of a duplicated unit lists both copies.
        assert any(len(u) == 2 for r in got for u in r.facet_units)


def _brute_force_count(hidden, d, half=1.0, tol=1e-7):
    """Every code of a ReLU MLP whose region (an LP in scipy) has an inscribed ball of radius > tol."""
    n_units = sum(W.shape[0] for W, _ in hidden)
    count = 0
    for bits in itertools.product((0, 1), repeat=n_units):
        M, m = np.eye(d), np.zeros(d)
        rows, rhs, k = [], [], 0
        for W, b in hidden:
            A, c = W @ M, W @ m + b
            q = np.array(bits[k:k + len(b)])
            k += len(b)
            sign = np.where(q == 1, -1.0, 1.0)  # active: u >= 0 -> -u <= 0
            rows.append(sign[:, None] * A)
            rhs.append(-sign * c)
            M, m = q[:, None] * A, q * c
        G = np.vstack(rows + [np.eye(d), -np.eye(d)])
        h = np.concatenate(rhs + [half * np.ones(2 * d)])
        norms = np.linalg.norm(G, axis=1)
        ok = norms > 0
        if np.any(h[~ok] < 0):
            continue
        G, h, norms = G[ok], h[ok], norms[ok]
        res = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.hstack([G, norms[:, None]]), b_ub=h,
                      bounds=[(None, None)] * d + [(None, 1.0)], method="highs")
        if res.status == 0 and -res.fun > tol:
            count += 1
    return count


@pytest.mark.parametrize("d, widths, seed", [(3, [3, 4, 3], 0), (4, [4, 4, 3], 1), (5, [5, 4, 3], 2), (3, [3, 5, 5], 3)])
def test_3d_to_5d_counts_equal_brute_force_over_codes(d, widths, seed):
    """Property: in 3-D to 5-D the count equals an independent algorithm: LP feasibility of all 2^n codes."""
    rng = np.random.default_rng(seed)
    hidden = _hidden(widths, rng)
    net = _mlp(hidden + [(rng.normal(size=(1, widths[-1])), np.zeros(1))])
    got = maso.enumerate_regions(net, _box(d))
    assert len(got) == _brute_force_count(hidden, d)
    if d == 3:
        assert sum(r.volume() for r in got) == pytest.approx(8.0, rel=1e-8)


# ----------------------------------------------------------------------------------------- all layers
def _random_small_model(seed):
    """Small models of every layer type with a 2-D or 3-D input."""
    kind = seed % 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == 0:  # maxout + leaky + abs
            m = torch.nn.Sequential(torch.nn.Linear(2, 6), maso.nn.Maxout(2), torch.nn.Linear(3, 4),
                                    torch.nn.LeakyReLU(0.2), torch.nn.Linear(4, 3), maso.nn.Abs(), torch.nn.Linear(3, 1))
            shape = (2,)
        elif kind == 1:  # conv + max-pool on a 1-D signal of length 3
            m = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 2, padding=1), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
                                    torch.nn.Flatten(), torch.nn.Linear(4, 1))
            shape = (1, 3)
        elif kind == 2:  # residual
            class Res(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = torch.nn.Linear(2, 5)
                    self.b = torch.nn.Linear(5, 2)
                    self.c = torch.nn.Linear(2, 1)

                def forward(self, x):
                    return self.c(torch.relu(x + self.b(torch.relu(self.a(x)))))
            m = Res()
            shape = (2,)
        else:  # concatenation of two branches, hardtanh
            class Cat(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = torch.nn.Linear(3, 3)
                    self.b = torch.nn.Linear(3, 2)
                    self.c = torch.nn.Linear(5, 1)

                def forward(self, x):
                    return self.c(torch.cat([torch.relu(self.a(x)), torch.nn.functional.hardtanh(self.b(x))], 1))
            m = Cat()
            shape = (3,)
    return m.double().eval(), shape


@settings(max_examples=16)
@given(seed=st.integers(0, 2**16))
def test_all_layer_types_enumerate_and_verify(seed):
    """Property: for maxout, max-pool, leaky, abs, residual, concat and hardtanh networks the regions verify
    (codes, maps, facets, coverage), and every code seen on a dense sample is among them."""
    module, shape = _random_small_model(seed)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    d = net.input_dim
    regions = maso.enumerate_regions(net, _box(d))
    report = regions.verify(n_points=400, rng=seed)
    assert report.ok, str(report)
    pts = np.random.default_rng(seed).uniform(-1, 1, size=(20000, d))
    seen = {c.tobytes() for c in np.unique(net.codes(pts.reshape(-1, *shape)), axis=0)}
    assert seen <= {r.code.tobytes() for r in regions}
    if d <= 3:
        assert sum(r.volume() for r in regions) == pytest.approx(2.0**d, rel=1e-8)


# ------------------------------------------------------------------------------------ graph and queries
def test_graph_matches_shared_polygon_edges():
    """Property: two 2-D regions are adjacent in the graph iff their polygons share an edge of positive length."""
    net = maso.mlp([2, 6, 6, 1], seed=3)
    regions = maso.enumerate_regions(net, _box(2))
    g = regions.graph()
    verts = [np.round(r.vertices(), 9) for r in regions]
    expected = set()
    for i, j in itertools.combinations(range(len(regions)), 2):
        common = {tuple(v) for v in verts[i]} & {tuple(v) for v in verts[j]}
        if len(common) >= 2:
            pts = np.array(sorted(common))
            mid = pts.mean(axis=0)
            # a shared edge: the midpoint of two shared vertices lies on both boundaries
            if regions[i].distance_to_boundary(mid) < 1e-9 and regions[j].distance_to_boundary(mid) < 1e-9 \
                    and regions[i].contains(mid) and regions[j].contains(mid):
                expected.add((i, j))
    assert {tuple(sorted(e)) for e in g.edges} == expected
    for i, j, data in g.edges(data=True):
        diff = set(np.nonzero(regions[i].code != regions[j].code)[0])
        assert set(data["units"]) <= diff


def test_maximize_direct_and_cvxpy_agree():
    net = maso.mlp([2, 5, 3], seed=1)
    regions = maso.enumerate_regions(net, _box(2))
    for r in list(regions)[:5]:
        for k in range(3):
            c = np.eye(3)[k]
            v_direct, x_direct = r.maximize(c)
            v_cvx, x_cvx = r.maximize(lambda y, out: out[k])  # noqa: B023 - called at once
            assert v_direct == pytest.approx(v_cvx, abs=1e-6)
            assert r.contains(x_direct) and r.contains(x_cvx, atol=1e-6)
            assert net(x_direct)[k] == pytest.approx(v_direct, abs=1e-9)
        # distance from the interior point to the boundary equals the inradius
        assert r.distance_to_boundary(r.interior_point) == pytest.approx(r.inradius, rel=1e-7)
        dist, _ = r.minimize(lambda y, out: 0 * y[0] + 1)  # trivial objective: feasibility through cvxpy
        assert dist == pytest.approx(1.0)


def test_streaming_equals_collected():
    net = maso.mlp([3, 6, 6, 1], seed=2)
    streamed = {r.code.tobytes() for r in maso.iter_regions(net, _box(3))}
    collected = {r.code.tobytes() for r in maso.enumerate_regions(net, _box(3))}
    assert streamed == collected


def test_polytope_domain_and_sliver_reporting():
    net = maso.mlp([2, 6, 1], seed=4)
    tri = maso.Polytope(np.array([[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]), np.array([1.0, 1.0, 1.0]))
    regions = maso.enumerate_regions(net, tri)
    assert sum(r.volume() for r in regions) == pytest.approx(4.5, rel=1e-9)  # vertices (-1,-1), (2,-1), (-1,2)
    assert regions.verify(rng=1).ok
    # A unit whose hyperplane runs 1e-11 inside the box's edge cuts off a sliver thinner than tol=1e-9.
    W = np.array([[1.0, 0.0], [0.3, 1.0]])
    b = np.array([-(1.0 - 1e-11), 0.1])
    thin = maso.Network.sequential((2,), [Dense(W, b), relu(), Dense(np.ones((1, 2)), np.zeros(1))])
    with pytest.warns(maso.errors.NumericalWarning, match="thinner than tol"):
        res = maso.enumerate_regions(thin, _box(2))
    assert len(res) == 2 and len(res.slivers) == 1
    assert res.slivers[0].thickness <= 1e-9
    # With a finer tolerance the thin strip is resolved: both lines cut the whole box, four regions.
    fine = maso.enumerate_regions(thin, _box(2), tol=1e-12)
    assert len(fine) == 4 and not fine.slivers
    assert min(r.inradius for r in fine) == pytest.approx(0.5e-11, rel=1e-3)


# ------------------------------------------------------------------------------------ errors and solver
def test_bad_domains_and_parameters():
    net = maso.mlp([2, 4, 1], seed=0)
    with pytest.raises(maso.errors.DomainError, match="empty or flat"):
        maso.Box([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(maso.errors.DomainError, match="finite"):
        maso.Box([0.0, 0.0], [np.inf, 1.0])
    with pytest.raises(maso.errors.DomainError, match="lives in 3 dimensions"):
        maso.enumerate_regions(net, _box(3))
    slab = maso.Polytope(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([1.0, 1.0]))
    with pytest.raises(maso.errors.DomainError, match="unbounded"):
        maso.enumerate_regions(net, slab)
    empty = maso.Polytope(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]),
                          np.array([-1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(maso.errors.DomainError, match="empty"):
        maso.enumerate_regions(net, empty)
    with pytest.raises(maso.errors.DomainError, match="Box or a bounded"):
        maso.enumerate_regions(net, [[-1, 1], [-1, 1]])
    with pytest.raises(maso.errors.ShapeError, match="'tol'"):
        maso.enumerate_regions(net, _box(2), tol=-1.0)
    with pytest.raises(maso.errors.ShapeError, match="'tol'"):
        maso.enumerate_regions(net, _box(2), tol=1e-15)  # below float64's resolution of distances


def test_solver_fallback_and_failure(monkeypatch):
    import maso._lp as lp

    net = maso.mlp([2, 5, 1], seed=0)
    want = len(maso.enumerate_regions(net, _box(2)))
    real = lp._daqp_lp
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        flag, x, f = real(*args)
        return (-6, x, f) if calls["n"] % 3 == 0 else (flag, x, f)  # every third DAQP solve "fails"

    monkeypatch.setattr(lp, "_daqp_lp", flaky)
    got = maso.enumerate_regions(net, _box(2))
    assert len(got) == want and got.stats["lp_fallbacks"] > 0
    monkeypatch.setattr(lp, "_daqp_lp", lambda *a: (-6, np.zeros(a[0].shape[0]), 0.0))
    monkeypatch.setattr(lp, "_highs_lp", lambda *a: ("error", np.zeros(a[0].shape[0]), np.nan))
    with pytest.raises(maso.errors.SolverError, match="both DAQP"):
        maso.enumerate_regions(net, _box(2))


@settings(max_examples=20)
@given(seed=st.integers(0, 2**20), d=st.integers(2, 5))
def test_vertex_and_lp_methods_agree(seed, d):
    """Property: the two enumeration algorithms (vertex incidences vs LP certificates) give the same regions,
    facets and interior-point codes, in 2-D to 5-D, including degenerate zero-bias networks."""
    rng = np.random.default_rng(seed)
    widths = [d] + [int(w) for w in rng.integers(2, 6, size=2)]
    hidden = _hidden(widths, rng, bias_scale=0.0 if seed % 3 == 0 else 0.5)
    net = _mlp(hidden + [(rng.normal(size=(1, widths[-1])), np.zeros(1))])
    a = maso.enumerate_regions(net, _box(d), method="vertices")
    b = maso.enumerate_regions(net, _box(d), method="lp")
    assert a.stats["method"] == "vertices" and b.stats["method"] == "lp"
    assert sorted(r.code.tobytes() for r in a) == sorted(r.code.tobytes() for r in b)
    by_code = {r.code.tobytes(): r for r in b}
    for r in a:
        other = by_code[r.code.tobytes()]
        assert sorted(map(tuple, np.round(np.c_[r.polytope.A, r.polytope.b], 8))) == \
            sorted(map(tuple, np.round(np.c_[other.polytope.A, other.polytope.b], 8)))
        assert r.inradius == pytest.approx(other.inradius, rel=1e-7, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_multi_piece_units_agree_across_methods(seed):
    """Maxout (3 pieces) and max-pool (windows of 3) units: both algorithms give the same regions, verified."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        maxout = torch.nn.Sequential(torch.nn.Linear(3, 9), maso.nn.Maxout(3), torch.nn.Linear(3, 1))
        pool = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 2, padding=1), torch.nn.MaxPool1d(3, stride=1),
                                   torch.nn.Flatten(), torch.nn.Linear(4, 1))
    for module, shape in ((maxout, (3,)), (pool, (1, 3))):
        net = maso.from_torch(module.double().eval(), torch.zeros(1, *shape, dtype=torch.float64))
        a = maso.enumerate_regions(net, _box(3), method="vertices")
        b = maso.enumerate_regions(net, _box(3), method="lp")
        assert sorted(r.code.tobytes() for r in a) == sorted(r.code.tobytes() for r in b)
        assert a.verify(rng=seed).ok and b.verify(rng=seed).ok


def test_region_set_is_immutable():
    """A RegionSet is frozen like SliceRegions: no attribute can be set or deleted, its regions and slivers are
    tuples of frozen records whose arrays are read-only (a sliver's too, from the engine or a checkpoint)."""
    W = np.array([[1.0, 0.0], [0.3, 1.0]])
    thin = maso.Network.sequential((2,), [Dense(W, np.array([-(1.0 - 1e-11), 0.1])), relu(),
                                          Dense(np.ones((1, 2)), np.zeros(1))])
    for method in ("vertices", "lp"):
        with pytest.warns(maso.errors.NumericalWarning, match="thinner than tol"):
            res = maso.enumerate_regions(thin, _box(2), method=method)
        for name, value in (("tol", 1e-3), ("slivers", ()), ("network", None), ("new_attribute", 1)):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(res, name, value)
        with pytest.raises(dataclasses.FrozenInstanceError):
            del res.domain
        assert isinstance(res.slivers, tuple) and len(res.slivers) == 1
        arrays = [a for r in res for a in (r.code, r.interior_point, r.polytope.A, r.affine.A)]
        arrays += [a for s in res.slivers for a in (s.point, s.code_prefix)]
        assert not any(a.flags.writeable for a in arrays)
        again = maso.regions.RegionSet(res.network, res.domain, list(res), res.slivers, res.tol, res.stats)
        assert len(again) == len(res) and again.find(np.zeros(2)) == res.find(np.zeros(2)) is not None


def test_two_engines_one_contract():
    """method="vertices" and "lp" are two classes of one abstract engine, picked once by name ("auto": vertices
    up to d = 6); each implements the algorithm's steps, and both give the same regions."""
    from maso.regions import _driver
    from maso.regions._engine import Engine
    from maso.regions._engines import make_engine
    from maso.regions._lp_engine import LPEngine
    from maso.regions._vertex_engine import VertexEngine

    assert Engine.__abstractmethods__ == {"_root_cell", "_extents", "split_two", "split_many", "facets"}
    with pytest.raises(TypeError):
        Engine(maso.mlp([2, 3, 1], seed=0), _box(2), 1e-9)  # abstract
    for d, method, cls in ((2, "auto", VertexEngine), (7, "auto", LPEngine), (2, "lp", LPEngine),
                           (7, "vertices", VertexEngine)):
        eng, dom = _driver._prepare(maso.mlp([d, 3, 1], seed=0), _box(d), 1e-9, "test", method)
        assert type(eng) is cls and eng.method == cls.method
        assert type(make_engine(eng.net, dom, 1e-9, cls.method)) is cls
    net = maso.mlp([3, 6, 6, 1], seed=2, activation="maxout", pieces=3)
    codes = {}
    for method in ("vertices", "lp"):
        eng, _ = _driver._prepare(net, _box(3), 1e-9, "test", method)
        codes[method] = sorted(r.code.tobytes() for r in eng.finalize(eng.expand([eng.root()], 0)))
    assert codes["vertices"] == codes["lp"] and len(codes["lp"]) > 50
