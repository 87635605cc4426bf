"""Exact 2-D slices: against exact rational polygon splitting, the LP enumerator on the same plane, dense
sampling, degenerate planes and arrangements, decision boundaries, plots and typed errors."""

from __future__ import annotations

import warnings

import exact2d
import numpy as np
import pytest
import torch
from archs import random_inputs, random_model
from cases import degenerate_nets as _degenerate_nets, mlp_from_weights as _mlp, random_2d_case
from hypothesis import given, settings, strategies as st

import maso
from maso.layers import Dense, relu


def _code_set(codes: np.ndarray) -> set[bytes]:
    return {np.asarray(c, dtype=np.uint8).tobytes() for c in codes}


def _by_code(sl: maso.slices.SliceRegions) -> dict[bytes, int]:
    return {np.asarray(c, dtype=np.uint8).tobytes(): i for i, c in enumerate(sl.codes)}


# --------------------------------------------------------------------------------- exact references
@settings(max_examples=30)
@given(seed=st.integers(0, 2**20), depth=st.integers(1, 3), act=st.sampled_from(["relu", "leaky", "abs"]))
def test_slice_equals_exact_rational_reference(seed, depth, act):
    """Property: regions, codes and areas equal exact polygon splitting in rational arithmetic."""
    net, ref = random_2d_case(seed, depth, act, max_width=7)
    sl = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    assert len(sl) == len(ref)
    ref_area = {np.array(c, dtype=np.uint8).tobytes(): exact2d.area(p) for p, c in ref}
    assert _code_set(sl.codes) == set(ref_area)
    for key, i in _by_code(sl).items():
        assert sl.areas[i] == pytest.approx(float(ref_area[key]), rel=1e-9, abs=1e-12)
    assert sl.areas.sum() == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("name, hidden", list(_degenerate_nets()), ids=[n for n, _ in _degenerate_nets()])
