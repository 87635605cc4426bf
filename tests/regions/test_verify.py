"""The certificate (RegionSet.verify) cannot miss a region, and catches every other corruption of a result: each
corruption is made on a correct result through the public constructors, and the failed check is named."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import maso
from maso.layers import Dense, relu


def _rebuild(R: maso.regions.RegionSet, regions) -> maso.regions.RegionSet:
    """A RegionSet built from public objects (as a user, a checkpoint or a bug could build it)."""
    return maso.regions.RegionSet(R.network, R.domain, list(regions), R.slivers, R.tol, R.stats)


@pytest.fixture(scope="module")
def r2():
    """[2, 16, 16, 16, 1], seed 0: the 106 regions of the bad-inputs probe."""
    R = maso.enumerate_regions(maso.mlp([2, 16, 16, 16, 1], seed=0), maso.Box(-1, 1))
    assert len(R) == 106
    return R


def _failed(R: maso.regions.RegionSet, **kw) -> tuple[str, ...]:
    report = R.verify(rng=kw.pop("rng", 0), **kw)
    assert report.ok == (not report.checks_failed)
    return report.checks_failed


def test_correct_result_passes_every_check(r2):
    report = r2.verify(rng=0)
    assert report.ok, report
    assert set(report.checks_run) == {"codes", "inradii", "facets", "domain_facets", "volumes", "adjacency", "maps",
                                      "coverage"}
    assert report.volume_error < 1e-12 and report.unmatched_facets == 0
    assert str(report).startswith("OK: 106 regions")
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.ok = False  # type: ignore[misc]


def test_every_dropped_region_is_caught(r2):
    """Row #96: dropping the smallest region (3.8e-6 of the domain) went unnoticed in 20/20 seeds (coverage was
    only sampled). Now each of the 106 is caught, by facet matching and by volumes, whatever the seed."""
    regions = list(r2)
    for i in range(len(regions)):
        failed = _failed(_rebuild(r2, regions[:i] + regions[i + 1:]), rng=i, n_points=0)
        assert "adjacency" in failed and "volumes" in failed, i


def test_smallest_region_dropped_is_caught_for_every_seed(r2):
    regions = list(r2)
    i = int(np.argmin([r.volume() for r in regions]))
    bad = _rebuild(r2, regions[:i] + regions[i + 1:])
    assert all(not bad.verify(rng=seed).ok for seed in range(20))


@pytest.mark.parametrize("d, widths, method", [(3, [3, 8, 8, 1], "vertices"), (5, [5, 6, 6, 1], "lp")])
def test_dropped_regions_are_caught_by_facet_matching_alone(d, widths, method):
    """Above 4-D volumes are not computed: facet matching alone must see every missing region (a region is cut
    whole from a cell, so the regions across its last cut have facets inside its own with nothing else
    across)."""
    R = maso.enumerate_regions(maso.mlp(widths, seed=2), maso.Box(-np.ones(d), np.ones(d)), method=method)
    assert R.verify(rng=0).ok
    regions = list(R)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(regions), size=min(25, len(regions)), replace=False):
        report = _rebuild(R, regions[:i] + regions[i + 1:]).verify(rng=0, n_points=0)
        assert "adjacency" in report.checks_failed and report.unmatched_facets > 0, i
    if d > 4:
        assert "volumes" not in R.verify(rng=0).checks_run


def test_moved_domain_facet_is_caught(r2):
    """Row #99: a domain facet moved 0.05 inwards was caught in 14/20 seeds (domain rows were not checked)."""
    regions = list(r2)
    i = next(k for k, r in enumerate(regions) if np.any(r.polytope.units[:, 0] < 0))
    r = regions[i]
    row = int(np.flatnonzero(r.polytope.units[:, 0] < 0)[0])
    for shift in (0.05, 1e-6):
        b = r.polytope.b.copy()
        b[row] -= shift
        moved = dataclasses.replace(r, polytope=maso.Polytope(r.polytope.A, b, r.polytope.units))
        bad = _rebuild(r2, regions[:i] + [moved] + regions[i + 1:])
        for seed in range(3):
            failed = _failed(bad, rng=seed, n_points=0)
            assert "domain_facets" in failed and "volumes" in failed


@pytest.mark.parametrize("radius", [1e6, "x1.01", "x0.99", 1e-12])
def test_wrong_inradius_is_caught(r2, radius):
    """Row #99: an inradius of 1e6 was not checked."""
    regions = list(r2)
    r = regions[5]
    value = r.inradius * float(radius[1:]) if isinstance(radius, str) else radius
    bad = _rebuild(r2, [dataclasses.replace(r, inradius=value)] + regions[:5] + regions[6:])
    assert "inradii" in _failed(bad)


