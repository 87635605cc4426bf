"""Exact 1-D paths: where the code changes along segments and rays through the input space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maso._anchored import (
    Anchored,
    Incremental,
    _two_piece,
    breakpoints,
    interval_codes,
    piece_gap,
    piece_scores,
)
from maso._validation import sealed
from maso.domain import Box
from maso.errors import MasoError, ShapeError
from maso.network import Network

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
        (see :attr:`units`).
    """

    t: np.ndarray
    codes: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    lo: float
    hi: float
    flip_units: np.ndarray
    flip_offsets: np.ndarray

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


def _check_pair(net: Network, a: Any, b: Any, what: str) -> tuple[np.ndarray, np.ndarray, bool]:
    if not isinstance(net, Network):
        raise ShapeError(f"{what} needs a maso.Network; got {type(net).__name__}.")
    net._require_piecewise_linear(what)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    shape = net.input_shape
    single = a.shape == shape
    if single:
        a, b = a[None], b[None]
    if a.shape != b.shape or a.shape[1:] != shape:
        raise ShapeError(f"{what} needs points of shape {shape} or (n, *{shape}), the same for both. "
                         f"Got {np.shape(a if not single else a[0])} and {np.shape(b if not single else b[0])}.")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ShapeError(f"{what} needs finite points.")
    return a, b, single


def _check_tol(tol: Any) -> float:
    if not (isinstance(tol, (float, int)) and 0 <= tol < 1e-3):
        raise ShapeError(f"tol must be a float in [0, 1e-3). Got {tol!r}.")
    return float(tol)


def segment_crossings(net: Network, x0: Any, x1: Any, *, tol: float = 1e-12, method: str = "walk") -> Any:
    """Where the spline code changes along the segments from ``x0`` to ``x1``: exact, not sampled.

    With ``method="walk"`` (default) all segments are walked at once, layer by layer: the breakpoints found so
    far cut each segment into intervals on which the next layer's pre-activations are affine, so each unit's
    zero crossings are interpolated exactly; the layers before the first nonlinearity are evaluated at the two
    ends only. Breakpoints where the code does not actually change (a max-pool candidate that never wins) are
    dropped at the end by comparing the codes of neighbouring pieces. ``method="lp"`` restricts the network to
    each line and enumerates its pieces with :func:`maso.enumerate_regions` (slower; a cross-check).

    Parameters
    ----------
    net : Network
    x0, x1 : array of shape input_shape, or (n, *input_shape) for n segments
    tol : float, default=1e-12
        Pre-activations within ``tol`` times their largest value on the segment of zero count as zero, and
        breakpoints closer than ``tol`` (in units of ``t``) are one crossing, listing all units that flip there.
    method : {"walk", "lp"}

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
    a, b, single = _check_pair(net, x0, x1, "segment_crossings")
    tol = _check_tol(tol)
    n = len(a)
    out = _paths(net, a, b - a, np.zeros(n), np.ones(n), tol, method)
    return out[0] if single else out


def ray_crossings(
    net: Network, direction: Any, s_min: float = 0.0, s_max: float = 1.0, *, origin: Any = None,
    tol: float = 1e-12, method: str = "walk",
) -> Any:
    """Where the code changes along the rays ``origin + s * direction`` for ``s`` in ``[s_min, s_max]``.

    With the default ``origin = 0`` this is the scaling path ``s * a`` of an activation ``a``; ``t`` of the
    result is the scale ``s``. Same exactness and tolerances as :func:`segment_crossings`.

    Examples
    --------
    >>> net = maso.mlp([2, 3, 1], seed=0)
    >>> rc = maso.ray_crossings(net, np.array([0.5, 1.0]), 0.0, 4.0)
    >>> bool(np.all((rc.t > 0) & (rc.t < 4)))
    True
    """
    d = np.asarray(direction, dtype=np.float64)
    o = np.zeros_like(d) if origin is None else np.broadcast_to(np.asarray(origin, dtype=np.float64), d.shape)
    a, u, single = _check_pair(net, o, d, "ray_crossings")
    tol = _check_tol(tol)
    if not (np.isfinite(s_min) and np.isfinite(s_max) and s_min < s_max):
        raise ShapeError(f"ray_crossings needs finite s_min < s_max. Got {s_min}, {s_max}.")
    n = len(a)
    out = _paths(net, a, u, np.full(n, float(s_min)), np.full(n, float(s_max)), tol, method)
    return out[0] if single else out


def _paths(net: Network, origin: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray, tol: float,
           method: str) -> list[SegmentCrossings]:
    if method == "walk":
        return _walk(net, origin, direction, lo, hi, tol)
    if method == "lp":
        return [_lp_path(net, o, u, float(a), float(b), tol) for o, u, a, b in zip(origin, direction, lo, hi)]
    raise MasoError(f"method must be 'walk' or 'lp'. Got {method!r}.")


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


def _crossings(ts, codes, o, u, lo, hi, flips=None, offsets=None) -> SegmentCrossings:
    if flips is None:
        rows, flips = np.nonzero(codes[1:] != codes[:-1])
        offsets = np.searchsorted(rows, np.arange(len(ts) + 1))
    return SegmentCrossings(sealed(np.asarray(ts, dtype=np.float64)), sealed(codes), sealed(o), sealed(u),
                            float(lo), float(hi), sealed(flips), sealed(np.asarray(offsets, dtype=np.int64)))


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
    :func:`_dedupe` merges into it.
    """
    kk, ui = _nonzero2d(d[:-1] * d[1:] < 0)
    same = seg[kk] == seg[kk + 1]
    kk, ui = kk[same], ui[same]
    da, db = d[kk, ui], d[kk + 1, ui]
    tau = da / (da - db)
    return kk, ui, tau


