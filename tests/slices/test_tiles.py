"""Tiled slices (``slice_regions(..., tiles=)``): against exact rational polygon splitting, the untiled slice of
the same window (regions, codes, areas, polygons, adjacency, class maps), point location by polygon, boundaries
on tile lines, regions across many tiles, the memory fallback and typed errors."""

from __future__ import annotations

import exact2d
import numpy as np
import pytest
import torch
from archs import random_inputs, random_model
from cases import random_2d_case
from hypothesis import given, settings, strategies as st

import maso
from maso.layers import Dense, relu


def _by_code(sl: maso.slices.SliceRegions) -> dict[bytes, int]:
    return {np.asarray(c, dtype=np.int64).tobytes(): i for i, c in enumerate(sl.codes)}


def _assert_same_slice(tiled: maso.slices.SliceRegions, whole: maso.slices.SliceRegions, atol: float) -> None:
    """The same regions (by code) with the same areas, polygons (as vertex sets, to ``atol``) and neighbours."""
    a, b = _by_code(whole), _by_code(tiled)
    assert len(tiled) == len(whole) and set(a) == set(b)
    to_tiled = np.array([b[k] for k in a])  # whole's region i is tiled's region to_tiled[i]
    # (areas are sums of cross products of coordinates of the size of the window: rounding is relative to it)
    np.testing.assert_allclose(tiled.areas[to_tiled], whole.areas, rtol=1e-9, atol=1e-13 * whole.areas.sum())
    for i in range(len(whole)):
        p, q = _corners(whole.polygon(i), atol), _corners(tiled.polygon(to_tiled[i]), atol)
        assert len(p) == len(q), i
        assert np.abs(p[:, None] - q[None]).max(axis=2).min(axis=1).max() <= atol, i
    pairs = {tuple(sorted((int(to_tiled[i]), int(to_tiled[j])))) for i, j in whole.adjacency}
    assert pairs == {tuple(x) for x in tiled.adjacency.tolist()}


def _corners(poly: np.ndarray, atol: float) -> np.ndarray:
    """The polygon without vertices within ``atol`` of the line through their neighbours: a vertex where a
    boundary meets an edge at an angle the snapping tolerance decides (each tile snaps at its own scale)."""
    ring = list(poly)
    k = 0
    while k < len(ring) and len(ring) > 3:
        a, v, b = ring[k - 1], ring[k], ring[(k + 1) % len(ring)]
        d = b - a
        if abs(d[0] * (v - a)[1] - d[1] * (v - a)[0]) <= atol * np.hypot(*d):
            del ring[k]
            k = 0
        else:
            k += 1
    return np.array(ring)


def _ccw_inside(poly: np.ndarray, pts: np.ndarray, eps: float) -> np.ndarray:
    """Points inside (or within ``eps`` of) the counter-clockwise convex polygon."""
    a, b = poly, np.roll(poly, -1, axis=0)
    cross = ((b - a)[None, :, 0] * (pts[:, None, 1] - a[None, :, 1])
             - (b - a)[None, :, 1] * (pts[:, None, 0] - a[None, :, 0]))
    return (cross >= -eps).all(axis=1)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**20), depth=st.integers(1, 3), act=st.sampled_from(["relu", "leaky", "abs"]),
       tiles=st.sampled_from([2, 3, (2, 1), (1, 4), (3, 2)]))
def test_tiled_slice_equals_exact_rational_reference(seed, depth, act, tiles):
    """Property: joined across tile lines, the regions, codes and areas are those of exact polygon splitting in
    rational arithmetic on the whole square."""
    net, ref = random_2d_case(seed, depth, act, max_width=7)
    sl = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=tiles)
    ref_area = {np.array(c, dtype=np.int64).tobytes(): exact2d.area(p) for p, c in ref}
    assert len(sl) == len(ref) and set(_by_code(sl)) == set(ref_area)
    for key, i in _by_code(sl).items():
        assert sl.areas[i] == pytest.approx(float(ref_area[key]), rel=1e-9, abs=1e-12)
    assert sl.stats["tiles"] == (tiles * tiles if isinstance(tiles, int) else tiles[0] * tiles[1])
    assert sl.stats["pieces"] == len(sl) + sl.stats["joined"] and sl.stats["nonconvex_joins"] == 0