def test_degenerate_arrangements_exact(name, hidden):
    """Duplicated, zero-weight, dead units, zero biases, concurrent lines and a line through a corner of the
    rectangle give the exact rational counts, with nothing merged by rounding."""
    rng = np.random.default_rng(0)
    net = _mlp(hidden + [(rng.normal(size=(1, hidden[-1][0].shape[0])), np.zeros(1))])
    ref = exact2d.regions([(W, b, (0.0, 1.0)) for W, b in hidden], -1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", maso.errors.NumericalWarning)
        sl = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    assert len(sl) == len(ref), name
    assert _code_set(sl.codes) == {np.array(c, dtype=np.uint8).tobytes() for _, c in ref}
    assert sl.stats["merged"] == 0 and sl.stats["duplicate_codes"] == 0
    assert sl.areas.sum() == pytest.approx(4.0, rel=1e-12)


def test_plane_containing_a_boundary():
    """A plane inside a unit's hyperplane: that unit is zero on the whole slice and cuts nothing; the slice
    equals the LP enumerator's on the same plane."""
    rng = np.random.default_rng(3)
    W1, b1 = rng.normal(size=(6, 3)), rng.normal(size=6) * 0.3
    W1[0] = [0.0, 0.0, 1.0]
    b1[0] = -0.25  # unit 0 is zero on the plane x3 = 0.25
    W2, b2 = rng.normal(size=(5, 6)), rng.normal(size=5) * 0.3
    net = _mlp([(W1, b1), (W2, b2), (rng.normal(size=(1, 5)), np.zeros(1))])
    plane = maso.Plane(np.array([0.0, 0.0, 0.25]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    sl = maso.slice_regions(net, plane, lo=(-1, -1), hi=(1, 1))
    lp = maso.slice_regions(net, plane, lo=(-1, -1), hi=(1, 1), method="lp")
    assert len(sl) == len(lp) and _code_set(sl.codes) == _code_set(lp.codes)
    assert np.all(sl.codes[:, 0] == 0)  # on its boundary the unit sits on its lowest piece


# ------------------------------------------------------------------------------------ mesh == LP
@pytest.mark.parametrize("seed", range(10))
def test_mesh_equals_lp_enumerator_on_random_models(seed):
    """Property: on a plane through three random inputs of random models of every kind (max-pool, maxout,
    residual, concat, leaky, abs, PReLU...), the mesh gives the LP enumerator's regions: codes, areas, neighbours."""
    module, shape, kind = random_model(seed)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(seed, shape, 3))
    w = 0.25

    def mesh(w):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*slice regions are thinner", maso.errors.NumericalWarning)
            return maso.slice_regions(net, plane, lo=(0.1, 0.1), hi=(0.1 + w, 0.1 + w))

    sl = mesh(w)
    while len(sl) > 800:  # a smaller window keeps the LP enumerator's run short
        w /= 2
        sl = mesh(w)
    box = {"lo": (0.1, 0.1), "hi": (0.1 + w, 0.1 + w)}
    lp = maso.slice_regions(net, plane, method="lp", **box)
    assert len(sl) == len(lp), kind
    # a region whose float64 vertices do not resolve it is reported (stats and a NumericalWarning); whether a
    # tiny triangle of near-concurrent boundaries (sides ~1e-8, area ~3e-16) falls below 64 ulps depends on
    # the CPU's rounding, so this property test tolerates at most one, of negligible area
    assert sl.stats["slivers"] <= 1 and (sl.stats["slivers"] == 0 or sl.areas.min() < 1e-12 * w**2)
    assert _code_set(sl.codes) == _code_set(lp.codes), kind
    area_lp = {k: lp.areas[i] for k, i in _by_code(lp).items()}
    for k, i in _by_code(sl).items():
        assert sl.areas[i] == pytest.approx(area_lp[k], rel=1e-7, abs=1e-9)
    assert sl.areas.sum() == pytest.approx(w**2, rel=1e-10)
    to_lp = {i: _by_code(lp)[k] for k, i in _by_code(sl).items()}
    assert {tuple(sorted((to_lp[int(i)], to_lp[int(j)]))) for i, j in sl.adjacency} == \
        {tuple(p) for p in lp.adjacency.tolist()}


def test_regions_hold_their_codes_and_maps():
    """Every region's interior point has the region's code; dense samples in a region share its code and its
    affine map (in plane coordinates) reproduces the network on them."""
    net = maso.mlp([5, 12, 12, 3], seed=4)
    plane = maso.Plane.through_points(*np.random.default_rng(4).normal(size=(3, 5)))
    sl = maso.slice_regions(net, plane)
    np.testing.assert_array_equal(sl.codes, net.codes(plane(sl.interior_points)))
    rng = np.random.default_rng(0)
    st_ = rng.uniform(sl.lo, sl.hi, size=(4000, 2))
    idx = sl.find(st_)
    assert np.all(idx >= 0)
    np.testing.assert_array_equal(sl.codes[idx], net.codes(plane(st_)))
    f = sl.affine
    y = np.einsum("nij,nj->ni", f.A[idx], st_) + f.b[idx]
    np.testing.assert_allclose(y, net(plane(st_)), rtol=1e-9, atol=1e-9)
    # the plane map is the chain rule of the full-space map
    full = net.affine_at(plane(sl.interior_points[0]))
    np.testing.assert_allclose(f.A[0], full.A @ plane.directions.T, atol=1e-10)
    r = sl[0]
    assert r.area > 0 and r.polygon.shape[1] == 2 and r.affine.A.shape == (3, 2)
    for j in r.neighbours:
        assert 0 in sl[j].neighbours


def test_polygons_are_convex_ccw_and_graph_flips():
    net = maso.mlp([2, 16, 16, 1], seed=2)
    sl = maso.slice_regions(net, lo=(-2, -2), hi=(2, 2))
    for i in range(len(sl)):
        P = sl.polygon(i)
        e = np.roll(P, -1, axis=0) - P
        cross = e[:, 0] * np.roll(e[:, 1], -1) - e[:, 1] * np.roll(e[:, 0], -1)
        assert np.all(cross > 0)  # strictly convex, counter-clockwise (collinear vertices removed)
    g = sl.graph()
    assert g.number_of_edges() == len(sl.adjacency)
    for i, j, data in g.edges(data=True):
        np.testing.assert_array_equal(data["units"], np.flatnonzero(sl.codes[i] != sl.codes[j]))


def test_subnetwork_slice_matches_lp():
    """A slice of the input space of layer L, with the boundaries of layers L..K only."""
    net = maso.mlp([3, 10, 10, 10, 2], seed=5)
    tail = net.subnetwork(start="1")
    h = net.activations(np.random.default_rng(5).normal(size=(3, 3)), ["1"])["1"]
    plane = maso.Plane.through_points(*h)
    sl = maso.slice_regions(tail, plane)
    lp = maso.slice_regions(tail, plane, method="lp")
    assert len(sl) == len(lp) and _code_set(sl.codes) == _code_set(lp.codes)
    assert sl.codes.shape[1] == tail.n_units == 20


def test_one_generic_layer_closed_form():
    """n lines in general position whose crossings all lie inside the rectangle: 1 + n + C(n, 2) regions."""
    rng = np.random.default_rng(11)
    n = 9
    W, b = rng.normal(size=(n, 2)), rng.normal(size=n)
    pts = [np.linalg.solve(W[[i, j]], -b[[i, j]]) for i in range(n) for j in range(i + 1, n)]
    h = 1.5 * float(np.max(np.abs(pts)))
    net = maso.Network.sequential((2,), [Dense(W, b), relu()])
    assert len(maso.slice_regions(net, lo=(-h, -h), hi=(h, h))) == 1 + n + n * (n - 1) // 2


# ------------------------------------------------------------------------- dense chains in NumPy
def _chain_nets():
    """Chains that slices evaluate with ``DenseChain``: ReLU, leaky ReLU, abs, per-unit PReLU, a concave leaky
    ReLU (slope 3: sign -1), a flatten, and a plane restriction of a 40-D input."""
    for act in ("relu", "leaky_relu", "abs"):
        module = maso.nn.mlp_module([2, 9, 9, 3], seed=3, activation=act, dtype=torch.float64)
        yield act, maso.from_torch(module, torch.zeros(1, 2, dtype=torch.float64)), None
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the global generator
        torch.manual_seed(7)
        m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 7), torch.nn.PReLU(7), torch.nn.Linear(7, 5),
                                torch.nn.LeakyReLU(3.0), torch.nn.Linear(5, 2)).double()
        with torch.no_grad():
            m[2].weight.copy_(torch.rand(7, dtype=torch.float64) - 0.5)
    net = maso.from_torch(m, torch.zeros(1, 2, 3, dtype=torch.float64))
    yield "prelu+concave", net, maso.Plane.through_points(*np.random.default_rng(1).normal(size=(3, 2, 3)))
    wide = maso.mlp([40, 12, 12, 2], seed=8)
    yield "plane in 40-D", wide, maso.Plane.through_points(*np.random.default_rng(2).normal(size=(3, 40)))


