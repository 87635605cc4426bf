"""Exact 1-D paths: where the code changes along segments and rays through the input space."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from maso._validation import check_bool, check_device, check_float, real_vector, sealed
from maso.core._program import chunks, evaluate, require_piecewise_linear
from maso.core.domain import Box
from maso.core.network import Network
from maso.errors import NumericalWarning, ParameterError, ParameterShapeError, ShapeError
from maso.layers import MaxPool
from maso.slices import _anchored
from maso.slices._anchored import (
    Anchored,
    Incremental,
    _two_piece,
    batch_limit,
    breakpoints,
    interval_codes,
    piece_gap,
    piece_scores,
    pool_first_within,
    pool_scores_at,
)

__all__ = ["SegmentCrossings", "ray_crossings", "segment_crossings"]


@dataclass(frozen=True, eq=False)
class SegmentCrossings:
    """The exact pieces of a network along the path ``origin + t * direction``, ``t`` in ``[lo, hi]``.

    For a segment ``x0 -> x1``: ``origin = x0``, ``direction = x1 - x0``, ``[lo, hi] = [0, 1]``; for a ray
    ``s * a``: ``origin = 0``, ``direction = a`` and ``t`` is the scale ``s``.

    Attributes
    ----------
    t : ndarray of shape (k,)
        Sorted parameters in ``(lo, hi)`` where the code changes.
    codes : ndarray of shape (k + 1, n_units)
        The code on each piece, in order.
    origin, direction : ndarray of shape (input_dim,)
    lo, hi : float
    flip_units, flip_offsets : ndarray
        The code columns that change at ``t[i]`` are ``flip_units[flip_offsets[i]:flip_offsets[i + 1]]``
        (see [`units`][maso.slices.SegmentCrossings.units]).
    uncertified : ndarray of int
        Pieces whose code the certificate could not confirm even after they were redone by LPs (empty unless a
        [`NumericalWarning`][maso.errors.NumericalWarning] said otherwise). See
        [`segment_crossings`][maso.segment_crossings].
    """

    t: np.ndarray
    codes: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    lo: float
    hi: float
    flip_units: np.ndarray
    flip_offsets: np.ndarray
    uncertified: np.ndarray

    @property
    def units(self) -> tuple[np.ndarray, ...]:
        """``units[i]``: the code columns that change at ``t[i]``."""
        o = self.flip_offsets
        return tuple(self.flip_units[o[i]:o[i + 1]] for i in range(len(self.t)))

    @property
    def n_pieces(self) -> int:
        """Number of linear pieces along the path."""
        return len(self.t) + 1

    @property
    def length(self) -> float:
        """Euclidean length of the path in input space."""
        return float(np.linalg.norm(self.direction) * (self.hi - self.lo))

    def points(self) -> np.ndarray:
        """The crossing points in the (flattened) input space, ``(k, input_dim)``."""
        return self.origin + self.t[:, None] * self.direction

    def hamming(self) -> np.ndarray:
        """Number of units that flip at each crossing, ``(k,)``."""
        return np.diff(self.flip_offsets)

    def density(self) -> float:
        """Crossings per unit of input-space length (the polytope density along the path)."""
        return len(self.t) / self.length if self.length > 0 else 0.0

    def __repr__(self) -> str:
        # one line whatever the number of crossings (the dataclass repr printed every array)
        bad = f", {len(self.uncertified)} uncertified" if len(self.uncertified) else ""
        return (f"SegmentCrossings({len(self.t)} crossings, {self.n_pieces} pieces, t in [{self.lo:g}, {self.hi:g}], "
                f"input_dim={self.origin.size}, {self.codes.shape[1]} units, length={self.length:.4g}{bad})")

    def _repr_png_(self) -> bytes | None:
        """The crossings as [`plot_crossings`][maso.plotting.plot_crossings] draws them, as PNG bytes: how Jupyter
        shows a `SegmentCrossings` inline (drawn outside pyplot; ``None`` without matplotlib)."""
        from maso.plotting import _png, plot_crossings

        return _png(lambda ax: plot_crossings(self, ax=ax), (7.0, 2.5))


def _check_pair(net: Network, a: Any, b: Any, what: str, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray, bool]:
    if not isinstance(net, Network):
        raise ShapeError(f"{what} needs a maso.Network; got {type(net).__name__}.")
    require_piecewise_linear(net.program, what)
    a = real_vector(a, names[0], what)
    b = real_vector(b, names[1], what)
    shape = net.input_shape
    single = a.shape == shape
    if single:
        a, b = a[None], b[None]
    if a.shape != b.shape or a.shape[1:] != shape:
        raise ShapeError(f"{what} needs points of shape {shape} or (n, *{shape}), the same for both. "
                         f"Got {np.shape(a if not single else a[0])} and {np.shape(b if not single else b[0])}.")
    return a.reshape(len(a), net.input_dim), b.reshape(len(b), net.input_dim), single


def _check_tol(tol: Any, what: str) -> float:
    try:
        return check_float(tol, "tol", what, minimum=0.0, maximum=1e-3)
    except ParameterError as e:  # a ShapeError too, as before
        raise ParameterShapeError(str(e)) from None


def segment_crossings(net: Network, x0: Any, x1: Any, *, tol: float = 1e-12, method: str = "walk",
                      certify: bool = True, device: Any = None) -> Any:
    """Where the spline code changes along the segments from ``x0`` to ``x1``: exact, not sampled.

    With ``method="walk"`` (default) all segments are walked at once, layer by layer: the breakpoints found so
    far cut each segment into intervals on which the next layer's pre-activations are affine, so each unit's
    zero crossings are interpolated exactly; the layers before the first nonlinearity are evaluated at the two
    ends only. Breakpoints where the code does not actually change (a max-pool candidate that never wins) are
    dropped at the end by comparing the codes of neighbouring pieces. ``method="lp"`` restricts the network to
    each line and enumerates its pieces with [`maso.enumerate_regions`][] (slower; a cross-check).

    The walk's answer is certified before it is returned: each piece's code is checked against a direct forward
    pass at the piece's two ends (best at both ends means best all along, since the network frozen on the code
    is affine in ``t``); a piece that fails is enumerated again by LPs on its span, and a piece whose unit ties
    with a lower piece at both ends takes the code [`Network.codes`][maso.Network.codes] gives its midpoint
    (ties go to the lowest piece). Pieces that still fail are listed in ``SegmentCrossings.uncertified`` with a
    [`NumericalWarning`][maso.errors.NumericalWarning]. See the docs' "Slices and paths" page.

    Parameters
    ----------
    net : Network
    x0, x1 : array of shape input_shape, or (n, *input_shape) for n segments
    tol : float, default=1e-12
        Breakpoints closer than ``tol * max(|t|, min(hi - lo, 1))`` are one crossing, listing all units that flip
        there (for a segment ``t`` runs over ``[0, 1]``: ``tol`` in units of ``t``). The certificate lets a
        piece's code lose to another piece by ``8 * tol + 2**-40`` times that layer's largest score on the path.
    method : {"walk", "lp"}
    certify : bool, default=True
        Check the walk's answer as above. ``False`` skips the check and its forward pass at every crossing
        (about a third of the time on MLPs); the walk alone passes the same tests, but then nothing checks it
        independently.
    device : str or torch.device, optional
        Where the layers after the affine head run at the walk's points and at the certificate's (default: the
        CPU), e.g. ``"cuda"``: all points of all paths in large batches, in float64. The crossings, their
        merging and every sign and tie decision stay on the CPU in float64, so a GPU gives the same crossings
        and codes as the CPU (``t`` equal to rounding).

    Returns
    -------
    SegmentCrossings, or a list of them for a batch

    Examples
    --------
    >>> net = maso.mlp([2, 3, 1], seed=0)
    >>> sc = maso.segment_crossings(net, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    >>> sc.n_pieces == len(sc.t) + 1 and bool(np.all(np.diff(sc.t) > 0))
    True
    """
    a, b, single = _check_pair(net, x0, x1, "segment_crossings", ("x0", "x1"))
    tol = _check_tol(tol, "segment_crossings")
    method = _check_method(method, "segment_crossings")
    n = len(a)
    certify = check_bool(certify, "certify", "segment_crossings")
    dev = check_device(device, "segment_crossings")
    out = _paths(net, a, b - a, np.zeros(n), np.ones(n), tol, method, certify, dev)
    return out[0] if single else out


def ray_crossings(
    net: Network, direction: Any, s_min: float = 0.0, s_max: float = 1.0, *, origin: Any = None,
    tol: float = 1e-12, method: str = "walk", certify: bool = True, device: Any = None,
) -> Any:
    """Where the code changes along the rays ``origin + s * direction`` for ``s`` in ``[s_min, s_max]``.

    With the default ``origin = 0`` this is the scaling path ``s * a`` of an activation ``a``; ``t`` of the
    result is the scale ``s``. Same exactness, certificate and tolerances as
    [`segment_crossings`][maso.segment_crossings]. A range over many scales (``[-1e13, 1e13]``) is walked in
    pieces cut at ``s = +-4**k``, so that crossings are placed relative to their own ``|s|`` (closer than
    ``tol * |s|`` they are one crossing, beyond ``|s| = 1``).

    Examples
    --------
    >>> net = maso.mlp([2, 3, 1], seed=0)
    >>> rc = maso.ray_crossings(net, np.array([0.5, 1.0]), 0.0, 4.0)
    >>> bool(np.all((rc.t > 0) & (rc.t < 4)))
    True
    """
    d = real_vector(direction, "direction", "ray_crossings")
    o = np.zeros_like(d) if origin is None else real_vector(origin, "origin", "ray_crossings")
    try:
        o = np.broadcast_to(o, d.shape)
    except ValueError:
        raise ShapeError(f"ray_crossings needs an origin of the direction's shape {d.shape}; got {o.shape}.") from None
    a, u, single = _check_pair(net, o, d, "ray_crossings", ("origin", "direction"))
    tol = _check_tol(tol, "ray_crossings")
    method = _check_method(method, "ray_crossings")
    s_min = check_float(s_min, "s_min", "ray_crossings")
    s_max = check_float(s_max, "s_max", "ray_crossings")
    if not s_min < s_max:
        raise ParameterShapeError(f"ray_crossings needs s_min < s_max. Got {s_min}, {s_max}.")
    ends = np.concatenate([a + s_min * u, a + s_max * u])
    if not np.all(np.isfinite(ends)):
        raise ParameterShapeError(f"ray_crossings: origin + s * direction overflows float64 at s = {s_min:g} or "
                                  f"{s_max:g}; use a shorter range of s or a smaller direction.")
    n = len(a)
    certify = check_bool(certify, "certify", "ray_crossings")
    dev = check_device(device, "ray_crossings")
    out = _paths(net, a, u, np.full(n, float(s_min)), np.full(n, float(s_max)), tol, method, certify, dev)
    return out[0] if single else out


def _check_method(method: Any, what: str) -> str:
    if not (isinstance(method, str) and method in ("walk", "lp")):
        raise ParameterShapeError(f"The 'method' parameter of {what} must be 'walk' or 'lp'. Got {method!r}.")
    return method


def _paths(net: Network, origin: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray, tol: float,
           method: str, certify: bool = True, device: torch.device | None = None) -> list[SegmentCrossings]:
    if len(origin) == 0:
        return []
    owner, sub_lo, sub_hi = _split_scales(lo, hi)
    if method == "lp":
        parts = [_lp_span(net, o, u, a, b, tol) for o, u, a, b in zip(origin[owner], direction[owner],
                                                                       sub_lo.tolist(), sub_hi.tolist())]
        if len(owner) == len(lo):
            return parts
    elif len(owner) == len(lo):  # nothing to split: the common case
        return _walk(net, origin, direction, lo, hi, tol, certify, device)
    else:
        parts = _walk(net, origin[owner], direction[owner], sub_lo, sub_hi, tol, certify, device)
    bounds = np.searchsorted(owner, np.arange(len(lo) + 1))
    return [_stitch(parts[bounds[i]:bounds[i + 1]], origin[i], direction[i], float(lo[i]), float(hi[i]))
            for i in range(len(lo))]


def _split_scales(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paths over many scales cut at ``t = +-f * 4^k`` (``k >= 1``, ``f = min(hi - lo, 1)``), as separate paths.

    Values at a new point are interpolated between its neighbours, with a rounding error relative to theirs:
    over ``[-1e13, 1e13]`` the crossings near ``t = 1`` would be placed only to within about 1e-3. On pieces no
    longer than a few times their distance from 0, every crossing is placed relative to its own ``|t|``, which
    is how `_merge_distance` judges them. Returns the owner path and ``[lo, hi]`` of every piece.
    """
    owner, out_lo, out_hi = [], [], []
    for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
        f = min(b - a, 1.0)
        cuts = []
        top = max(abs(a), abs(b))
        if top > 4 * f:
            ks = np.arange(1, int(np.ceil(np.log(top / f) / np.log(4.0))) + 1)
            mags = f * 4.0 ** ks
            cuts = sorted(c for c in np.concatenate([-mags, mags]).tolist() if a < c < b)
        edges = [a] + cuts + [b]
        owner += [i] * (len(edges) - 1)
        out_lo += edges[:-1]
        out_hi += edges[1:]
    return np.asarray(owner, dtype=np.int64), np.asarray(out_lo), np.asarray(out_hi)


def _stitch(parts: list[SegmentCrossings], o: np.ndarray, u: np.ndarray, lo: float, hi: float) -> SegmentCrossings:
    """One path from its consecutive pieces: a crossing where two pieces meet if the code changes there."""
    ts: list[float] = []
    codes: list[np.ndarray] = []
    bad: list[int] = []
    for part in parts:
        first = 0
        if codes and np.array_equal(codes[-1], part.codes[0]):
            first = 1  # the same code across the cut: one piece
            if 0 in part.uncertified and len(codes) - 1 not in bad:
                bad.append(len(codes) - 1)
        elif codes:
            ts.append(part.lo)
        bad += [len(codes) + int(j) - first for j in part.uncertified if j >= first]
        codes.extend(part.codes[first:])
        ts.extend(part.t.tolist())
    return _crossings(np.asarray(ts), np.stack(codes), o, u, lo, hi, bad=sorted(bad))


def _lp_span(net: Network, o: np.ndarray, u: np.ndarray, lo: float, hi: float, tol: float) -> SegmentCrossings:
    """The LP method on ``[lo, hi]``, enumerated as the segment from ``o + lo u`` to ``o + hi u`` (a unit box, so
    the enumerator's tolerances are relative to the span, as the walk's are)."""
    sub = _lp_path(net, o + lo * u, (hi - lo) * u, 0.0, 1.0, max(tol, 1e-12))
    return _crossings(lo + np.asarray(sub.t) * (hi - lo), np.asarray(sub.codes), o, u, lo, hi)


def _lp_path(net: Network, o: np.ndarray, u: np.ndarray, lo: float, hi: float, tol: float) -> SegmentCrossings:
    from maso.regions import enumerate_regions

    if not np.any(u):
        code = np.asarray(net.codes(o.reshape(net.input_shape)))[None]
        return _crossings(np.zeros(0), code, o, u, lo, hi)
    line = net.restrict(o, u[None])
    regions = enumerate_regions(line, Box([lo], [hi]), tol=max(tol, 1e-12), method="vertices", progress=False)
    order = np.argsort([r.interior_point[0] for r in regions])
    pieces = [regions[i] for i in order]
    ts = np.array([float(np.max(r.vertices())) for r in pieces[:-1]])
    codes = np.stack([r.code for r in pieces])
    return _crossings(ts, codes, o, u, lo, hi)


def _crossings(ts, codes, o, u, lo, hi, bad=None) -> SegmentCrossings:
    rows, flips = np.nonzero(codes[1:] != codes[:-1])
    offsets = np.searchsorted(rows, np.arange(len(ts) + 1))
    bad = np.zeros(0, dtype=np.int64) if bad is None else np.asarray(bad, dtype=np.int64)
    return SegmentCrossings(sealed(np.asarray(ts, dtype=np.float64)), sealed(codes), sealed(o), sealed(u),
                            float(lo), float(hi), sealed(flips), sealed(np.asarray(offsets, dtype=np.int64)),
                            sealed(bad))


# ------------------------------------------------------------------------------------------------ the walk
def _nonzero2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a C-contiguous 2-D mask, through the flat index (10x faster on wide masks)."""
    width = mask.shape[1]
    if width == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    idx = np.flatnonzero(mask)
    return idx // width, idx % width


def _zeros(seg: np.ndarray, t: np.ndarray, d: np.ndarray):
    """Interior zero crossings of the columns of ``d`` (affine between consecutive points of a segment).

    A value that rounding moved off an exact zero at a point gives a crossing next to that point, which
    `_dedupe` merges into it.
    """
    kk, ui = _nonzero2d(d[:-1] * d[1:] < 0)
    same = seg[kk] == seg[kk + 1]
    kk, ui = kk[same], ui[same]
    da, db = d[kk, ui], d[kk + 1, ui]
    tau = da / (da - db)
    return kk, ui, tau


class _Merge:
    """Where the old (sorted) and the new points of a path go when merged: ``pos_old``, ``pos_new``."""

    __slots__ = ("before", "n", "pos_new", "pos_old")

    def __init__(self, pos_old: np.ndarray, pos_new: np.ndarray, before: np.ndarray) -> None:
        self.pos_old, self.pos_new, self.n = pos_old, pos_new, len(pos_old) + len(pos_new)
        self.before = before  # per new point: the old point just before it in the merged order

    def apply(self, old: Any, new: Any) -> Any:
        """Rows of ``old`` and ``new`` in merged order (a scatter: no concatenated copy, no gather); arrays or
        tensors (then on their device)."""
        if isinstance(old, torch.Tensor):
            dev = old.device
            res = torch.empty((self.n, *old.shape[1:]), dtype=old.dtype, device=dev)
            res[torch.from_numpy(self.pos_old).to(dev)] = old
            res[torch.from_numpy(self.pos_new).to(dev)] = new
            return res
        out = np.empty((self.n, *old.shape[1:]), dtype=old.dtype)
        out[self.pos_old] = old
        out[self.pos_new] = new
        return out


def _insert(seg, t, end, kk, new_t):
    """Add points ``new_t`` in the intervals after points ``kk``; returns the merged arrays and the merge.

    The merged order is the stable sort by (segment, t) of old then new points (ties: old first, new in
    their given order), found without sorting the old points again: a new point follows point ``kk`` and any
    later old points it ties with.
    """
    n_old = len(t)
    new_seg = seg[kk]
    after = kk + 1  # old points at or before each new point
    while True:
        nxt = np.minimum(after, n_old - 1)
        tied = (after < n_old) & (seg[nxt] == new_seg) & (t[nxt] <= new_t)
        if not tied.any():
            break
        after = after + tied
    on = np.lexsort((new_t, new_seg))
    pos_new = np.empty(len(new_t), dtype=np.int64)
    pos_new[on] = after[on] + np.arange(len(new_t))
    pos_old = np.arange(n_old) + np.searchsorted(after[on], np.arange(n_old), side="right")
    m = _Merge(pos_old, pos_new, after - 1)
    return m.apply(seg, new_seg), m.apply(t, new_t), m.apply(end, np.zeros(len(new_t), dtype=bool)), m


def _dedupe(seg, t, end, floor, tol):
    """One point per cluster of points closer than the merge distance (`_merge_distance`).

    Returns ``(keep, rows)`` or None when nothing merges: ``keep`` the points that stay (a segment end if the
    cluster holds one, else its first point) and ``rows`` the point whose code row each kept point takes: the
    cluster's *last* point, since row ``i`` is the code on the interval after point ``i`` and the interval
    after a cluster is the one after its last point. (Taking the first point's row gave the kept point the
    code of the vanished interval inside the cluster, for the columns of earlier layers.)
    """
    gap = np.diff(t)
    close = (seg[1:] == seg[:-1]) & (gap <= _merge_distance(t[:-1], t[1:], floor[seg[1:]], tol))
    if not close.any():
        return None
    start = np.ones(len(t), dtype=bool)
    start[1:] = ~close  # a point that is not close to its predecessor starts a cluster
    cid = np.cumsum(start) - 1
    n_clusters = int(cid[-1]) + 1
    first = np.flatnonzero(start)
    last = np.append(first[1:] - 1, len(t) - 1)
    # the kept point: a segment end of the cluster if there is one (ends never move), else its first point
    endpos = np.full(n_clusters, -1, dtype=np.int64)
    ends = np.flatnonzero(end)
    endpos[cid[ends]] = ends
    keep = np.where(endpos >= 0, endpos, first)
    return keep, last


def _merge_distance(t0: np.ndarray, t1: np.ndarray, floor: np.ndarray, tol: float) -> np.ndarray:
    """Breakpoints closer than ``tol * max(|t|, floor)`` are one crossing (relative to ``t`` beyond ``floor``).

    ``floor`` is ``min(hi - lo, 1)``: for a segment (``t`` in ``[0, 1]``) this is ``tol``; for a ray over a long
    range of scales it keeps crossings apart that are far apart relative to their own scale.
    """
    return tol * np.maximum(np.maximum(np.abs(t0), np.abs(t1)), floor)


def _walk(net: Network, origin: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray,
          tol: float, certify: bool = True, device: torch.device | None = None) -> list[SegmentCrossings]:
    n = len(origin)
    anch = Anchored(net, origin, direction[:, None, :], device)
    seg = np.repeat(np.arange(n), 2)
    t = np.stack([lo, hi], axis=1).ravel()
    end = np.ones(2 * n, dtype=bool)
    floor = np.minimum(hi - lo, 1.0)
    inc = Incremental(anch, seg, t[:, None])
    # per path and spline layer: the largest |score| (two-piece layers: |gap|) at the walk's points, the scale
    # of the certificate's slack
    scale = np.zeros((n, len(net.units)))
    # row i: the code on the interval from point i to point i + 1 (layers done so far); a point added inside
    # an interval starts a piece of it, so it copies the row of the point just before it in the merged order
    # (not of the interval's left end: a new point tied with the right end is placed after it)
    codes = np.zeros((len(t), net.n_units), dtype=net.program.code_dtype)
    for gi, g in enumerate(net.units):
        X = inc.advance(net.nodes[g.node].inputs[0])
        if _two_piece(net, g.node):
            d = piece_gap(net, g.node, X)
            scale[:, gi] = _path_max(seg, n, np.abs(d))
            kk, ui, tau = _zeros(seg, t, d)
            seg, t, end, merge = _insert(seg, t, end, kk, t[kk] + tau * (t[kk + 1] - t[kk]))
            inc.interpolate(kk, kk + 1, tau, merge, (net.nodes[g.node].inputs[0], ui, breakpoints(net, g.node)[ui]))
            codes = merge.apply(codes, codes[merge.before])
        else:
            # only units whose winner differs between two consecutive points of a path can change piece: a
            # piece that is best at both ends of an interval is best all along it (the scores are affine there)
            same = seg[:-1] == seg[1:]
            layer = net.program.spline_layer(g.node)
            if isinstance(layer, MaxPool):  # from the layer's own codes: no 9 scores per unit at every point
                xt = torch.from_numpy(np.ascontiguousarray(X))
                with torch.no_grad():
                    icode = layer.forward(xt, {}, True)[1]
                    assert icode is not None  # asked for
                    icode = icode.reshape(len(X), -1)
                    top = layer.forward(xt.abs(), {}, False)[0]  # each window's largest |score|
                scale[:, gi] = _path_max(seg, n, top.reshape(len(X), -1).numpy())
                vary = np.flatnonzero(((icode[:-1] != icode[1:]).numpy() & same[:, None]).any(axis=0))
                Q = piece_scores(net, g.node, xt, vary).numpy()  # (N, len(vary), R)
            else:
                Q = piece_scores(net, g.node, X)  # (N, U, R)
                missing = ~np.isfinite(Q[0])
                scale[:, gi] = _path_max(seg, n, np.abs(np.where(missing[None], 0.0, Q)).reshape(len(Q), -1))
                win = np.where(missing[None], -np.inf, Q).argmax(axis=2)
                vary = np.flatnonzero(((win[:-1] != win[1:]) & same[:, None]).any(axis=0))
                Q = Q[:, vary]
            R = Q.shape[2]
            missing = ~np.isfinite(Q[0]) if len(Q) else np.zeros(Q.shape[1:], dtype=bool)
            # piece by piece: where piece r overtakes the best of the pieces before it; values at new points
            # are interpolated (the scores are affine between consecutive points)
            Qz = np.where(missing[None], 0.0, Q)
            for r in range(1, R):
                best = np.where(missing[None, :, :r], -np.inf, Qz[:, :, :r]).max(axis=2)
                d = np.where(missing[None, :, r] | ~np.isfinite(best), -1.0, Qz[:, :, r] - best)
                kk, _, tau = _zeros(seg, t, d)
                if not len(kk):
                    continue
                newQ = Qz[kk] + tau[:, None, None] * (Qz[kk + 1] - Qz[kk])
                seg, t, end, merge = _insert(seg, t, end, kk, t[kk] + tau * (t[kk + 1] - t[kk]))
                Qz = merge.apply(Qz, newQ)
                inc.interpolate(kk, kk + 1, tau, merge)
                codes = merge.apply(codes, codes[merge.before])
        merged = _dedupe(seg, t, end, floor, tol)
        if merged is not None:
            keep, rows = merged
            seg, t, end, codes = seg[keep], t[keep], end[keep], codes[rows]
            inc.select(keep)
        k = np.flatnonzero(seg[:-1] == seg[1:])
        codes[k, g.columns] = interval_codes(net, g.node, inc.vals[net.nodes[g.node].inputs[0]], k,
                                             _TIE_ROUNDING * scale[seg[k], gi])
    # the code on every interval; keep the breakpoints where it changes
    k = np.flatnonzero(seg[:-1] == seg[1:])
    codes = codes[k]
    kseg = seg[k]
    bounds = np.searchsorted(kseg, np.arange(n + 1))
    changed = np.flatnonzero(np.any(codes[1:] != codes[:-1], axis=1) & (kseg[1:] == kseg[:-1]))
    change_at = np.searchsorted(changed, bounds)
    ts = t[k[changed] + 1]
    first = change_at[:-1] + np.arange(n)  # where segment i's first piece sits among all pieces
    piece_rows = np.empty(n + len(changed), dtype=np.int64)
    is_first = np.zeros(len(piece_rows), dtype=bool)
    is_first[first] = True
    piece_rows[first] = bounds[:-1]
    piece_rows[~is_first] = changed + 1
    pieces = codes[piece_rows]
    path = _Pieces(n, lo, hi, ts, pieces, change_at)
    fixed = _certify(net, anch, path, scale, tol, origin, direction) if certify else {}
    return path.results(origin, direction, fixed)


def _path_max(seg: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Largest entry of ``values`` ``(N, ...)`` over the points of each of the ``n`` paths (points sorted by path,
    at least one per path)."""
    row = values.reshape(len(values), -1).max(axis=1, initial=0.0)
    return np.maximum.reduceat(row, np.searchsorted(seg, np.arange(n)))


class _Pieces:
    """The walk's answer for ``n`` paths before it becomes `SegmentCrossings`: crossings ``ts`` and piece
    codes ``pieces`` of all paths, path ``i`` owning crossings ``change_at[i]:change_at[i + 1]`` and the pieces
    ``change_at[i] + i`` to ``change_at[i + 1] + i``.

    Points: path ``i``'s ends and crossings, in order; piece ``g`` of path ``i`` runs from point ``g + i`` to point
    ``g + i + 1``.
    """

    def __init__(self, n: int, lo: np.ndarray, hi: np.ndarray, ts: np.ndarray, pieces: np.ndarray,
                 change_at: np.ndarray) -> None:
        self.n, self.lo, self.hi = n, lo, hi
        self.ts, self.pieces, self.change_at = ts, pieces, change_at
        k = np.diff(change_at)
        self.piece_path = np.repeat(np.arange(n), k + 1)
        cross_path = np.repeat(np.arange(n), k)
        self.pt_path = np.repeat(np.arange(n), k + 2)
        pt_t = np.empty(len(ts) + 2 * n)
        pt_t[change_at[:-1] + 2 * np.arange(n)] = lo
        pt_t[change_at[1:] + 2 * np.arange(n) + 1] = hi
        pt_t[np.arange(len(ts)) + 2 * cross_path + 1] = ts
        self.pt_t = pt_t

    def results(self, origin: np.ndarray, direction: np.ndarray,
                fixed: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[SegmentCrossings]:
        """One `SegmentCrossings` per path; ``fixed[i] = (ts, codes, uncertified)`` replaces path ``i``."""
        n, ts, pieces, change_at = self.n, self.ts, self.pieces, self.change_at
        flips = pieces[1:] != pieces[:-1]
        flips[change_at[1:-1] + np.arange(n - 1)] = False  # between the last piece of a path and the next's first
        rows, cols = _nonzero2d(flips)
        # row j of flips is between pieces j and j + 1: crossing j - path(j) of the flat crossings
        fo = sealed(np.searchsorted(rows, np.arange(len(pieces))))
        ts, pieces, cols = sealed(ts), sealed(pieces), sealed(cols)
        origin, direction = sealed(origin), sealed(direction)
        none = sealed(np.zeros(0, dtype=np.int64))
        out = []
        for i in range(n):
            if i in fixed:
                t_i, codes_i, bad = fixed[i]
                out.append(_crossings(t_i, codes_i, origin[i], direction[i], self.lo[i], self.hi[i], bad=bad))
                continue
            c0, c1 = int(change_at[i]), int(change_at[i + 1])
            p0, p1 = c0 + i, c1 + i  # the path's first and last piece
            offs = fo[p0:p1 + 1] - fo[p0]
            offs.setflags(write=False)
            out.append(SegmentCrossings(ts[c0:c1], pieces[p0:p1 + 1], origin[i], direction[i], float(self.lo[i]),
                                        float(self.hi[i]), cols[fo[p0]:fo[p1]], offs, none))
        return out


# ------------------------------------------------------------------------------------------ the certificate
#: A piece's code may lose to another piece of one of its units by at most ``(_SLACK_TOL * tol +
#: _SLACK_ROUNDING)`` times that layer's scale on the path (its largest |score| there): room for crossings
#: merged within ``tol`` and for float64 rounding, nothing more.
_SLACK_TOL = 8.0
_SLACK_ROUNDING = 2.0 ** -40
#: Pieces of a max-pool or maxout unit within this times the layer's scale on the path are tied in the walk's
#: own interval codes (interpolated values carry rounding; an exact tie goes to the lowest piece).
_TIE_ROUNDING = 2.0 ** -44


def _certify(net: Network, anch: Anchored, path: _Pieces, scale: np.ndarray, tol: float, origin: np.ndarray,
             direction: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Check every piece of the walk by a direct evaluation of the network at its two ends; mend the pieces that
    fail.

    A piece ``[t_a, t_b]`` with code ``c`` is certified when, at ``t_a`` and at ``t_b``, every unit's piece in ``c``
    is (within the slack) the best of its pieces. Then the network frozen on ``c`` agrees with the network at both
    ends, its scores are affine in ``t``, and a piece that is best at both ends is best all along: the whole
    interval lies in the region of ``c``. This is independent of how the walk found the piece.

    Pieces that fail are recomputed by the LP method on their span. Pieces on which a lower piece ties with the
    coded one at both ends (within the slack: e.g. two max-pool windows that hold the same input) take the code
    of a direct evaluation at their midpoint, so ties are broken as `Network.codes` breaks them. A mended
    path is checked again; pieces that still fail are reported (``SegmentCrossings.uncertified``).

    Returns ``{path: (ts, codes, uncertified piece indices)}`` for the paths that changed.
    """
    piece_bad, piece_tie = _check(net, anch, path, scale, tol)
    fixed = {}
    for i in np.unique(path.piece_path[piece_bad | piece_tie]).tolist():
        ts, codes = _mend(net, path, i, piece_bad, piece_tie, origin[i], direction[i], tol)
        one = _Pieces(1, path.lo[i:i + 1], path.hi[i:i + 1], ts, codes, np.array([0, len(ts)]))
        again, _ = _check(net, Anchored(net, origin[i:i + 1], direction[i:i + 1, None, :], anch.device), one,
                          scale[i:i + 1], tol)
        fixed[i] = (ts, codes, np.flatnonzero(again))
        if again.any():
            warnings.warn(f"{int(again.sum())} piece(s) of path {i} could not be certified even after an LP "
                          "enumeration of their span; see SegmentCrossings.uncertified.", NumericalWarning,
                          stacklevel=4)
    return fixed


def _check(net: Network, anch: Anchored, path: _Pieces, scale: np.ndarray, tol: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Per piece: whether its code loses at one of its ends, and whether one of its units has a lower piece tied
    with the coded one at both ends."""
    N = len(path.pt_t)
    n_pieces = len(path.pieces)
    ends = np.zeros(N, dtype=bool)
    ends[path.change_at[1:] + 2 * np.arange(path.n) + 1] = True
    right_piece = np.arange(N) - path.pt_path  # the piece each point starts (none at a path's end)
    slack = (_SLACK_TOL * tol + _SLACK_ROUNDING) * scale  # (n_paths, n_groups)
    bad = np.zeros(n_pieces, dtype=bool)
    tie = np.zeros(n_pieces, dtype=bool)
    groups = net.units
    srcs = sorted({net.nodes[g.node].inputs[0] for g in groups})
    if not srcs:
        return bad, tie
    step = max(1, chunks(N, net.program.sample_size + 1, batch_limit(anch.device))[0].stop)
    host = anch.device.type == "cpu" and _anchored._HOST_WALK  # NumPy bit sets on the CPU, tensors on a device
    a = 0
    with torch.no_grad():
        while a < N - 1:  # blocks of points overlapping by one, so both ends of every piece meet in a block
            b = min(N, a + step + 1)
            w = path.pt_path[a:b]
            vals = evaluate(net.program, anch.seeds(w, path.pt_t[a:b, None]), srcs)
            left = np.flatnonzero(~ends[a:b - 1])  # block-relative left ends of the pieces in the block
            piece_ids = right_piece[a + left]  # consecutive pieces: a slice
            g_ids = slice(int(piece_ids[0]), int(piece_ids[-1]) + 1) if len(piece_ids) else slice(0, 0)
            eps = slack[path.pt_path[a + left]][:, :, None]  # (k, n_groups, 1)
            for gi, g in enumerate(groups):
                e = eps[:, gi]
                code = path.pieces[g_ids, g.columns]
                x = vals[net.nodes[g.node].inputs[0]]  # the layer's input at the block's points (a tensor)
                if _two_piece(net, g.node) and not host:
                    # on the device: the same tests as the bit sets below, on bool tensors; only the verdicts
                    # per piece come back
                    dt = piece_gap(net, g.node, x)
                    e_t = torch.from_numpy(np.ascontiguousarray(slack[w, gi])).to(x.device)[:, None]
                    hi_t, lo_t = dt > e_t, dt < -e_t
                    on_t = torch.from_numpy(code != 0).to(x.device)
                    lt = torch.from_numpy(left).to(x.device)
                    hl_t, ll_t, hr_t, lr_t = hi_t[lt], lo_t[lt], hi_t[lt + 1], lo_t[lt + 1]
                    bad[g_ids] |= ((hl_t & ~on_t) | (ll_t & on_t) | (hr_t & ~on_t) | (lr_t & on_t)).any(1).cpu().numpy()
                    tie[g_ids] |= (on_t & ~(hl_t | ll_t | hr_t | lr_t)).any(1).cpu().numpy()
                    continue
                if _two_piece(net, g.node):
                    # bit sets over the units (64 per word): which units the gap puts clearly on (hi) or off (lo)
                    # at each point; the piece's code must agree with both at both of its ends
                    d = piece_gap(net, g.node, x.cpu().numpy())
                    e_pt = slack[w, gi][:, None]
                    hi, lo = _bits(d > e_pt), _bits(d < -e_pt)
                    on = _bits(code.view(bool) if code.dtype == np.uint8 else code.astype(bool))
                    hl, ll, hr, lr = hi[left], lo[left], hi[left + 1], lo[left + 1]
                    bad[g_ids] |= np.any((hl & ~on) | (ll & on) | (hr & ~on) | (lr & on), axis=1)
                    tie[g_ids] |= np.any(on & ~(hl | ll | hr | lr), axis=1)  # on, but 0 ties at both ends
                    continue
                if isinstance(net.program.spline_layer(g.node), MaxPool):
                    # the layer's own pooling and one window position at a time, not nine scores per unit
                    e_t = torch.from_numpy(np.ascontiguousarray(slack[w, gi])).to(x.device)
                    best_t, first_t = pool_first_within(net, g.node, x, e_t)
                    code_t = torch.from_numpy(code.astype(np.int64)).to(x.device)
                    lt = torch.from_numpy(left).to(x.device)
                    tied_t = None
                    for at_t in (lt, lt + 1):
                        coded = pool_scores_at(net, g.node, x.index_select(0, at_t), code_t)
                        lose = best_t.index_select(0, at_t) - coded
                        e_at = e_t.index_select(0, at_t)[:, None]
                        bad[g_ids] |= (lose > e_at).any(dim=1).cpu().numpy()
                        tied = first_t.index_select(0, at_t) < code_t
                        tied_t = tied if tied_t is None else tied_t & tied
                    assert tied_t is not None
                    tie[g_ids] |= tied_t.any(dim=1).cpu().numpy()
                    continue
                sc = piece_scores(net, g.node, x.cpu().numpy())
                code = code.astype(np.int64)
                tied_both = None
                for at in (left, left + 1):
                    v = sc[at]
                    best = v.max(axis=2)
                    lose = best - np.take_along_axis(v, code[:, :, None], axis=2)[:, :, 0]
                    tied = np.argmax(v >= (best - e)[:, :, None], axis=2) < code
                    bad[g_ids] |= np.any(lose > e, axis=1)
                    tied_both = tied if tied_both is None else tied_both & tied
                tie[g_ids] |= np.any(tied_both, axis=1)
            a = b - 1
    return bad, tie & ~bad


def _bits(mask: np.ndarray) -> np.ndarray:
    """Rows of a bool mask ``(n, U)`` as bit sets ``(n, ceil(U / 64))`` of uint64 (unused bits zero)."""
    packed = np.packbits(mask, axis=1, bitorder="little")
    words = -(-packed.shape[1] // 8)
    if packed.shape[1] != 8 * words:
        packed = np.concatenate([packed, np.zeros((len(packed), 8 * words - packed.shape[1]), np.uint8)], axis=1)
    return packed.view(np.uint64)


def _mend(net: Network, path: _Pieces, i: int, piece_bad: np.ndarray, piece_tie: np.ndarray, o: np.ndarray,
          u: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Path ``i`` with its tied pieces recoded at their midpoints and its failed pieces redone by LPs."""
    c0, c1 = int(path.change_at[i]), int(path.change_at[i + 1])
    g0 = c0 + i
    bounds = np.concatenate([[path.lo[i]], path.ts[c0:c1], [path.hi[i]]])
    codes = [c for c in path.pieces[g0:c1 + i + 1]]
    bad = piece_bad[g0:c1 + i + 1].tolist()
    tie = np.flatnonzero(piece_tie[g0:c1 + i + 1])
    if len(tie):
        mid = 0.5 * (bounds[tie] + bounds[tie + 1])
        x = (o[None] + mid[:, None] * u[None]).reshape(len(tie), *net.input_shape)
        for j, c in zip(tie.tolist(), np.asarray(net.codes(x))):
            codes[j] = c.astype(codes[j].dtype)
    # runs of failed pieces: their span enumerated by LPs, spliced in
    new_t: list[float] = []
    new_codes: list[np.ndarray] = []
    j = 0
    while j < len(codes):
        if not bad[j]:
            new_codes.append(codes[j])
            new_t.append(float(bounds[j + 1]))
            j += 1
            continue
        k = j
        while k + 1 < len(codes) and bad[k + 1]:
            k += 1
        ta, tb = float(bounds[j]), float(bounds[k + 1])
        sub = _lp_span(net, o, u, ta, tb, tol)
        sub_t = np.asarray(sub.t)
        new_codes.extend(np.asarray(sub.codes))
        new_t.extend(sub_t.tolist() + [tb])
        j = k + 1
    ts = np.asarray(new_t[:-1])
    codes_arr = np.stack(new_codes)
    keep = np.concatenate([[True], np.any(codes_arr[1:] != codes_arr[:-1], axis=1)])
    ts = ts[keep[1:]]
    codes_arr = codes_arr[keep]
    return ts, codes_arr
