"""E5 (exact 2-D slices): the slice against the LP enumerator, dense sampling, point-in-polygon geometry and the
torch models' own forward passes; the quick run's results against themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exp_util import experiments, run_quick

import maso


@pytest.fixture(scope="module")
def E():
    experiments()
    from maso_experiments import e5_slice

    return e5_slice


@pytest.fixture(scope="module")
def digits(E):
    """A briefly trained digits CNN (real classes) and three held-out digits of different classes."""
    from maso_experiments import data

    cnn = data.digits_cnn(seed=1, epochs=4)
    x = torch.from_numpy(cnn.test.x).double()
    pick = np.array([int(np.flatnonzero(cnn.test.y == c)[0]) for c in (0, 3, 7)])
    return cnn, x, pick


def _slice(E, digits, layer, lo, hi):
    cnn, x, pick = digits
    net = maso.from_torch(cnn.model, x[:32], start=layer)
    acts = E.activations_at(cnn.model, getattr(cnn.model, layer), x[pick])
    return E.slice_through(net, acts, lo, hi), E.digits_tail(cnn.model, layer)


def _containing(sl, pts):
    """The region holding each point by point-in-convex-polygon geometry alone (-1: none, or on an edge)."""
    out = np.full(len(pts), -1)
    for i, poly in enumerate(sl.polygons()):
        e = np.roll(poly, -1, axis=0) - poly
        d = pts[None] - poly[:, None]
        cross = e[:, None, 0] * d[..., 1] - e[:, None, 1] * d[..., 0]
        inside = (cross > 1e-12).all(axis=0)
        assert not (inside & (out >= 0)).any(), "two regions overlap"
        out[inside] = i
    return out


def test_mesh_slice_equals_lp_enumeration(E, digits):
    for layer, lo, hi in (("block2", (-0.25, -0.25), (1.25, 1.25)), ("block1", (0.3, 0.3), (0.36, 0.36))):
        s, _ = _slice(E, digits, layer, lo, hi)
        lp = maso.slice_regions(s.net, s.plane, lo, hi, method="lp")
        assert 5 < len(s.regions) == len(lp), layer
        assert {c.tobytes() for c in s.regions.codes} == {c.tobytes() for c in lp.codes}
        assert np.isclose(s.regions.areas.sum(), np.prod(np.subtract(hi, lo)), rtol=1e-9)


def test_codes_of_random_points_match_their_polygon(E, digits):
    s, _ = _slice(E, digits, "block1", (-0.1, -0.1), (1.1, 1.1))
    sl = s.regions
    pts = np.random.default_rng(0).uniform(sl.lo, sl.hi, size=(400, 2))
    where = _containing(sl, pts)
    assert (where >= 0).mean() > 0.95  # only points on an edge (none, in practice) are left out
    keep = where >= 0
    assert np.array_equal(sl.find(pts[keep]), where[keep])
    # the codes of the full network at the points of the 256-D activation space (not the restricted network)
    codes = np.asarray(s.net.codes(s.plane(pts[keep])))
    assert np.array_equal(codes, sl.codes[where[keep]])
    # and the ReLU columns straight from torch: block2's conv and the hidden layer's pre-activations
    cnn = digits[0]
    with torch.no_grad():
        a = torch.from_numpy(s.plane(pts[keep]))
        pre2 = cnn.model.block2[0](a).reshape(len(a), -1).numpy()
        pre3 = cnn.model.hidden[1](cnn.model.hidden[0](cnn.model.block2(a))).numpy()
    cols = {g.name: g.columns for g in s.net.units}
    assert np.array_equal(sl.codes[where[keep]][:, cols["block2.1"]], pre2 > 0)
    assert np.array_equal(sl.codes[where[keep]][:, cols["hidden.2"]], pre3 > 0)


def test_three_points_lie_in_the_plane_at_their_coordinates(E, digits):
    s, _ = _slice(E, digits, "block1", (-0.1, -0.1), (1.1, 1.1))
    at = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert np.allclose(s.plane.coordinates(s.points), at, atol=1e-12)
    assert np.allclose(s.plane(at), s.points, atol=1e-12)
    # the region holding each point has the point's own code (the images' codes, from the network)
    idx = s.regions.find(at)
    assert (idx >= 0).all()
    assert np.array_equal(np.asarray(s.net.codes(s.points)), s.regions.codes[idx])


def _crosses(p, q, segs):
    """Whether the segment p-q properly crosses any of ``segs`` (k, 2, 2)."""
    def orient(a, b, c):
        return np.sign((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))
    a, b = segs[:, 0], segs[:, 1]
    return bool(((orient(p, q, a) != orient(p, q, b)) & (orient(a, b, p) != orient(a, b, q))).any())


def test_decision_boundary_separates_different_argmax(E, digits):
    s, tail = _slice(E, digits, "block1", (-0.2, -0.2), (1.2, 1.2))
    db = s.regions.decision_boundary()
    assert len(db) > 3  # three classes at the corners: the boundary exists
    chk = E.decision_check(tail, s, db, "cpu", np.random.default_rng(0), n=100)
    assert chk["checked"] > 20 and chk["differ"] == chk["checked"]
    # the converse, sampled: neighbours on a grid with different torch argmax have a boundary segment between them
    g = np.linspace(-0.2, 1.2, 41)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1)
    cls = E.argmax_at(tail, s.plane, grid.reshape(-1, 2), "cpu").reshape(41, 41)
    n_diff = 0
    for (i, j), (di, dj) in ((ij, d) for ij in np.ndindex(40, 40) for d in ((1, 0), (0, 1))):
        if cls[i, j] != cls[i + di, j + dj]:
            n_diff += 1
            assert _crosses(grid[i, j], grid[i + di, j + dj], db)
    assert n_diff > 5


def test_shared_edges_account_for_every_perimeter(E, digits):
    s, _ = _slice(E, digits, "block1", (0.0, 0.0), (0.5, 0.5))
    sl = s.regions
    b = E.shared_edges(sl, s.net)
    assert len(b.segments) == len(sl.adjacency)
    assert all(len(ls) > 0 for ls in b.layers)  # neighbours differ in some unit
    perim = sum(np.hypot(*(np.roll(p, -1, axis=0) - p).T).sum() for p in sl.polygons())
    inner = np.hypot(*(b.segments[:, 1] - b.segments[:, 0]).T).sum()
    # every interior edge is counted by both its regions, the window's border once
    assert np.isclose(perim, 2 * inner + 2 * float(np.sum(sl.hi - sl.lo)), rtol=1e-9)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run_quick("e5_slice", tmp_path_factory.mktemp("e5"))


def test_quick_run_results_are_consistent(quick):
    r = quick["results"]
    for key in ("digits", "inception"):
        d = r[key]
        assert d["regions"] > 100 and d["exact"] is True and d["warnings"] == []
        assert d["area_sum_rel_error"] < 1e-9
        assert np.isclose(d["regions_per_unit_area"], d["regions"] / d["window_area"])
        assert np.isclose(d["regions_per_second"], d["regions"] / d["seconds"])
        assert d["shared_edges"] == d["adjacent_pairs"]
        assert sum(v["edges_first"] for v in d["per_layer"].values()) == d["shared_edges"]
        assert all(v["edges"] >= v["edges_first"] for v in d["per_layer"].values())
        # the digits CNN labels every region; the big networks at most max_labels of them
        cap = d["regions"] if key == "digits" else quick["options"]["max_labels"]
        assert d["regions_labelled"] == min(d["regions"], cap)
        assert sum(d["regions_per_class"].values()) == d["regions_labelled"]
        assert sorted(int(k) for k in d["regions_per_class"]) == d["classes_present"]
        assert np.allclose(d["points_coordinates"], [[0, 0], [1, 0], [0, 1]], atol=1e-9)
        assert d["decision_boundary"].get("differ", 0) == d["decision_boundary"].get("checked", 0)
        assert d["stats"]["merged"] == 0 and d["stats"]["slivers"] == 0
    dg = r["digits"]
    assert dg["points_labels"] == dg["points_predicted"] and len(set(dg["points_labels"])) == 3
    assert set(dg["points_labels"]) <= set(dg["classes_present"])
    assert dg["decision_boundary"]["checked"] > 0
    inc = r["inception"]
    assert inc["input_dim"] == 40768 and inc["units"] == 194432 and inc["trained"] is False
    assert "RANDOM" in quick["setup"]["inception_model"]
    assert any("not tested here: random weights" in c["verdict"] for c in quick["comparisons"])
    assert {f["file"] for f in quick["figures"]} == {"e5-digits.png", "e5-inception.png"}
    assert "effnet" not in r  # full settings only