@pytest.mark.parametrize("name, net, plane", list(_chain_nets()), ids=[n for n, _, _ in _chain_nets()])
def test_dense_chain_values_equal_the_torch_forward(name, net, plane):
    """The NumPy evaluator of chains gives every node after its composed head as torch's forward does."""
    from maso.slices._anchored import DenseChain

    flat = net if plane is None else net.restrict(plane.origin.ravel(), plane.directions)
    chain = DenseChain.of(flat)
    assert chain is not None
    st_ = np.random.default_rng(0).uniform(-2, 2, size=(500, 2))
    acts = flat.activations(st_)
    for i in range(chain._head, len(flat.nodes)):
        node = flat.nodes[i]
        np.testing.assert_allclose(chain.value(None, st_, i), acts[node.name], rtol=1e-12, atol=1e-12,
                                   err_msg=f"{name}: node {node.name}")
    chain._BLOCK = 40  # in row blocks: a wide layer never holds all points
    np.testing.assert_allclose(chain.value(None, st_, len(flat.nodes) - 1),
                               DenseChain.of(flat).value(None, st_, len(flat.nodes) - 1), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name, net, plane", list(_chain_nets()), ids=[n for n, _, _ in _chain_nets()])
def test_dense_chain_slices_equal_the_torch_evaluated_slices(name, net, plane, monkeypatch):
    """Slices of chains (NumPy evaluation) equal the slices that the general evaluator (torch, from anchor
    points) gives: same regions and codes, polygons equal to rounding."""
    from maso.slices._anchored import DenseChain

    box = {"lo": (-1.5, -1.5), "hi": (1.5, 1.5)}
    fast = maso.slice_regions(net, plane, **box)
    monkeypatch.setattr(DenseChain, "of", classmethod(lambda cls, net: None))
    general = maso.slice_regions(net, plane, **box)
    assert len(fast) == len(general) > 20, name
    order_f, order_g = np.lexsort(fast.codes.T), np.lexsort(general.codes.T)
    np.testing.assert_array_equal(fast.codes[order_f], general.codes[order_g])
    np.testing.assert_allclose(fast.areas[order_f], general.areas[order_g], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.interior_points[order_f], general.interior_points[order_g], atol=1e-9)


def test_dense_chain_declines_other_graphs():
    """Max-pooling, maxout, convolutions, residual sums: the general evaluator runs instead."""
    from maso.slices._anchored import DenseChain

    assert DenseChain.of(maso.mlp([2, 4, 4, 1], seed=0)) is not None
    assert DenseChain.of(maso.from_torch(maso.nn.mlp_module([2, 4, 1], seed=0, activation="maxout"),
                                         torch.zeros(1, 2))) is None
    for kind in ("cnn", "residual", "inception"):
        module, shape, _ = random_model(0, kind)
        assert DenseChain.of(maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))) is None, kind


