"""Slice plots that cannot mislead, compact reprs and inline (PNG) display.

The class pieces of ``SliceRegions.argmax_cells`` are checked against torch's argmax of the network at thousands
of sampled points (located in the pieces by an independent point-in-polygon test), the drawn decision boundary
against per-region chords computed from autograd gradients, and the colouring of ``plot(color="argmax")``
against both.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PolyCollection

import maso
from maso.layers import Dense, relu

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ helpers
def _moons(n: int, rng: np.random.Generator, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    t = rng.uniform(0, np.pi, n)
    y = rng.integers(0, 2, n)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    return np.where(y[:, None] == 0, upper, lower) + noise * rng.normal(size=(n, 2)), y


def _moons_classifier(seed: int = 0, width: int = 32) -> tuple[torch.nn.Sequential, np.ndarray, np.ndarray]:
    """A 2-32-32-2 ReLU classifier of two moons: random hidden layers whose hyperplanes pass through data points
    (so that they cut the moons), and a least-squares output layer (no training loop: instant and deterministic)."""
    rng = np.random.default_rng(seed)
    X, y = _moons(400, rng)
    gen = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                            torch.nn.ReLU(), torch.nn.Linear(width, 2)).double()
    Xt = torch.tensor(X)
    with torch.no_grad():
        for lin, inputs in ((m[0], lambda: Xt), (m[2], lambda: m[:2](Xt))):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen, dtype=torch.float64) * 3 / lin.in_features ** 0.5)
            pre = inputs() @ lin.weight.T
            through = torch.randint(0, len(X), (lin.out_features,), generator=gen)
            lin.bias.copy_(-pre[through, torch.arange(lin.out_features)])
        H = m[:4](Xt)
        H1 = torch.cat([H, torch.ones(len(H), 1, dtype=H.dtype)], 1)
        target = 2 * torch.nn.functional.one_hot(torch.tensor(y), 2).double() - 1
        W = torch.linalg.lstsq(H1, target).solution
        m[4].weight.copy_(W[:-1].T)
        m[4].bias.copy_(W[-1])
    return m, X, y


@dataclass
class Moons:
    module: torch.nn.Module
    net: maso.Network
    sl: maso.slices.SliceRegions
    X: np.ndarray
    y: np.ndarray


@pytest.fixture(scope="module")
def moons() -> Moons:
    module, X, y = _moons_classifier()
    net = maso.from_torch(module, torch.zeros(1, 2, dtype=torch.float64))
    return Moons(module, net, maso.slice_regions(net, lo=(-1.5, -1.0), hi=(2.5, 1.5)), X, y)


def _torch_out(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.tensor(x, dtype=torch.float64)).numpy()


def _inside(poly: np.ndarray, x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Points ``x`` in the closed convex polygon ``poly`` (counter-clockwise): left of (or on) every edge."""
    a = poly
    b = np.roll(poly, -1, axis=0)
    e = b - a
    cross = e[None, :, 0] * (x[:, None, 1] - a[None, :, 1]) - e[None, :, 1] * (x[:, None, 0] - a[None, :, 0])
    scale = np.linalg.norm(e, axis=1)[None] * (1 + np.abs(x).max(axis=1))[:, None]
    return np.all(cross >= -eps * scale, axis=1)


def _pieces_of(cells: maso.slices.SliceCells, x: np.ndarray) -> list[list[int]]:
    """All pieces holding each point (several on shared edges), by brute force over bounding boxes."""
    found: list[list[int]] = [[] for _ in range(len(x))]
    for i, poly in enumerate(cells.polygons()):
        lo, hi = poly.min(axis=0) - 1e-12, poly.max(axis=0) + 1e-12
        cand = np.flatnonzero(np.all((x >= lo) & (x <= hi), axis=1))
        for j in cand[_inside(poly, x[cand])]:
            found[j].append(i)
    return found


