"""The compiled kernels (numba, extra "fast") give bit-identical enumerations to the NumPy code they replace."""

from __future__ import annotations

import numpy as np
import pytest

import maso
from maso import kernels as _kernels
from maso.layers import Dense, relu
from maso.regions import _driver as R
from maso.regions._parallel import _pack_regions

pytestmark = pytest.mark.skipif(not _kernels.AVAILABLE, reason="numba not installed (extra 'fast')")


def _without_kernels(monkeypatch):
    for name in _kernels._NAMES:  # every kernel, so each comparison runs the whole NumPy path
        monkeypatch.setattr(_kernels, name, None)


def _cases():
    rng = np.random.default_rng(0)
    yield "4-[8]x3", maso.mlp([4, 8, 8, 8, 1], seed=0), 1.0
    yield "leaky 3-[10]x2", maso.mlp([3, 10, 10, 1], seed=1, activation="leaky_relu", negative_slope=0.1), 1.0
    yield "maxout 3-[6]x2", maso.mlp([3, 6, 6, 1], seed=2, activation="maxout", pieces=3), 1.0
    W, b = rng.normal(size=(70, 2)), rng.normal(size=70)  # cells with more than 64 rows: two-word incidences
    yield "2-70", maso.Network.sequential((2,), [Dense(W, b), relu()]), 3.0
    W = rng.normal(size=(4, 3))
    dup = maso.Network.sequential((3,), [Dense(np.vstack([W, W[:2], np.zeros((1, 3))]),
                                               np.concatenate([rng.normal(size=4) * 0.3, [0.1, 0.2], [0.5]])),
                                         relu(), Dense(rng.normal(size=(5, 7)), np.zeros(5)), relu()])
    yield "duplicated, constant", dup, 1.0
    yield "bias-free", maso.Network.sequential((3,), [Dense(rng.normal(size=(6, 3)), np.zeros(6)), relu(),
                                                    Dense(rng.normal(size=(4, 6)), np.zeros(4)), relu()]), 1.0


@pytest.mark.parametrize("name, net, half", list(_cases()), ids=[c[0] for c in _cases()])
def test_kernels_and_numpy_give_identical_regions(monkeypatch, name, net, half):
    d = net.input_dim
    box = maso.Box(-half * np.ones(d), half * np.ones(d))
    fast = _pack_regions(list(maso.enumerate_regions(net, box, progress=False, method="vertices")))
    _without_kernels(monkeypatch)
    slow = _pack_regions(list(maso.enumerate_regions(net, box, progress=False, method="vertices")))
    assert fast["n"] == slow["n"] > 0
    for key in slow:
        assert np.array_equal(fast[key], slow[key]), (name, key)


def test_facets_of_a_cell_with_more_than_64_vertices(monkeypatch):
    net = maso.Network.sequential((7,), [Dense(np.ones((1, 7)), np.zeros(1)), relu()])
    eng, _ = R._prepare(net, maso.Box(-np.ones(7), np.ones(7)), 1e-9, "test", "vertices")
    root = eng.root()
    assert len(root.V) == 128
    fast = eng.facets_from_vertices(root)
    _without_kernels(monkeypatch)
    assert fast == eng.facets_from_vertices(eng.root()) and len(fast) == 14


def test_certificate_kernel_matches_numpy(monkeypatch):
    from maso._lp import _certified

    rng = np.random.default_rng(4)
    cases = []
    for _ in range(300):
        G = rng.normal(size=(rng.integers(1, 12), 3))
        c = rng.normal(size=3)
        r = float(rng.uniform(0, 1))
        h = G @ c + r + rng.normal(size=len(G)) * 1e-9
        cases.append((G, h, c, r))
    cases.append((np.ones((2, 3)), np.ones(2), np.array([np.nan, 0, 0]), 0.1))
    cases.append((np.ones((2, 3)), np.ones(2), np.zeros(3), np.inf))
    fast = [_certified(*case) for case in cases]
    _without_kernels(monkeypatch)
    slow = [_certified(*case) for case in cases]
    assert fast == slow and 0 < sum(fast) < len(fast)


def _slice_cases():
    rng = np.random.default_rng(3)
    yield "2-[16]x3 +-10", maso.mlp([2, 16, 16, 16, 1], seed=0), 10.0
    yield "leaky 2-[12]x2", maso.mlp([2, 12, 12, 3], seed=1, activation="leaky_relu", negative_slope=0.1), 2.0
    yield "maxout 2-[6]x2", maso.mlp([2, 6, 6, 2], seed=2, activation="maxout", pieces=3), 2.0
    W = rng.normal(size=(5, 2))  # duplicated, constant and bias-free units: cuts through vertices, concurrent lines
    yield "degenerate", maso.Network.sequential((2,), [Dense(np.vstack([W, W[:2], np.zeros((1, 2))]),
                                                             np.concatenate([np.zeros(5), [0.0, 0.0], [0.5]])),
                                                       relu(), Dense(rng.normal(size=(4, 8)), np.zeros(4)), relu(),
                                                       Dense(rng.normal(size=(3, 4)), rng.normal(size=3))]), 1.0