@pytest.mark.parametrize("seed", range(6))
def test_carried_vertex_values_equal_recomputed_ones(seed, monkeypatch):
    """Graphs that are not MLPs carry the values of the nodes later layers read onto new mesh vertices (by
    interpolation) instead of recomputing them from the plane's anchors at every layer. Same slices either way,
    and the carrying does happen."""
    from maso.slices import _slice as slices

    kind = ("cnn", "residual", "inception")[seed % 3]
    module, shape, _ = random_model(seed, kind)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(seed, shape, 3))
    w = 2.0
    while len(maso.slice_regions(net, plane, lo=(-0.5, -0.5), hi=(w - 0.5, w - 0.5))) > 1500:
        w /= 2
    box = {"lo": (-0.5, -0.5), "hi": (w - 0.5, w - 0.5)}
    widths = []
    advance = slices._VertexValues.advance

    def spy(self, node):
        advance(self, node)
        widths.append(sum(h.shape[1] for h in self.carried.rows().values()) if self.carried is not None else 0)

    monkeypatch.setattr(slices._VertexValues, "advance", spy)
    carried = maso.slice_regions(net, plane, **box)
    assert max(widths) > 0, kind
    assert 0 < carried.stats["values_seconds"] < carried.stats["seconds"], kind  # the rest: the mesh's work
    monkeypatch.setattr(slices._VertexValues, "advance", lambda self, node: None)
    monkeypatch.setattr(slices._VertexValues, "prepare", lambda self, node: None)
    recomputed = maso.slice_regions(net, plane, **box)
    assert len(carried) == len(recomputed) > 5, kind
    assert _code_set(carried.codes) == _code_set(recomputed.codes), kind
    area = {k: recomputed.areas[i] for k, i in _by_code(recomputed).items()}
    for k, i in _by_code(carried).items():
        assert carried.areas[i] == pytest.approx(area[k], rel=1e-6, abs=1e-12)
    np.testing.assert_array_equal(carried.codes, net.codes(plane(carried.interior_points)))


def test_carrying_stops_within_the_memory_budget(monkeypatch):
    """When the carried values would outgrow the memory budget, layers are computed from the anchors again: the
    same slice, with a warning that names ``tiles`` and ``stats["carry_stopped"]``."""
    from maso.slices import _slice as slices

    module, shape, _ = random_model(2, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(2, shape, 3))
    free = maso.slice_regions(net, plane, lo=(0.1, 0.1), hi=(0.3, 0.3))
    monkeypatch.setattr(slices, "_memory_budget", lambda: 1e4)  # ~10 kB: nothing can be carried
    with pytest.warns(maso.errors.MemoryBudgetWarning, match=r"GiB, more than the memory budget .*tiles=\d+"):
        tight = maso.slice_regions(net, plane, lo=(0.1, 0.1), hi=(0.3, 0.3))
    monkeypatch.undo()  # (the full code rows below ask the same budget)
    assert len(tight) > 50
    assert len(tight) == len(free) and _code_set(tight.codes) == _code_set(free.codes)
    assert tight.stats["carry_stopped"] and not free.stats["carry_stopped"]