@pytest.mark.parametrize("tiles", [2, 3, (4, 1), (1, 5), 7])
def test_tiled_slice_equals_the_untiled_one(tiles):
    """Same regions, areas, polygons and neighbours as the untiled slice; the tile lines cut regions (pieces
    were joined), and the interior points lie in their regions."""
    net = maso.mlp([2, 24, 24, 4], seed=3)
    box = {"lo": (-4, -3), "hi": (5, 4)}
    whole = maso.slice_regions(net, **box)
    tiled = maso.slice_regions(net, **box, tiles=tiles)
    _assert_same_slice(tiled, whole, atol=1e-12)
    assert tiled.stats["joined"] > 10 and "tiles=" in repr(tiled) and "tiles=" not in repr(whole)
    np.testing.assert_array_equal(tiled.find(tiled.interior_points), np.arange(len(tiled)))


def test_tiled_polygons_locate_sampled_points():
    """Independently of codes: each sampled point lies in the polygon of the region that holds it (by the
    network's code), and in no other region's polygon (but within rounding of their shared edges)."""
    net = maso.mlp([2, 16, 16, 2], seed=1)
    sl = maso.slice_regions(net, lo=(-2, -2), hi=(2, 2), tiles=3)
    pts = np.random.default_rng(0).uniform(-2, 2, size=(3000, 2))
    owner = sl.find(pts)
    assert (owner >= 0).all()
    inside = np.stack([_ccw_inside(sl.polygon(i), pts, 1e-12) for i in range(len(sl))], axis=1)
    assert inside[np.arange(len(pts)), owner].all()
    strict = np.stack([_ccw_inside(sl.polygon(i), pts, -1e-9) for i in range(len(sl))], axis=1)
    assert (strict.sum(axis=1) <= 1).all()


def test_tiled_slice_of_a_pooling_cnn_equals_the_untiled_one():
    """A convolutional network with max-pooling (pieces cut and merged again inside each tile, vertex values
    carried on the torch path) sliced through a plane of its input."""
    for seed, kind, side in ((2, "inception", 0.4), (4, "cnn", 0.2)):
        module, shape, _ = random_model(seed, kind)
        net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
        plane = maso.Plane.through_points(*random_inputs(seed, shape, 3))
        box = {"lo": (0.0, 0.0), "hi": (side, side)}
        whole = maso.slice_regions(net, plane, **box)
        tiled = maso.slice_regions(net, plane, **box, tiles=(3, 2))
        assert len(whole) > 30, kind
        _assert_same_slice(tiled, whole, atol=1e-9)
        np.testing.assert_array_equal(tiled.codes, net.codes(plane(tiled.interior_points)))


def test_boundary_on_a_tile_line_and_a_region_across_every_tile():
    """A unit whose boundary is the tile line x = 0 (nothing to cut in either tile: the regions on its two sides
    are neighbours only across the tile line), and a region joined from six tiles."""
    net = maso.Network.sequential((2,), [Dense(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0]]),
                                               np.array([0.0, -1.9, -1.9])), relu()])
    whole = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    tiled = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=(2, 1))
    assert len(whole) == 4
    _assert_same_slice(tiled, whole, atol=1e-15)
    across = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=(4, 3))  # x = 0 is a tile line here too
    _assert_same_slice(across, whole, atol=1e-15)
    middle = int(across.find([[0.5, 0.0]])[0])  # the hexagon right of x = 0 without the corners: over 6 tiles
    assert len(across.polygon(middle)) == 6 and across.areas[middle] == pytest.approx(1.99, rel=1e-12)