@pytest.mark.parametrize("eps", [1e-3, 1e-6, 1e-7])
@pytest.mark.parametrize("part", ["A and b", "A", "b"])
def test_map_perturbation_is_caught(r2, eps, part):
    """Row #97: a map off by 1e-7 passed (the check was 100 * atol, the docs said atol)."""
    regions = list(r2)
    r = regions[3]
    A = r.affine.A + (eps if "A" in part else 0.0)
    b = r.affine.b + (eps if "b" in part else 0.0)
    bad = _rebuild(r2, regions[:3] + [dataclasses.replace(r, affine=maso.core.Affine(A, b))] + regions[4:])
    report = bad.verify(rng=0)
    assert report.checks_failed == ("maps",) and report.max_map_error > report.map_tolerance


@pytest.mark.parametrize("s", [1e-30, 1e10, 1e30, 1e200])
def test_large_and_small_output_networks_pass(s):
    """Row #48: correct results of s * f failed verify() at s = 1e10 (map error 1.2e-6) and 1e30 (1.1e14) against
    an absolute atol; the bound is now atol times the output scale."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 1)).double().eval()
    with torch.no_grad():
        m[0].weight.mul_(s)
        for layer in (m[0], m[2], m[4]):
            layer.bias.mul_(s)
    R = maso.enumerate_regions(maso.from_torch(m, torch.zeros(1, 2, dtype=torch.float64)), maso.Box(-1, 1))
    report = R.verify(rng=0)
    assert report.ok, report
    assert report.map_tolerance == pytest.approx(1e-8 * s, rel=10)  # atol times an output scale of order s
    regions = list(R)  # and a perturbation of 1e-5 of the map's size still fails
    r = regions[0]
    off = dataclasses.replace(r, affine=maso.core.Affine(r.affine.A * (1 + 1e-5), r.affine.b * (1 + 1e-5)))
    assert "maps" in _failed(_rebuild(R, [off] + regions[1:]))


def test_other_corruptions_are_caught(r2):
    """Row #98, each with the check that names it."""
    regions = list(r2)
    r = regions[7]
    # a duplicated region
    assert "codes" in _failed(_rebuild(r2, regions + [regions[7]]))
    # one code bit flipped
    code = r.code.copy()
    code[0] ^= 1
    assert "codes" in _failed(_rebuild(r2, regions[:7] + [dataclasses.replace(r, code=code)] + regions[8:]))
    # a unit facet shifted by 1e-3
    f = int(np.flatnonzero(r.polytope.units[:, 0] >= 0)[0])
    b = r.polytope.b.copy()
    b[f] += 1e-3
    shifted = dataclasses.replace(r, polytope=maso.Polytope(r.polytope.A, b, r.polytope.units))
    assert "facets" in _failed(_rebuild(r2, regions[:7] + [shifted] + regions[8:]))
    # a facet row removed (the region grows over its neighbour)
    keep = np.arange(len(r.polytope.b)) != f
    P = maso.Polytope(r.polytope.A[keep], r.polytope.b[keep], r.polytope.units[keep])
    fu = tuple(x for k, x in enumerate(r.facet_units) if k != f)
    grown = dataclasses.replace(r, polytope=P, facet_units=fu)
    assert {"volumes", "inradii"} & set(_failed(_rebuild(r2, regions[:7] + [grown] + regions[8:])))
    # the maps of two regions swapped
    a, c = regions[10], regions[11]
    swapped = [dataclasses.replace(a, affine=c.affine), dataclasses.replace(c, affine=a.affine)]
    assert "maps" in _failed(_rebuild(r2, regions[:10] + swapped + regions[12:]))
    # a facet labelled with the wrong unit
    units = r.polytope.units.copy()
    units[f, 0] = (units[f, 0] + 1) % r2.network.n_units
    fu = list(r.facet_units)
    fu[f] = (int(units[f, 0]),)
    relabelled = dataclasses.replace(r, polytope=maso.Polytope(r.polytope.A, r.polytope.b, units),
                                     facet_units=tuple(fu))
    assert "facets" in _failed(_rebuild(r2, regions[:7] + [relabelled] + regions[8:]))
    # a region translated out of the domain's corner
    corner = max(regions, key=lambda q: q.interior_point.sum())
    P = corner.polytope
    moved = dataclasses.replace(corner, polytope=maso.Polytope(P.A, P.b + P.A @ np.array([0.5, 0.5]), P.units),
                                interior_point=corner.interior_point + 0.5)
    i = next(k for k, q in enumerate(regions) if q is corner)
    assert not _rebuild(r2, regions[:i] + [moved] + regions[i + 1:]).verify(rng=0).ok
    # nothing at all
    empty = _rebuild(r2, [])
    report = empty.verify()
    assert not report.ok and report.checks_failed == ("regions",)