@pytest.mark.slow
def test_inception5_slice_codes_match_the_network(monkeypatch):
    """The article's setting (about 30 s): a plane through three activations in the 40,768-dimensional input of
    inception5a (mixed5a in the inception5h naming), with the boundaries of all later layers (194,432 units,
    max-pooling included). Every region's code is the network's code at its interior point, the areas fill the
    window, and the slice is the same with the vertex values recomputed instead of carried (this found max-pool
    ties scaled by rounding noise)."""
    from maso.slices import _slice as slices

    net = maso.from_torch(maso.nn.inception5_tail(seed=0, dtype=torch.float64),
                          torch.zeros(1, 832, 7, 7, dtype=torch.float64))
    assert net.input_dim == 40_768 and net.n_units == 194_432
    plane = maso.Plane.through_points(*np.maximum(np.random.default_rng(0).normal(size=(3, 832, 7, 7)), 0))
    box = {"lo": (0.2, 0.2), "hi": (0.2003, 0.2003)}
    sl = maso.slice_regions(net, plane, **box)
    assert len(sl) > 300
    np.testing.assert_array_equal(sl.codes, net.codes(plane(sl.interior_points)))
    assert sl.areas.sum() == pytest.approx(0.0003**2, rel=1e-9)
    monkeypatch.setattr(slices._VertexValues, "advance", lambda self, node: None)
    recomputed = maso.slice_regions(net, plane, **box)
    assert _code_set(recomputed.codes) == _code_set(sl.codes)


# ------------------------------------------------------------------------------- decision boundary
def test_decision_boundary_argmax_is_exact():
    net = maso.mlp([2, 10, 10, 3], seed=4)  # all three classes appear on the square
    sl = maso.slice_regions(net, lo=(-3, -3), hi=(3, 3))
    segs = sl.decision_boundary()
    assert len(segs)
    # every segment is a tie of the two largest outputs, all along it
    for w in (0.0, 0.3, 1.0):
        y = np.sort(net(segs[:, 0] + w * (segs[:, 1] - segs[:, 0])), axis=1)
        np.testing.assert_allclose(y[:, -1], y[:, -2], atol=1e-9)
    # wherever the sampled argmax changes between grid neighbours, a segment passes between them
    g = np.linspace(-3, 3, 161)
    X, Y = np.meshgrid(g, g)
    lab = net(np.stack([X.ravel(), Y.ravel()], 1)).argmax(1).reshape(X.shape)
    change = np.argwhere(lab[:, 1:] != lab[:, :-1])
    mids = np.stack([0.5 * (X[change[:, 0], change[:, 1]] + X[change[:, 0], change[:, 1] + 1]),
                     Y[change[:, 0], change[:, 1]]], 1)
    a, b = segs[:, 0], segs[:, 1]
    ab = b - a
    tt = np.clip(np.einsum("mnk,nk->mn", mids[:, None] - a[None], ab) / np.einsum("nk,nk->n", ab, ab), 0, 1)
    dist = np.linalg.norm(mids[:, None] - (a[None] + tt[..., None] * ab[None]), axis=2).min(1)
    assert np.all(dist <= g[1] - g[0])


def test_decision_boundary_of_one_output_is_its_zero_set():
    net = maso.mlp([2, 12, 12, 1], seed=7)
    sl = maso.slice_regions(net, lo=(-4, -4), hi=(4, 4))
    segs = sl.decision_boundary()
    assert len(segs)
    np.testing.assert_allclose(net(segs.reshape(-1, 2)), 0.0, atol=1e-9)
    net3 = maso.mlp([2, 6, 3], seed=1)
    sl3 = maso.slice_regions(net3, lo=(-4, -4), hi=(4, 4))
    s1 = sl3.decision_boundary(output=1)
    np.testing.assert_allclose(net3(s1.reshape(-1, 2))[:, 1], 0.0, atol=1e-9)
    with pytest.raises(maso.errors.ShapeError, match="output"):
        sl3.decision_boundary(output=3)