def test_tiled_argmax_cells_equal_the_untiled_ones():
    """Class areas, boundary length, and every piece's class is the network's argmax inside it; class boundaries
    on tile lines are found across them."""
    net = maso.mlp([2, 24, 24, 4], seed=3)
    box = {"lo": (-4, -3), "hi": (5, 4)}
    whole = maso.slice_regions(net, **box).argmax_cells()
    sl = maso.slice_regions(net, **box, tiles=3)
    cells = sl.argmax_cells()
    np.testing.assert_allclose(cells.class_areas(), whole.class_areas(), rtol=1e-12)
    length = lambda b: float(np.hypot(*(b[:, 1] - b[:, 0]).T).sum())
    assert length(whole.boundary) > 1
    assert length(cells.boundary) == pytest.approx(length(whole.boundary), rel=1e-12)
    centres = np.array([cells.polygon(i).mean(axis=0) for i in range(len(cells))])
    np.testing.assert_array_equal(net(centres).argmax(axis=1), cells.labels)
    np.testing.assert_array_equal(cells.regions, sl.find(centres))
    # a class boundary that is a tile line: output 1 wins right of x = 0
    two = maso.Network.sequential((2,), [Dense(np.array([[-1.0, 0.0], [1.0, 0.0]]), np.zeros(2))])
    split = maso.slice_regions(two, lo=(-1, -1), hi=(1, 1), tiles=2).argmax_cells()
    assert length(split.boundary) == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(split.boundary[:, :, 0], 0.0)


def test_tiles_keep_carrying_where_the_whole_window_would_not():
    """With a memory budget the whole window's carried values outgrow, the untiled slice stops carrying (and
    says so); tiles that fit carry to the end and give the same slice."""
    from unittest import mock

    from maso.slices import _slice as slices

    module, shape, _ = random_model(2, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(2, shape, 3))
    box = {"lo": (0.0, 0.0), "hi": (0.4, 0.4)}
    free = maso.slice_regions(net, plane, **box)
    assert not free.stats["carry_stopped"]
    need: list[int] = []
    hold = slices._VertexValues._hold

    def spy(self, keep, optional=False):  # the bytes `_hold` asks the budget for, where it must have them
        held = self.carried.nodes() if self.carried is not None else []
        if not optional:
            need.append(slices._room(self.mesh.nV) * sum(self._size[j] for j in set(keep) | set(held)) * 8)
        return hold(self, keep, optional)

    with mock.patch.object(slices._VertexValues, "_hold", spy):
        maso.slice_regions(net, plane, **box, tiles=4)
        budget = max(need) + 1  # room for every tile's held values
        need.clear()
        maso.slice_regions(net, plane, **box)
    assert max(need) > budget  # but not for the whole window's
    with mock.patch.object(slices, "_memory_budget", lambda: budget):
        with pytest.warns(maso.errors.MemoryBudgetWarning, match="tiles="):
            whole = maso.slice_regions(net, plane, **box)
        tiled = maso.slice_regions(net, plane, **box, tiles=4)
    assert whole.stats["carry_stopped"] and not tiled.stats["carry_stopped"]
    _assert_same_slice(tiled, free, atol=1e-9)


def test_tiles_with_the_lp_method():
    net = maso.mlp([2, 8, 8, 1], seed=2)
    box = {"lo": (-1, -1), "hi": (1, 1)}
    lp = maso.slice_regions(net, **box, method="lp", tiles=2)
    assert lp.method == "lp" and lp.stats["tiles"] == 4
    _assert_same_slice(lp, maso.slice_regions(net, **box), atol=1e-7)


@pytest.mark.parametrize("bad", [0, -1, (2,), (2, 0), (1, 2, 3), 1.5, "2", True, None, 10_001])
def test_bad_tiles_are_a_parameter_error(bad):
    net = maso.mlp([2, 4, 1], seed=0)
    with pytest.raises(maso.errors.ParameterError, match="tiles"):
        maso.slice_regions(net, tiles=bad)