def test_slivers_are_allowed_for_in_the_volumes():
    """A unit whose hyperplane runs 1e-11 inside the box's edge leaves a sliver thinner than tol: the volumes
    fall short by at most what the sliver can hold, and the result is certified."""
    W = np.array([[1.0, 0.0], [0.3, 1.0]])
    b = np.array([-(1.0 - 1e-11), 0.1])
    thin = maso.Network.sequential((2,), [Dense(W, b), relu(), Dense(np.ones((1, 2)), np.zeros(1))])
    with pytest.warns(maso.errors.NumericalWarning, match="thinner than tol"):
        R = maso.enumerate_regions(thin, maso.Box(-1, 1))
    assert len(R.slivers) == 1
    report = R.verify(rng=0)
    assert report.ok, report


@pytest.mark.parametrize("method", ["vertices", "lp"])
def test_results_of_all_layer_kinds_verify(method):
    """No false alarms: maxout, max-pool, leaky ReLU, abs, duplicated and constant units, a polytope domain."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        pool = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 2, padding=1), torch.nn.MaxPool1d(3, stride=1),
                                   torch.nn.Flatten(), torch.nn.Linear(4, 1))
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 3))
    dup = maso.Network.sequential((3,), [Dense(np.vstack([W, W[:2], np.zeros((1, 3))]),
                                               np.concatenate([rng.normal(size=4) * 0.3, [0.1, 0.2], [0.5]])),
                                         relu(), Dense(rng.normal(size=(5, 7)), np.zeros(5)), relu()])
    tri = maso.Polytope(np.array([[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]), np.array([1.0, 1.0, 1.0]))
    cube = maso.Box(-np.ones(3), np.ones(3))
    cases = [
        (maso.mlp([3, 6, 6, 1], seed=2, activation="maxout", pieces=3), cube),
        (maso.from_torch(pool.double().eval(), torch.zeros(1, 1, 3, dtype=torch.float64)), cube),
        (maso.mlp([3, 8, 8, 2], seed=1, activation="leaky_relu", negative_slope=0.1), cube),
        (maso.mlp([2, 8, 8, 2], seed=1, activation="abs"), maso.Box(-1, 1)),
        (dup, cube),
        (maso.mlp([2, 6, 6, 1], seed=4), tri),
        (maso.mlp([1, 8, 8, 1], seed=0), maso.Box(-1, 1)),
    ]
    for net, dom in cases:
        R = maso.enumerate_regions(net, dom, method=method)
        report = R.verify(rng=0)
        assert report.ok, (net, report)


@pytest.mark.slow
def test_verify_cost_on_14k_regions_in_4d():
    """About 10-15 s of CPU on a 2-core box (measured: docs/concepts/regions.md)."""
    import time

    R = maso.enumerate_regions(maso.mlp([4, 16, 16, 16, 1], seed=0), maso.Box(-np.ones(4), np.ones(4)))
    t = time.process_time()
    report = R.verify(rng=0)
    assert report.ok and len(R) == 14254
    assert time.process_time() - t < 120


@pytest.mark.parametrize("size", [1e-6, 1e3])
def test_tiny_and_large_domains_verify_and_catch_drops(size):
    """The certificate's slacks follow the domain's coordinates: on a box 1e-6 wide an absolute 1e-8 slack would
    put every random point in every region and hide any missing one."""
    net = maso.mlp([2, 12, 12, 1], seed=3)
    first = net.nodes[1].layer
    scaled = maso.Network.sequential((2,), [Dense(first.weight / size, first.bias)]
                                     + [net.nodes[i].layer for i in range(2, len(net.nodes))])
    R = maso.enumerate_regions(scaled, maso.Box(-size, size), tol=min(1e-9, size * 1e-6))
    unit = maso.enumerate_regions(net, maso.Box(-1, 1))
    assert {r.code.tobytes() for r in R} == {r.code.tobytes() for r in unit}
    report = R.verify(rng=0)
    assert report.ok and report.multiply_covered == 0, report
    regions = list(R)
    for i in (0, len(regions) // 2, len(regions) - 1):
        assert "adjacency" in _rebuild(R, regions[:i] + regions[i + 1:]).verify(rng=0).checks_failed


@pytest.mark.parametrize("kw", [{"n_points": -5}, {"n_points": 1.5}, {"atol": 0.0}, {"atol": float("nan")},
                                {"atol": "1e-8"}, {"rng": -1}, {"rng": "seed"}])
def test_bad_parameters_are_parameter_errors(r2, kw):
    with pytest.raises(maso.errors.ParameterError, match=next(iter(kw))):
        r2.verify(**kw)


def test_no_random_points(r2):
    report = r2.verify(n_points=0)
    assert report.ok and report.n_points == 0