def test_linear_model_boundary_length():
    """A linear 2-class model: the boundary is one line; its length inside the square is known."""
    W = np.array([[1.0, 2.0], [0.0, 0.0]])
    net = maso.Network.sequential((2,), [Dense(W, np.array([0.5, 0.0]))])
    sl = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    assert len(sl) == 1
    segs = sl.decision_boundary()
    length = np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1).sum()
    # x + 2y + 0.5 = 0 from (-1, 0.25) to (1, -0.75)
    assert length == pytest.approx(np.hypot(2.0, 1.0), rel=1e-12)


# ---------------------------------------------------------------------------------- planes, errors
def test_plane_geometry():
    a, b, c = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
    plane = maso.Plane.through_points(a, b, c)
    np.testing.assert_allclose(plane(np.array([[0, 0], [1, 0], [0, 1]])), np.stack([a, b, c]))
    np.testing.assert_allclose(plane.coordinates(np.stack([a, b, c])), [[0, 0], [1, 0], [0, 1]], atol=1e-12)
    img = maso.Plane(np.zeros((1, 2, 2)), np.ones((1, 2, 2)), np.eye(2)[None])
    assert img(np.array([1.0, 1.0])).shape == (1, 2, 2)


def test_slice_errors():
    net = maso.mlp([3, 4, 1], seed=0)
    with pytest.raises(maso.errors.DomainError, match="linearly independent"):
        maso.Plane(np.zeros(3), np.ones(3), 2 * np.ones(3))
    with pytest.raises(maso.errors.ShapeError, match="one non-empty shape"):
        maso.Plane(np.zeros(3), np.ones(3), np.ones(2))
    with pytest.raises(maso.errors.ShapeError, match="needs a Plane"):
        maso.slice_regions(net)
    plane = maso.Plane(np.zeros(4), np.eye(4)[0], np.eye(4)[1])
    with pytest.raises(maso.errors.ShapeError, match="4 dimensions"):
        maso.slice_regions(net, plane)
    good = maso.Plane(np.zeros(3), np.eye(3)[0], np.eye(3)[1])
    with pytest.raises(maso.errors.DomainError, match="lo < hi"):
        maso.slice_regions(net, good, lo=(1, 0), hi=(0, 1))
    with pytest.raises(maso.errors.DomainError, match="lo and hi"):
        maso.slice_regions(net, good, lo=(0, 0, 0), hi=(1, 1, 1))
    with pytest.raises(maso.MasoError, match="method"):
        maso.slice_regions(net, good, method="fast")
    with pytest.raises(maso.errors.ShapeError, match="tol"):
        maso.slice_regions(net, good, tol=-1.0)
    with pytest.raises(maso.errors.ShapeError, match="maso.Network"):
        maso.slice_regions(object(), good)


# -------------------------------------------------------------------------------------------- plots
def test_plots_are_returned_and_saved(tmp_path):
    pytest.importorskip("matplotlib")
    net = maso.mlp([4, 8, 8, 3], seed=0)
    pts = np.random.default_rng(0).normal(size=(3, 4))
    sl = maso.slice_regions(net, maso.Plane.through_points(*pts))
    for color in ("code", "output", "argmax", "none"):
        fig = sl.plot(color=color, points=pts, labels=["a", "b", "c"], path=tmp_path / f"s_{color}.png")
        assert (tmp_path / f"s_{color}.png").stat().st_size > 1000
        assert len(fig.axes) == 1
    sl.plot(path=tmp_path / "s.svg")
    assert (tmp_path / "s.svg").read_text().startswith("<?xml")
    sc = maso.segment_crossings(net, pts[0], pts[1])
    maso.plotting.plot_crossings(sc, path=tmp_path / "c.png")
    many = maso.segment_crossings(net, np.repeat(pts[:1], 30, 0), np.random.default_rng(1).normal(size=(30, 4)))
    maso.plotting.plot_crossings(many, path=tmp_path / "d.png")
    assert (tmp_path / "c.png").exists() and (tmp_path / "d.png").exists()
    with pytest.raises(maso.MasoError, match="color"):
        sl.plot(color="rainbow")
    import matplotlib.pyplot as plt

    plt.close("all")