class _Merge:
    """Where the old (sorted) and the new points of a path go when merged: ``pos_old``, ``pos_new``."""

    __slots__ = ("pos_old", "pos_new", "n", "before")

    def __init__(self, pos_old: np.ndarray, pos_new: np.ndarray, before: np.ndarray) -> None:
        self.pos_old, self.pos_new, self.n = pos_old, pos_new, len(pos_old) + len(pos_new)
        self.before = before  # per new point: the old point just before it in the merged order

    def apply(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Rows of ``old`` and ``new`` in merged order (a scatter: no concatenated copy, no gather)."""
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
    """One point per cluster of points closer than the merge distance (:func:`_merge_distance`).

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
          tol: float) -> list[SegmentCrossings]:
    n = len(origin)
    anch = Anchored(net, origin, direction[:, None, :])
    seg = np.repeat(np.arange(n), 2)
    t = np.stack([lo, hi], axis=1).ravel()
    end = np.ones(2 * n, dtype=bool)
    floor = np.minimum(hi - lo, 1.0)
    inc = Incremental(anch, seg, t[:, None])
    # row i: the code on the interval from point i to point i + 1 (layers done so far); a point added inside
    # an interval starts a piece of it, so it copies the row of the point just before it in the merged order
    # (not of the interval's left end: a new point tied with the right end is placed after it)
    codes = np.zeros((len(t), net.n_units), dtype=net._code_dtype)
    for g in net.units:
        X = inc.advance(net.nodes[g.node].inputs[0])
        if _two_piece(net, g.node):
            d = piece_gap(net, g.node, X)
            kk, ui, tau = _zeros(seg, t, d)
            seg, t, end, merge = _insert(seg, t, end, kk, t[kk] + tau * (t[kk + 1] - t[kk]))
            inc.interpolate(kk, kk + 1, tau, merge, (net.nodes[g.node].inputs[0], ui, breakpoints(net, g.node)[ui]))
            codes = merge.apply(codes, codes[merge.before])
        else:
            Q = piece_scores(net, g.node, X)  # (N, U, R)
            R = Q.shape[2]
            missing = ~np.isfinite(Q[0])
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
        codes[k, g.columns] = interval_codes(net, g.node, inc.vals[net.nodes[g.node].inputs[0]], k)
    # the code on every interval; keep the breakpoints where it changes
    k = np.flatnonzero(seg[:-1] == seg[1:])
    codes = codes[k]
    kseg = seg[k]
    bounds = np.searchsorted(kseg, np.arange(n + 1))
    flips = (codes[1:] != codes[:-1]) & (kseg[1:] == kseg[:-1])[:, None]  # row j: between intervals j, j+1
    rows, cols = _nonzero2d(flips)
    changed = rows[np.flatnonzero(np.diff(rows, prepend=-1))]  # rows come sorted
    change_at = np.searchsorted(changed, bounds)
    # everything for all segments at once; each result holds read-only views of these arrays
    fo = sealed(np.append(np.searchsorted(rows, changed), len(cols)))
    ts = sealed(t[k[changed] + 1])
    first = change_at[:-1] + np.arange(n)  # where segment i's first piece sits among all pieces
    piece_rows = np.empty(n + len(changed), dtype=np.int64)
    is_first = np.zeros(len(piece_rows), dtype=bool)
    is_first[first] = True
    piece_rows[first] = bounds[:-1]
    piece_rows[~is_first] = changed + 1
    pieces = sealed(codes[piece_rows])
    cols, origin, direction = sealed(cols), sealed(origin), sealed(direction)
    out = []
    for i in range(n):
        c0, c1 = int(change_at[i]), int(change_at[i + 1])
        offs = fo[c0:c1 + 1] - fo[c0]
        offs.setflags(write=False)
        out.append(SegmentCrossings(ts[c0:c1], pieces[c0 + i:c1 + i + 1], origin[i], direction[i], float(lo[i]),
                                    float(hi[i]), cols[fo[c0]:fo[c1]], offs))
    return out