@pytest.mark.parametrize("name, net, half", list(_slice_cases()), ids=[c[0] for c in _slice_cases()])
def test_mesh_kernel_and_numpy_give_identical_slices(monkeypatch, name, net, half):
    def run():
        s = maso.slice_regions(net, lo=(-half, -half), hi=(half, half), progress=False)
        return s, s.decision_boundary()

    fast, fast_db = run()
    _without_kernels(monkeypatch)
    slow, slow_db = run()
    assert len(fast) == len(slow) > 1
    for key in ("vertices", "polygon_offsets", "polygon_vertices", "codes", "areas", "interior_points",
                "adjacency"):
        assert np.array_equal(getattr(fast, key), getattr(slow, key)), (name, key)
    assert np.array_equal(fast_db, slow_db)
    assert len(fast_db) > 0 or name.startswith(("2-[16]", "leaky"))  # their outputs keep one sign/argmax here
    assert fast.stats["snapped"] == slow.stats["snapped"] and fast.stats["merged"] == slow.stats["merged"]


def test_mesh_kernel_defers_degenerate_cuts_to_numpy():
    """A cut meeting a face in three points leaves the mesh untouched and the NumPy path raises."""
    from maso.slices._mesh import Mesh, MeshDegeneracy

    mesh = Mesh(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    mesh.codes = np.zeros((1, 1), dtype=np.uint8)
    before = (mesh.P.copy(), mesh.E.copy(), mesh.EF.copy())
    d = np.array([1.0, -1.0, 1.0, -1.0])  # not affine on the square: four crossings
    mesh._reserve()
    assert _kernels.mesh_split(mesh._P, mesh._Z, mesh._src, mesh._tt, mesh._gen, mesh._E, mesh._EF, mesh._parent,
                               mesh._codes, mesh.nV, mesh.nE, mesh.nF, d) == (-1, -1)
    assert all(np.array_equal(a, b) for a, b in zip(before, (mesh.P, mesh.E, mesh.EF)))
    with pytest.raises(MeshDegeneracy):
        mesh.split(d)


def test_layer_loop_hands_a_degenerate_cut_to_numpy():
    """In the compiled per-layer loop, a column whose cut is degenerate goes to the NumPy split, which raises."""
    from maso.slices._mesh import Mesh, MeshDegeneracy

    mesh = Mesh(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    mesh.codes = np.zeros((1, 1), dtype=np.uint8)
    ok = np.array([1.0, 1.0, -1.0, -1.0])  # the line y = 1/2: a proper cut
    bad = np.array([1.0, -1.0, 1.0, -1.0])  # four sign changes around a face: not affine on it
    mesh.set_values(np.stack([ok, bad], axis=1))
    with pytest.raises(MeshDegeneracy):
        mesh.cut_columns(1e-12)
    assert mesh.nF == 2  # the first column's cut was made before the second failed


def _compiled_and_numpy(monkeypatch, cut):
    """Two meshes over [-1, 1]^2 (one code column) after ``cut(mesh)``: with the compiled kernels, then without."""
    from maso.slices._mesh import Mesh

    meshes = []
    for compiled in (True, False):
        if not compiled:
            _without_kernels(monkeypatch)
        mesh = Mesh(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
        mesh.codes = np.zeros((1, 1), dtype=np.uint8)
        cut(mesh)
        meshes.append(mesh)
    return meshes


@pytest.mark.parametrize("n_lines", [9, 40, 150])
def test_a_layer_of_cuts_in_one_compiled_call_equals_numpy_cut_by_cut(monkeypatch, n_lines):
    """`mesh_cut_columns` keeps its work arrays (face flags, new-face numbers, edge lists) and a block of columns
    across the cuts of one call: the whole mesh (vertices, values, provenance, edges, faces, parents, codes)
    equals the NumPy path's, bit for bit, with coincident lines, lines through earlier crossings (zero vertices),
    a line along an edge, values snapped to zero and lines that miss the square."""

    rng = np.random.default_rng(n_lines)
    W = rng.normal(size=(n_lines, 2))
    b = rng.uniform(-1.2, 1.2, size=n_lines) * np.linalg.norm(W, axis=1)
    W[3], b[3] = 2.0 * W[1], 2.0 * b[1]  # coincident with line 1
    W[4], b[4] = W[0] + W[1], b[0] + b[1]  # through the crossing of lines 0 and 1
    W[5], b[5] = (1.0, 0.0), 0.0  # x = 0 (through the crossings of later lines with it)
    W[6], b[6] = (1.0, 0.0), 1e-15  # x = 0 again, but for a value that snaps to zero
    W[7], b[7] = (0.0, 1.0), -1.0  # along the square's top edge: no cut
    W[8], b[8] = (0.0, 1.0), 5.0  # misses the square
    def cut(mesh):
        mesh.set_values(mesh.P @ W.T + b)
        cut, over = mesh.cut_columns(1e-12)
        assert not over and cut > 0

    fast, slow = _compiled_and_numpy(monkeypatch, cut)
    assert (fast.nV, fast.nE, fast.nF, fast.snapped) == (slow.nV, slow.nE, slow.nF, slow.snapped)
    assert fast.snapped > 0
    for a, c in zip((fast.P, fast.Z, *fast.sources, fast.E, fast.EF, fast.parent, fast.codes),
                    (slow.P, slow.Z, *slow.sources, slow.E, slow.EF, slow.parent, slow.codes)):
        assert a.dtype == c.dtype and np.array_equal(a, c)


@pytest.mark.parametrize("seed, kind, half", [(2, "inception", 0.2), (6, "cnn", 0.2), (5, "inception", 0.1)])
def test_mesh_kernels_and_numpy_give_identical_pooling_slices(monkeypatch, seed, kind, half):
    """Max-pooling layers (padded 3x3 windows: border units have fewer pieces) go through the compiled piece
    cuts and face winners; the NumPy loop gives the same slice, bit for bit."""
    import torch
    from archs import random_inputs, random_model

    module, shape, _ = random_model(seed, kind)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(seed, shape, 3))
    box = {"lo": (-half, -half), "hi": (half, half), "progress": False}
    fast = maso.slice_regions(net, plane, **box)
    _without_kernels(monkeypatch)
    slow = maso.slice_regions(net, plane, **box)
    assert len(fast) == len(slow) > 200
    for key in ("vertices", "polygon_offsets", "polygon_vertices", "codes", "areas", "interior_points"):
        assert np.array_equal(getattr(fast, key), getattr(slow, key)), (kind, key)
    assert fast.stats["snapped"] == slow.stats["snapped"] and fast.stats["merged"] == slow.stats["merged"]


def _piece_mesh(seed: int):
    """A mesh of the unit square already cut by a few lines, with the piece scores of 40 units of 4 pieces:
    random affine functions of the plane, some pieces exact copies of others (ties), some invalid."""
    from maso.slices._mesh import Mesh

    rng = np.random.default_rng(seed)
    mesh = Mesh(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    mesh.codes = np.zeros((1, 1), dtype=np.uint8)
    for _ in range(6):
        a = rng.normal(size=2)
        mesh.split(mesh.P @ a - rng.uniform(0.2, 0.8) * a.sum())
    U, R = 40, 4
    A = rng.normal(size=(U, R, 3))
    A[::5, 1] = A[::5, 0]  # tied pieces
    A[1::7, 2, :2] = 0.0  # a constant piece
    valid = rng.uniform(size=(U, R)) > 0.15
    P = np.c_[mesh.P, np.ones(mesh.nV)]
    mesh.set_values(np.einsum("vk,urk->vur", P, A).reshape(mesh.nV, -1))
    mesh.Z.reshape(mesh.nV, U, R)[:, ~valid] = 0.0
    return mesh, R, valid, A


@pytest.mark.parametrize("seed", range(5))
def test_piece_cuts_and_winners_kernels_match_numpy(monkeypatch, seed):
    def run():
        mesh, R, valid, _ = _piece_mesh(seed)
        mesh.parent = np.arange(mesh.nF)
        cut = mesh.cut_pieces(R, valid, 1e-9)
        return mesh, cut, mesh.piece_codes(R, valid, 1e-9)

    fast, fast_cut, fast_codes = run()
    _without_kernels(monkeypatch)
    slow, slow_cut, slow_codes = run()
    assert fast_cut == slow_cut and fast_cut[0] > 10
    for key in ("P", "Z", "E", "EF", "parent"):
        assert np.array_equal(getattr(fast, key), getattr(slow, key)), key
    assert fast.snapped == slow.snapped
    assert np.array_equal(fast_codes, slow_codes)
    # independently, from the affine functions themselves: every face lies where its code's piece wins (at each
    # of its vertices, within rounding), and at its vertex centroid the code is the lowest best valid piece
    _, _, valid, A = _piece_mesh(seed)
    def scores(X):
        S = np.einsum("vk,urk->vur", np.c_[X, np.ones(len(X))], A)
        return np.where(valid, S, -np.inf)

    S = scores(fast.P)
    for j in (0, 1):
        for k in (0, 1):
            f, v = fast.EF[:, j], fast.E[:, k]
            f, v = f[f >= 0], v[f >= 0]
            won = np.take_along_axis(S[v], fast_codes[f][:, :, None], axis=2)[:, :, 0]
            assert np.all(won >= S[v].max(axis=2) - 1e-9)
    C = scores(fast.face_means(fast.P))
    expected = (C >= C.max(axis=2, keepdims=True) - 1e-12).argmax(axis=2)
    assert np.array_equal(fast_codes, expected)


def test_a_piece_that_changes_sign_only_at_vertices_of_an_earlier_cut_is_cut(monkeypatch):
    """Pieces x, -x and 1/2 on [-1, 1]^2: the third is below |x| at every corner, so it takes one sign until the
    cut of -x against x adds vertices on x = 0, where it wins. The compiled loop, which tests each piece's signs
    in one pass and adds the new vertices' signs after a cut, must still cut there: four faces (x < -1/2,
    -1/2 < x < 0, 0 < x < 1/2, x > 1/2), as the NumPy loop gives, bit for bit."""

    def cut(mesh):
        x = mesh.P[:, 0]
        mesh.set_values(np.stack([x, -x, np.full_like(x, 0.5)], axis=1))
        assert mesh.cut_pieces(3, np.ones((1, 3), dtype=bool), 1e-12) == (3, False)

    fast, slow = _compiled_and_numpy(monkeypatch, cut)
    assert fast.nF == slow.nF == 4
    assert sorted(np.unique(fast.P[:, 0])) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    for a, c in zip((fast.P, fast.Z, fast.E, fast.EF, fast.parent), (slow.P, slow.Z, slow.E, slow.EF, slow.parent)):
        assert np.array_equal(a, c)


def test_piece_cuts_respect_the_face_budget(monkeypatch):
    def run():
        mesh, R, valid, _ = _piece_mesh(0)
        return mesh.cut_pieces(R, valid, 1e-9, max_faces=30), mesh.nF

    fast = run()
    _without_kernels(monkeypatch)
    slow = run()
    assert fast == slow and fast[0][1] and 30 < fast[1]


def test_piece_cuts_hand_a_degenerate_cut_to_numpy():
    from maso.slices._mesh import Mesh, MeshDegeneracy

    mesh = Mesh(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    mesh.codes = np.zeros((1, 1), dtype=np.uint8)
    ok = np.array([1.0, 1.0, -1.0, -1.0])  # the line y = 1/2: a proper cut
    bad = np.array([1.0, -1.0, 1.0, -1.0])  # four sign changes around a face: not affine on it
    zero = np.zeros(4)
    mesh.set_values(np.stack([zero, ok, zero, bad], axis=1))  # two units of two pieces
    with pytest.raises(MeshDegeneracy):
        mesh.cut_pieces(2, np.ones((2, 2), dtype=bool), 1e-12)
    assert mesh.nF == 2  # the first unit's cut was made before the second failed


def test_piece_cuts_resume_after_growing_the_arrays(monkeypatch):
    """Arrays trimmed to the mesh's size: the compiled loop stops at its first cut for room, grows them and
    resumes mid-unit (the best piece formed again); the result equals the NumPy loop's."""
    calls = []
    kernel = _kernels.mesh_cut_pieces

    def counted(*args):
        out = kernel(*args)
        calls.append(out[0])
        return out

    def run():
        mesh, R, valid, _ = _piece_mesh(1)
        for name in ("_P", "_Z", "_src", "_tt", "_gen"):
            setattr(mesh, name, getattr(mesh, name)[:mesh.nV].copy())
        mesh._E, mesh._EF = mesh._E[:mesh.nE].copy(), mesh._EF[:mesh.nE].copy()
        mesh._parent, mesh._codes = mesh._parent[:mesh.nF].copy(), mesh._codes[:mesh.nF].copy()
        cut = mesh.cut_pieces(R, valid, 1e-9)
        return mesh, cut

    monkeypatch.setattr(_kernels, "mesh_cut_pieces", counted)
    fast, fast_cut = run()
    assert calls[0] == 1 and calls[-1] == 0  # it did stop for room, and finished
    _without_kernels(monkeypatch)
    slow, slow_cut = run()
    assert fast_cut == slow_cut and fast.snapped == slow.snapped
    for key in ("P", "Z", "E", "EF", "parent"):
        assert np.array_equal(getattr(fast, key), getattr(slow, key)), key