def test_progress_bar(capsys):
    net = maso.mlp([2, 8, 8, 1], seed=0)
    quiet = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), progress=False)
    shown = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), progress=True)
    assert "slice" in capsys.readouterr().err
    assert len(quiet) == len(shown)


def test_region_budget_is_a_clear_error():
    net = maso.mlp([2, 16, 16, 1], seed=0)
    with pytest.raises(maso.errors.DomainError, match="smaller window"):
        maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), max_regions=10)
    assert len(maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), max_regions=None)) > 10


def test_faces_hold_only_the_units_that_vary(monkeypatch):
    """A wide layer cut by a small window: faces hold the few columns that vary; the full codes equal the
    network's codes at the interior points. The slice keeps its codes compact (the columns on which regions
    differ): a slice whose full codes would not fit in memory is still made, and only asking for the full codes
    is a clear error."""
    from maso.slices import _slice as slices

    net = maso.mlp([2, 2000, 1], seed=3)
    sl = maso.slice_regions(net, lo=(0.1, 0.1), hi=(0.12, 0.12))
    assert 10 < len(sl) < 100 and sl._mesh.codes.shape[1] < 40
    truth = np.asarray(net.codes(sl.interior_points))
    np.testing.assert_array_equal(sl.codes, truth)
    # the compact form: exactly the columns on which two regions differ, and the code they share elsewhere
    differ = np.flatnonzero(np.any(truth != truth[0], axis=0))
    np.testing.assert_array_equal(sl.code_columns, differ)
    np.testing.assert_array_equal(sl.varying_codes, truth[:, differ])
    np.testing.assert_array_equal(sl.shared_code, truth[0])
    assert 0 < len(differ) < 40
    for i in (0, len(sl) // 2, len(sl) - 1):
        np.testing.assert_array_equal(sl[i].code, truth[i])
    nodes = sl.graph()
    for i, j in sl.adjacency[:5]:
        np.testing.assert_array_equal(nodes.edges[int(i), int(j)]["units"], np.flatnonzero(truth[i] != truth[j]))
    monkeypatch.setattr(slices, "_memory_budget", lambda: 1000.0)
    big = maso.slice_regions(net, lo=(0.1, 0.1), hi=(0.12, 0.12))
    assert len(big) == len(sl)
    np.testing.assert_array_equal(big.find(sl.interior_points), np.arange(len(sl)))
    np.testing.assert_array_equal(big[3].code, truth[3])
    with pytest.raises(maso.errors.DomainError, match=r"would need .* GiB.*varying_codes"):
        big.codes  # noqa: B018 (the property is what is tested)


def test_slivers_float64_cannot_resolve_are_reported():
    """Two boundaries crossing at an angle of 1e-15 inside the window: with snapping off, the wedges between them
    are thinner than float64 resolves, and the slice says so; with the default snapping they are one line."""
    W = np.array([[0.0, 1.0], [-1e-15, 1.0]])  # y = 0 and y = 1e-15 x
    net = maso.Network.sequential((2,), [Dense(W, np.zeros(2)), relu(), Dense(np.ones((1, 2)), np.zeros(1))])
    with pytest.warns(maso.errors.NumericalWarning, match="thinner than"):
        raw = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tol=0.0)
    assert raw.stats["slivers"] >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", maso.errors.NumericalWarning)
        snapped = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    assert snapped.stats["slivers"] == 0 and len(snapped) == 2 and snapped.stats["snapped"] > 0
    # small but fat regions (near-concurrent boundaries) are resolved and not counted
    tiny = maso.Network.sequential((2,), [Dense(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
                                                np.array([0.0, 0.0, -3e-9])), relu()])
    sl = maso.slice_regions(tiny, lo=(-1, -1), hi=(1, 1))
    assert sl.stats["slivers"] == 0 and sl.areas.min() < 1e-17