def _shoelace(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _check_against_samples(cells, lo, hi, classes_of, n=4000, seed=0) -> None:
    """Every sampled point lies in a piece, and every piece holding it has the point's class (points whose
    class is decided by less than 1e-9 of the outputs' size are left out: they are on a boundary)."""
    rng = np.random.default_rng(seed)
    x = lo + (hi - lo) * rng.random((n, 2))
    classes, margin = classes_of(x)
    found = _pieces_of(cells, x)
    assert all(found), "a sampled point lies in no piece"
    decided = margin > 1e-9
    assert decided.mean() > 0.99
    wrong = [j for j in np.flatnonzero(decided) if any(cells.labels[i] != classes[j] for i in found[j])]
    assert not wrong, f"{len(wrong)} points in a piece of another class, e.g. {x[wrong[:3]]}"


def _argmax_and_margin(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top2 = np.sort(out, axis=1)[:, -2:]
    return out.argmax(axis=1), (top2[:, 1] - top2[:, 0]) / (1 + np.abs(out).max(axis=1))


# ------------------------------------------------------------------------------------- argmax pieces
def test_moons_pieces_match_sampled_torch_argmax(moons):
    module, sl, X, y = moons.module, moons.sl, moons.X, moons.y
    cells = sl.argmax_cells()
    assert (_torch_out(module, X).argmax(1) == y).mean() > 0.95  # a real two-moons classifier
    assert len(cells.boundary) > 20 and set(cells.labels.tolist()) == {0, 1}
    _check_against_samples(cells, sl.lo, sl.hi, lambda x: _argmax_and_margin(_torch_out(module, x)))
    # the pieces tile the window, and each region
    window = float(np.prod(sl.hi - sl.lo))
    assert cells.areas.sum() == pytest.approx(window, rel=1e-12)
    np.testing.assert_allclose([_shoelace(p) for p in cells.polygons()], cells.areas, rtol=1e-9, atol=1e-15)
    per_region = np.bincount(cells.regions, weights=cells.areas, minlength=len(sl))
    np.testing.assert_allclose(per_region, sl.areas, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(cells.class_areas().sum(), window, rtol=1e-12)


def test_moons_no_area_is_coloured_with_the_wrong_class(moons):
    """Each piece is convex and lies in one region, where every class's set is convex: if torch gives the
    piece's class near all its vertices, the whole piece has that class. So the wrongly coloured area of the new
    colouring is exactly 0, while colouring each region by its interior point (the old way) gets a positive
    area wrong, which sampling confirms independently."""
    module, sl = moons.module, moons.sl
    cells = sl.argmax_cells()
    wrong_area = 0.0
    for i, poly in enumerate(cells.polygons()):
        centre = poly.mean(axis=0)
        probe = np.vstack([centre, poly + 1e-7 * (centre - poly)])
        if np.any(_torch_out(module, probe).argmax(1) != cells.labels[i]):
            wrong_area += cells.areas[i]
    assert wrong_area == 0.0
    # the old colouring: one class per region, from its interior point
    old = _torch_out(module, sl.interior_points).argmax(1)
    old_wrong_exact = float(cells.areas[old[cells.regions] != cells.labels].sum())
    assert old_wrong_exact > 0
    rng = np.random.default_rng(1)
    x = sl.lo + (sl.hi - sl.lo) * rng.random((20000, 2))
    old_wrong_sampled = np.mean(old[sl.find(x)] != _torch_out(module, x).argmax(1))
    window = float(np.prod(sl.hi - sl.lo))
    p = old_wrong_exact / window
    assert old_wrong_sampled > 0
    assert abs(old_wrong_sampled - p) < 5 * np.sqrt(p * (1 - p) / len(x)) + 1e-3


def test_plot_argmax_colours_the_pieces_and_draws_their_boundary(moons):
    sl, X = moons.sl, moons.X
    cells = sl.argmax_cells()
    fig = sl.plot(color="argmax", points=X[:20])
    ax = fig.axes[0]
    fills = [c for c in ax.collections if isinstance(c, PolyCollection) and len(c.get_paths()) == len(cells)]
    assert len(fills) == 1
    face = fills[0].get_facecolors()[:, :3]
    # one colour per class, as the class says
    for k in range(cells.n_classes):
        shades = np.unique(face[cells.labels == k], axis=0)
        assert len(shades) == 1
    assert not np.allclose(face[cells.labels == 0][0], face[cells.labels == 1][0])
    thick = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_linewidths()[0] == 2.0]
    assert len(thick) == 1
    drawn = np.array([s for s in thick[0].get_segments()])
    np.testing.assert_array_equal(drawn, cells.boundary)
    np.testing.assert_array_equal(drawn, sl.decision_boundary())
    assert fig.number in plt.get_fignums()  # the user's figure stays open (a notebook shows it inline)
    plt.close(fig)


def _chords(sl: maso.slices.SliceRegions, module: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Independent boundary of a 2-class net: in each region, the line f1 - f0 = 0 (value and gradient from
    torch autograd at the region's interior point) clipped to the region's polygon."""
    chords, owner = [], []
    for i in range(len(sl)):
        p = torch.tensor(sl.interior_points[i], dtype=torch.float64, requires_grad=True)
        out = module(p[None])[0]
        g = out[1] - out[0]
        (grad,) = torch.autograd.grad(g, p)
        grad_np, c = grad.numpy(), float(g.detach()) - float(grad @ p.detach())
        poly = sl.polygon(i)
        v = poly @ grad_np + c
        pts = []
        for a in range(len(poly)):
            b = (a + 1) % len(poly)
            if v[a] == 0:
                pts.append(poly[a])
            elif v[a] * v[b] < 0:
                pts.append(poly[a] + v[a] / (v[a] - v[b]) * (poly[b] - poly[a]))
        if len(pts) == 2 and np.linalg.norm(pts[1] - pts[0]) > 0:
            chords.append(pts)
            owner.append(i)
    return np.array(chords), np.array(owner)


def test_boundary_equals_independent_chords(moons):
    module, sl = moons.module, moons.sl
    segs = sl.decision_boundary()
    chords, owner = _chords(sl, module)
    length = np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1).sum()
    assert length == pytest.approx(np.linalg.norm(chords[:, 1] - chords[:, 0], axis=1).sum(), rel=1e-7)
    # every segment lies on the chord of the region holding its midpoint (up to splitting at region edges)
    mids = segs.mean(axis=1)
    region = sl.find(mids)
    where = {int(r): k for k, r in enumerate(owner)}
    for s, r in zip(segs, region):
        a, b = chords[where[int(r)]]
        d = b - a
        for q in s:
            cross = d[0] * (q[1] - a[1]) - d[1] * (q[0] - a[0])
            assert abs(cross) <= 1e-9 * np.linalg.norm(d) * (1 + np.abs(q).max())
    # and torch puts both ends on the tie
    out = _torch_out(module, segs.reshape(-1, 2))
    np.testing.assert_allclose(out[:, 0], out[:, 1], atol=1e-9)


@pytest.mark.parametrize("seed", [0, 4])
def test_three_classes_and_lp_slices(seed):
    module = maso.nn.mlp_module([2, 10, 10, 3], seed=seed, dtype=torch.float64)
    net = maso.mlp([2, 10, 10, 3], seed=seed)
    sl = maso.slice_regions(net, lo=(-3, -3), hi=(3, 3))
    cells = sl.argmax_cells()
    _check_against_samples(cells, sl.lo, sl.hi, lambda x: _argmax_and_margin(_torch_out(module, x)), n=3000)
    assert cells.areas.sum() == pytest.approx(36.0, rel=1e-12)
    # the LP slice: its own mesh, its faces matched to its regions by code; the same class map
    lp = maso.slice_regions(net, lo=(-3, -3), hi=(3, 3), method="lp")
    lcells = lp.argmax_cells()
    assert (lcells.regions >= 0).all()
    np.testing.assert_allclose(lcells.class_areas(), cells.class_areas(), rtol=1e-9, atol=1e-12)


def test_one_output_and_sign_classes():
    net = maso.mlp([2, 12, 12, 1], seed=7)
    module = maso.nn.mlp_module([2, 12, 12, 1], seed=7, dtype=torch.float64)
    sl = maso.slice_regions(net, lo=(-4, -4), hi=(4, 4))
    cells = sl.argmax_cells()
    assert cells.n_classes == 2 and cells.output is None

    def sign(x):
        f = _torch_out(module, x)[:, 0]
        return (f > 0).astype(int), np.abs(f) / (1 + np.abs(f))

    _check_against_samples(cells, sl.lo, sl.hi, sign, n=3000)
    np.testing.assert_array_equal(sl.decision_boundary(), cells.boundary)
    np.testing.assert_allclose(_torch_out(module, cells.boundary.reshape(-1, 2)), 0.0, atol=1e-9)
    # output=j: the sign of that output, as decision_boundary(output=j) draws it
    net3 = maso.mlp([2, 6, 3], seed=1)
    module3 = maso.nn.mlp_module([2, 6, 3], seed=1, dtype=torch.float64)
    sl3 = maso.slice_regions(net3, lo=(-4, -4), hi=(4, 4))
    c1 = sl3.argmax_cells(output=1)
    assert c1.output == 1

    def sign1(x):
        f = _torch_out(module3, x)[:, 1]
        return (f > 0).astype(int), np.abs(f) / (1 + np.abs(f))

    _check_against_samples(c1, sl3.lo, sl3.hi, sign1, n=2000)
    np.testing.assert_array_equal(sl3.decision_boundary(output=1), c1.boundary)


def _two_layer(W1, b1, W2, b2) -> maso.Network:
    return maso.Network.sequential((2,), [Dense(np.asarray(W1, float), np.asarray(b1, float)), relu(),
                                          Dense(np.asarray(W2, float), np.asarray(b2, float))])


def test_ties_go_to_the_lower_class():
    """Outputs that are equal everywhere: the lower index wins, as torch.argmax says, and no boundary or piece
    is cut along the tie."""
    W1 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    b1 = np.array([0.1, -0.2, 0.3])
    row = np.array([1.0, -2.0, 0.5])
    net = _two_layer(W1, b1, np.stack([row, row]), [0.25, 0.25])  # two identical outputs
    sl = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    cells = sl.argmax_cells()
    assert (cells.labels == 0).all() and len(cells.boundary) == 0 and len(cells) == len(sl)
    x = np.random.default_rng(0).uniform(-1, 1, (100, 2))
    assert (torch.tensor(net(x)).argmax(1) == 0).all()
    # three outputs, the third a copy of the second: class 2 never wins, 1 takes its place
    other = np.array([-1.0, 1.0, 0.0])
    net3 = _two_layer(W1, b1, np.stack([other, row, row]), [0.0, 0.1, 0.1])
    sl3 = maso.slice_regions(net3, lo=(-1, -1), hi=(1, 1))
    c3 = sl3.argmax_cells()
    assert not (c3.labels == 2).any() and set(c3.labels.tolist()) == {0, 1}
    out = np.asarray(net3(x))
    found = _pieces_of(c3, x)
    for j in range(len(x)):
        if abs(out[j, 0] - out[j, 1]) > 1e-9:
            assert all(c3.labels[i] == int(np.argmax(out[j])) for i in found[j])
    # outputs apart by 2**-42 of their size: a tie for the default tolerance (class 0 throughout), two classes
    # split exactly where f0 changes sign for tol=0 (f1 = f0 * (1 + 2**-42) wins where f0 > 0)
    near = _two_layer(W1, b1, np.stack([row, row * (1 + 2.0**-42)]), [0.0, 0.0])
    sln = maso.slice_regions(near, lo=(-1, -1), hi=(1, 1))
    assert (sln.argmax_cells().labels == 0).all()
    exact = sln.argmax_cells(tol=0.0)
    assert set(exact.labels.tolist()) == {0, 1} and len(exact.boundary)
    # f1 - f0 is computed to about eps * |f| only, so its zero is placed to about eps / 2**-42 ~ 1e-3 (relative):
    # what the default tolerance guards against
    f0 = np.asarray(near(x))[:, 0]
    found = _pieces_of(exact, x)
    for j in np.flatnonzero(np.abs(f0) > 1e-2):
        assert all(exact.labels[i] == int(f0[j] > 0) for i in found[j])
    np.testing.assert_allclose(np.asarray(near(exact.boundary.reshape(-1, 2)))[:, 0], 0.0, atol=1e-2)
    # the tolerance is validated
    with pytest.raises(maso.errors.ParameterError, match="tol"):
        sl3.argmax_cells(tol=0.5)
    with pytest.raises(maso.errors.ShapeError, match="output"):
        sl3.argmax_cells(output=3)
    with pytest.raises(maso.errors.ShapeError, match="output"):
        sl3.argmax_cells(output=True)


def test_plot_modes_and_errors(moons):
    sl = moons.sl
    for color in ("code", "output", "argmax", "none"):
        fig = sl.plot(color=color, edges=color != "none")
        assert len(fig.axes) == 1
        plt.close(fig)
    fig = sl.plot(color="argmax", output=1)  # pieces by the sign of output 1
    plt.close(fig)
    with pytest.raises(maso.errors.ParameterError, match="output"):
        sl.plot(color="argmax", output=2)
    with pytest.raises(maso.errors.ParameterError, match="color"):
        sl.plot(color="rainbow")
    # drawing on a given Axes of a figure outside pyplot leaves pyplot alone
    before = plt.get_fignums()
    f = matplotlib.figure.Figure()
    assert maso.plotting.plot_slice(sl, ax=f.add_subplot(), color="argmax") is f
    assert plt.get_fignums() == before



def test_plot_into_a_subfigure_returns_and_saves_the_whole_figure(moons, tmp_path):
    """An Axes inside a SubFigure: the Figure that holds it comes back (SubFigure cannot be saved), and
    path= saves that figure."""
    f = matplotlib.figure.Figure()
    left, right = f.subfigures(1, 2)
    assert maso.plotting.plot_slice(moons.sl, ax=right.add_subplot(), path=tmp_path / "s.png") is f
    assert (tmp_path / "s.png").stat().st_size > 0
    sc = maso.segment_crossings(moons.net, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    assert maso.plotting.plot_crossings(sc, ax=left.add_subplot()) is f


# ------------------------------------------------------------------------------------------------ reprs
def test_compact_reprs(moons):
    net, sl = moons.net, moons.sl
    assert len(sl) > 1000
    text = repr(sl)
    assert len(text) < 300 and str(sl) == text and "\n" not in text
    assert f"{len(sl)} regions" in text and "64 units" in text and "2 outputs" in text
    r = repr(sl[3])
    assert len(r) < 200 and "index=3" in r and f"{len(sl.polygon(3))} vertices" in r
    cells = sl.argmax_cells()
    c = repr(cells)
    assert len(c) < 200 and f"{len(cells)} pieces" in c and f"{len(cells.boundary)} boundary segments" in c
    # many crossings: still one line
    rng = np.random.default_rng(0)
    sc = maso.segment_crossings(net, np.array([-1.5, -1.0]), np.array([2.5, 1.5]))
    assert len(sc.t) > 20
    s = repr(sc)
    assert len(s) < 200 and f"{len(sc.t)} crossings" in s and f"{sc.n_pieces} pieces" in s
    # region sets and their records
    small = maso.mlp([2, 8, 8, 1], seed=0)
    rs = maso.enumerate_regions(small, maso.Box([-1, -1], [1, 1]))
    assert len(repr(rs)) < 200 and f"{len(rs)} regions" in repr(rs)
    reg = repr(rs[0])
    assert len(reg) < 200 and f"{len(rs[0].polytope.b)} facets" in reg and "16 units" in reg
    sliver = maso.regions.Sliver(unit=3, piece=1, thickness=1e-10, point=rng.normal(size=500),
                         code_prefix=np.zeros(10_000, dtype=np.int8))
    assert len(repr(sliver)) < 100 and "unit=3" in repr(sliver)


def test_repr_png_is_drawn_outside_pyplot(moons, monkeypatch):
    net, sl = moons.net, moons.sl
    keep = plt.figure()  # a figure of the user's, which must neither close nor multiply
    before = plt.get_fignums()
    png = sl._repr_png_()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1000
    sc = maso.segment_crossings(net, np.array([-1.5, -1.0]), np.array([2.5, 1.5]))
    png2 = sc._repr_png_()
    assert png2.startswith(PNG_SIGNATURE)
    assert plt.get_fignums() == before
    plt.close(keep)
    # huge slices fall back to the text repr instead of stalling the notebook
    monkeypatch.setattr(maso.slices._slice, "_REPR_PNG_MAX_REGIONS", len(sl) - 1)
    assert sl._repr_png_() is None


def test_code_colours_come_from_the_whole_codes():
    """Regions are coloured by a hash of their full code rows, formed from the slice's compact codes: the same
    colours as hashing `codes` directly, so a region keeps its colour across slices with other varying units."""
    from maso.plotting import _region_colors, code_colors

    net = maso.mlp([2, 300, 1], seed=2)
    sl = maso.slice_regions(net, lo=(0.1, 0.1), hi=(0.2, 0.2))
    assert len(sl.code_columns) < net.n_units and len(sl) > 3
    np.testing.assert_array_equal(_region_colors(sl), code_colors(sl.codes))