def test_one_tile_is_the_untiled_slice():
    net = maso.mlp([2, 8, 8, 1], seed=0)
    a, b = maso.slice_regions(net), maso.slice_regions(net, tiles=(1, 1))
    for key in ("vertices", "polygon_vertices", "areas", "varying_codes"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert "tiles" not in b.stats



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_tiled_slice_equals_the_cpu_one():  # pragma: no cover - GPU machines
    module, shape, _ = random_model(2, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(2, shape, 3))
    box = {"lo": (0.0, 0.0), "hi": (0.4, 0.4), "tiles": 3}
    _assert_same_slice(maso.slice_regions(net, plane, device="cuda", **box), maso.slice_regions(net, plane, **box),
                       atol=1e-9)


# ---------------------------------------------------------------- review findings (each failed before its fix)
@pytest.mark.parametrize("case", ["wedge tip past the line", "boundary within 5e-12 of the line",
                                  "mirrored boundary", "LP strip narrower than the LP tolerance"])
def test_pieces_that_meet_along_a_very_short_stretch_are_joined(case):
    """Pieces of one region meet along a stretch of tile line far shorter than the snapping tolerance times the
    coordinates (a wedge's tip just past the line; a thin strip between the line and a parallel boundary, whose
    two edges on one side overlap); they are one region, as in the untiled slice, with no duplicate code."""
    lp = case.startswith("LP")
    if case.startswith("wedge"):
        s, x0 = 0.1, 1e-11
        layer, box = Dense(np.array([[s, 1.0], [s, -1.0]]), np.array([-s * x0, -s * x0])), ((-1, -1), (1, 1))
    elif case.startswith("boundary"):
        layer, box = Dense(np.array([[-1.0, 0.0]]), np.array([10 - 5e-12])), ((9, -1), (11, 1))
    elif case.startswith("mirrored"):
        layer, box = Dense(np.array([[1.0, 0.0]]), np.array([-10 + 5e-12])), ((9, -1), (11, 1))
    else:
        layer, box = Dense(np.array([[0.0, 1.0], [0.0, -1.0]]), np.array([-0.3, 0.3 + 1.5e-9])), ((-1, -1), (1, 1))
    net = maso.Network.sequential((2,), [layer, relu()])
    method = "lp" if lp else "mesh"
    whole = maso.slice_regions(net, lo=box[0], hi=box[1], method=method)
    tiled = maso.slice_regions(net, lo=box[0], hi=box[1], method=method, tiles=(2, 1))
    assert len(tiled) == len(whole) and set(_by_code(tiled)) == set(_by_code(whole))
    assert tiled.stats["duplicate_codes"] == 0
    np.testing.assert_array_equal(tiled.find(tiled.interior_points), np.arange(len(tiled)))


def test_tiled_argmax_ties_use_the_whole_window_scale():
    """A tile where both outputs are exactly 0 (every unit dead there) ties: class 0, as in the untiled slice.
    With each tile's own scale, rounding noise of 5e-17 at a vertex on a unit boundary decided it."""
    net = maso.Network.sequential((2,), [Dense(np.array([[1.0, 0.3], [0.2, 1.0]]), np.array([0.1, -0.2])), relu(),
                                         Dense(np.array([[1.0, -1.0], [0.5, 2.0]]), np.zeros(2))])
    whole = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1)).argmax_cells()
    for tiles in (7, 20):
        cells = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=tiles).argmax_cells()
        np.testing.assert_allclose(cells.class_areas(), whole.class_areas(), rtol=1e-12)


def test_areas_far_from_the_origin():
    """A 1e-3 window at (1e6, 1e6): areas are exact to rounding of the window's own size (the shoelace sums run
    relative to a vertex of each polygon; on absolute coordinates they came out 100x the window)."""
    net = maso.Network.sequential((2,), [Dense(np.array([[1.0, 0.3], [0.2, -1.0]]),
                                               np.array([-1e6 - 8e-4, -8e5 + 5e-4])), relu()])
    lo, hi = np.array([1e6, 1e6]), np.array([1e6 + 1e-3, 1e6 + 1e-3])
    window = float(np.prod(hi - lo))
    for tiles in (1, 3):
        sl = maso.slice_regions(net, lo=lo, hi=hi, tiles=tiles)
        assert sl.areas.sum() == pytest.approx(window, rel=1e-9)
        for i in range(len(sl)):
            p = sl.polygon(i) - sl.polygon(i)[0]
            assert sl.areas[i] == pytest.approx(0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1)
                                                             * p[:, 1]), rel=1e-9)


def test_tile_warnings_are_said_once_at_the_caller(monkeypatch):
    from maso.slices import _slice as slices

    module, shape, _ = random_model(2, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(2, shape, 3))
    monkeypatch.setattr(slices, "_memory_budget", lambda: 1e4)
    with pytest.warns(maso.errors.MemoryBudgetWarning) as caught:
        maso.slice_regions(net, plane, lo=(0.1, 0.1), hi=(0.3, 0.3), tiles=2)
    assert len(caught) == 1 and caught[0].filename == __file__ and "from 4 tiles" in str(caught[0].message)