# ------------------------------------------------------------------------------- device=
def test_device_argument_runs_the_torch_path_and_is_checked():
    """``device="cpu"`` (a string or a torch.device) gives the default slice; the stats say where it ran; a device
    torch does not know, or CUDA where there is none, is a ParameterError naming the argument."""
    module, shape, _ = random_model(2, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(2, shape, 3))
    box = {"lo": (0.0, 0.0), "hi": (0.3, 0.3)}
    ref = maso.slice_regions(net, plane, **box)
    for device in ("cpu", torch.device("cpu")):
        sl = maso.slice_regions(net, plane, device=device, **box)
        assert sl.stats["device"] == "cpu"
        for key in ("vertices", "polygon_offsets", "polygon_vertices", "codes", "areas"):
            np.testing.assert_array_equal(getattr(sl, key), getattr(ref, key))
    for bad in ("tpu:0", "not-a-device", 3):
        with pytest.raises(maso.errors.ParameterError, match="device"):
            maso.slice_regions(net, plane, device=bad, **box)
    if not torch.cuda.is_available():
        with pytest.raises(maso.errors.ParameterError, match="CUDA is not available"):
            maso.slice_regions(net, plane, device="cuda", **box)


def test_carried_values_follow_the_mesh_provenance():
    """The carried tensor, brought up to date from the mesh's provenance records (edge ends, weight,
    generation), equals the node values computed afresh from the plane's anchors at every vertex, including
    vertices interpolated from vertices of the same layer's earlier cuts (generations above 1)."""
    from maso.slices import _slice as slices

    module, shape, _ = random_model(5, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    plane = maso.Plane.through_points(*random_inputs(5, shape, 3))
    seen = {"checked": 0, "deep": 0}
    survey = slices._unit_survey

    def spy(vals, node):
        if vals.carried is not None:
            for j, carried in vals.carried.rows().items():
                fresh = vals.anch.tensor(None, vals.mesh.P, j).reshape(vals.mesh.nV, -1)
                scale = float(fresh.abs().max()) or 1.0
                assert float((carried - fresh).abs().max()) <= 1e-9 * scale
                seen["checked"] += 1
        return survey(vals, node)

    def cut_spy(mesh, tol, max_faces=None, _cut=slices.Mesh.cut_columns):
        out = _cut(mesh, tol, max_faces)
        seen["deep"] = max(seen["deep"], int(mesh.sources[2].max(initial=0)))
        return out

    from unittest import mock
    with mock.patch.object(slices, "_unit_survey", spy), mock.patch.object(slices.Mesh, "cut_columns", cut_spy):
        sl = maso.slice_regions(net, plane, lo=(0.0, 0.0), hi=(0.5, 0.5))
    assert len(sl) > 50 and seen["checked"] > 0 and seen["deep"] >= 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_slice_equals_the_cpu_slice():  # pragma: no cover - GPU machines
    """On a GPU the same regions and codes as on the CPU; coordinates equal to rounding."""
    for seed, kind in ((0, "cnn"), (2, "inception"), (4, "residual")):
        module, shape, _ = random_model(seed, kind)
        net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
        plane = maso.Plane.through_points(*random_inputs(seed, shape, 3))
        cpu = maso.slice_regions(net, plane, lo=(0, 0), hi=(0.5, 0.5))
        gpu = maso.slice_regions(net, plane, lo=(0, 0), hi=(0.5, 0.5), device="cuda")
        assert gpu.stats["device"].startswith("cuda") and len(gpu) == len(cpu), kind
        assert _code_set(gpu.codes) == _code_set(cpu.codes), kind
        oc, og = np.lexsort(cpu.codes.T), np.lexsort(gpu.codes.T)
        np.testing.assert_allclose(gpu.areas[og], cpu.areas[oc], rtol=1e-9, atol=1e-15)
    net = maso.mlp([32, 64, 64, 10], seed=0)  # an MLP takes the torch path on the GPU
    plane = maso.Plane.through_points(*np.random.default_rng(0).normal(size=(3, 32)))
    cpu, gpu = maso.slice_regions(net, plane), maso.slice_regions(net, plane, device="cuda")
    assert len(gpu) == len(cpu) and _code_set(gpu.codes) == _code_set(cpu.codes)
