"""The subdivision engine: cells cut layer by layer into the regions of a network (LP and vertex methods).

Tolerances (every threshold is a named constant below, with its reason):

* input-space distances (cut depths, slacks, vertex-to-hyperplane distances) are in input units: ``tol`` decides
  what is a region, and ``_EPS`` times the coordinate scale of the cell (``_coord_scale``) is numerical zero;
* a unit's slopes are compared with the largest slope of its layer on the same cell: each stage's piece scores
  are divided by a power of two near that largest slope (exact in float64, so cut hyperplanes are unchanged),
  after which ``_SAME`` is a relative threshold. Scaling a network's first layer and every bias by ``s > 0``
  therefore gives the same regions for any ``s`` whose values float64 can hold;
* values that float64 cannot hold (infinite or NaN slopes or offsets, or slopes in the subnormal range where
  relative precision is lost) raise [`DomainError`][maso.errors.DomainError] instead of deciding units on
  garbage.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from maso import _kernels
from maso._lp import LPStats, chebyshev, extreme
from maso._validation import readonly
from maso.affine import Affine
from maso.errors import DomainError
from maso.network import Network
from maso.polytope import Polytope
from maso.regions._geometry import _box_of
from maso.regions._records import Region, Sliver

DEFAULT_TOL = 1e-9
"""Default ``tol`` of [`enumerate_regions`][maso.enumerate_regions] (an input-space distance): parts of a
cell thinner than this are slivers, counted apart."""
#: Below this (times the cell's coordinate scale, ``_coord_scale``), an input-space distance is numerical zero:
#: a hyperplane through a vertex, a vertex on a row. Also the smallest ``tol`` accepted.
_EPS = 1e-12
#: Two pieces of a unit are the same (or a unit is constant on a cell: dead, zero-weight, duplicated) when their
#: slopes differ by at most this fraction of the largest slope entry of the unit's layer on the cell.
_SAME = 1e-12
#: A component of a unit-norm row below this is zero for bound propagation (``_tighten``).
_COEF_ZERO = 1e-12
#: Outer bounding boxes are padded by this times the coordinate scale (they must contain the cell).
_BOX_PAD = 1e-9
#: Rows whose unit normals (and offsets, relative to ``1 + |offset|``) agree to this are the same hyperplane
#: (a unit whose boundary runs along a facet of the cell: ``_label_coincident``).
_COINCIDENT = 1e-10
#: A part of a polytope whose Chebyshev radius exceeds the domain's by more than this fraction cannot be right
#: (facets were lost to rounding): its facets are recomputed with LPs.
_RADIUS_SLACK = 1e-9
#: Redundancy LPs relax the tested row by this (input units): any positive amount keeps the LP bounded.
_RELAX = 1.0
#: Slopes below ``float64 tiny / _SAME`` are in the range where ``_SAME``-relative comparisons lose precision.
_UNDERFLOW = float(np.finfo(np.float64).tiny) / _SAME
#: ``tol`` must exceed this many float64 spacings of the largest domain coordinate (else distances of ``tol``
#: are not resolved where the domain lies).
_TOL_ULPS = 64
#: ``method="auto"`` carries vertices up to this input dimension, and uses LPs above it.
_VERTEX_MAX_DIM = 6
#: Witness points kept per cell.
_MAX_WITNESSES = 12


def _coord_scale(lo: np.ndarray, hi: np.ndarray) -> float:
    """The power of two at or below the largest coordinate magnitude of the box ``[lo, hi]`` (at least 1):
    distances are resolved relative to it (``_EPS * _coord_scale`` is numerical zero)."""
    m = float(max(np.max(np.abs(lo), initial=0.0), np.max(np.abs(hi), initial=0.0)))
    return 1.0 if not m > 1.0 else float(2.0 ** math.floor(math.log2(m)))


def _overflow(where: str) -> DomainError:
    return DomainError(
        f"The network's values overflow float64 on this domain ({where} are infinite or NaN): its regions "
        "cannot be computed in float64. For ReLU-like units (ReLU, leaky ReLU, abs, max-pool, maxout) the regions "
        "of s * f are those of f for any s > 0: multiply the first layer's weights and every bias by a small "
        "power of two, or use a smaller domain."
    )


# ------------------------------------------------------------------------------------------------ engine
class _Cell:
    """A polytope with the codes of the layers handled so far fixed (mutable, internal)."""

    __slots__ = ("G", "V", "center", "code", "eps", "h", "hi", "inc", "labels", "lo", "radius", "wit")

    def __init__(self, G, h, labels, code, center, radius, wit, lo, hi, V=None, inc=None, eps=_EPS):
        self.G, self.h, self.labels, self.code = G, h, labels, code
        self.center, self.radius, self.wit = center, radius, wit
        self.lo, self.hi = lo, hi  # an outer bounding box (not tight)
        self.V, self.inc = V, inc  # vertex method: vertices (k, d) and which rows each is tight on (k, m)
        self.eps = eps  # numerical zero of input distances here: _EPS times the domain's coordinate scale

    def add_row(self, n: np.ndarray, c: float, label: tuple[int, int], box: bool = True) -> _Cell:
        G = np.concatenate((self.G, n[None]))  # concatenate: np.vstack/np.append cost 3-5x more per call here
        h = np.concatenate((self.h, (c,)))
        lo, hi = _tighten(self.lo, self.hi, n, c, self.eps) if box else (self.lo, self.hi)
        return _Cell(G, h, self.labels + [[label]], self.code.copy(), None, 0.0, None, lo, hi, None, None, self.eps)

    def copy(self) -> _Cell:
        """A cell sharing this one's arrays, with its own code and labels (to be changed independently)."""
        return _Cell(self.G, self.h, [list(x) for x in self.labels], self.code.copy(), self.center, self.radius,
                     self.wit, self.lo, self.hi, self.V, self.inc, self.eps)


def _pack(inc: np.ndarray) -> np.ndarray:
    """Bool incidences (k, m) to bit sets: (k, ceil(m / 64)) uint64, row r in word r // 64, bit r % 64."""
    packed = np.packbits(inc, axis=1, bitorder="little")
    out = np.zeros((inc.shape[0], -(-packed.shape[1] // 8) * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view(np.uint64)


def _unpack(words: np.ndarray, m: int) -> np.ndarray:
    """Inverse of `_pack`: (k, m) bool."""
    return np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :m].astype(bool)


def _tighten(lo: np.ndarray, hi: np.ndarray, a: np.ndarray, c: float, pad: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the box [lo, hi] with the half-space a.x <= c (one pass of bound propagation), keeping ``pad`` of
    room for rounding."""
    low = np.minimum(a * lo, a * hi)
    rest = low.sum() - low
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (c - rest) / a
    lo2, hi2 = lo.copy(), hi.copy()
    pos, neg = a > _COEF_ZERO, a < -_COEF_ZERO
    hi2[pos] = np.minimum(hi[pos], bound[pos] + pad)
    lo2[neg] = np.maximum(lo[neg], bound[neg] - pad)
    return lo2, hi2


def _rivals(r: int, pieces: list[int], P: np.ndarray, Q: np.ndarray) -> list[tuple[int, np.ndarray, float]] | None:
    """The hyperplanes ``n.x + t = 0`` past which each other piece ``s`` beats piece ``r`` (unit ``n``).

    None if some piece beats ``r`` everywhere (a constant lead, or a tie that the lower index wins); pieces that
    never beat ``r`` are left out.
    """
    out = []
    for s in pieces:
        if s == r:
            continue
        a = P[s] - P[r]
        beta = Q[s] - Q[r]
        norm = float(np.linalg.norm(a))
        if norm <= _SAME:
            if beta > 0 or (beta == 0 and s < r):
                return None
            continue
        out.append((s, a / norm, beta / norm))
    return out


def _normalise_scores(P: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Piece scores ``(n, U, R, d)``, ``(n, U, R)`` of a stage, each cell's divided by the power of two at or
    above its largest slope entry (exact: cut hyperplanes ``a / |a|`` are unchanged, and ``_SAME`` becomes
    relative to the layer's scale on the cell).

    Raises
    ------
    DomainError
        Slopes or offsets that overflowed float64 (infinite or NaN; an offset of ``-inf`` marks a missing piece
        only where its slope is zero), or slopes so small that they lost relative precision.
    """
    n = P.shape[0]
    if not (np.isfinite(P).all() and not np.isnan(Q).any() and not np.isposinf(Q).any()):
        raise _overflow("the slopes or offsets of a layer's units")
    missing = np.isneginf(Q)
    if missing.any() and np.any(P[missing] != 0):
        raise _overflow("the offsets of a layer's units")
    scale = np.abs(P).reshape(n, -1).max(axis=1, initial=0.0)
    small = (scale > 0) & (scale < _UNDERFLOW)
    if small.any():
        raise DomainError(
            f"The network's slopes on this domain are as small as {float(scale[small].min()):.3g}, near float64's "
            "underflow, where comparing them loses precision. For ReLU-like units (ReLU, leaky ReLU, abs, max-pool, "
            "maxout) the regions of s * f are those of f for any s > 0: multiply the first layer's weights and "
            "every bias by a large power of two."
        )
    _, e = np.frexp(scale)
    if np.any(e):
        P = np.ldexp(P, -e.reshape(n, 1, 1, 1))
        Q = np.ldexp(Q, -e.reshape(n, 1, 1))
    return P, Q


class _Engine:
    def __init__(self, net: Network, domain: Polytope, tol: float, method: str = "lp") -> None:
        self.net = net
        self.domain = domain
        self.method = method
        self.tol = float(tol)
        self.d = net.input_dim
        self.groups = net.units
        self.stats = LPStats()
        self.slivers: list[Sliver] = []
        self._domain_r: float | None = None  # the domain's inradius (bounds every region's)
        self._domain: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None  # check_domain's result

    # cells ----------------------------------------------------------------------------------------------
    def check_domain(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """The domain's Chebyshev ball and bounding box ``(r, center, lo, hi)``, once it is known to be usable at
        ``tol`` (computed once; `root` calls it, a driver may call it earlier to refuse before any work).

        Raises
        ------
        DomainError
            The domain is thinner than ``tol`` (every part of it would be a sliver), or so far from the origin
            that float64 does not resolve ``tol`` there.
        """
        if self._domain is not None:
            return self._domain
        r, c = chebyshev(np.array(self.domain.A), np.array(self.domain.b), self.stats)
        if not r > self.tol:
            raise DomainError(
                f"The domain is thinner than tol: its largest inscribed ball has radius {r:.3g}, not above "
                f"tol={self.tol:g}, so every part of it would be a sliver and no region could be listed. Use a "
                f"wider domain, or a smaller tol (down to {_EPS:g}) to resolve thinner regions."
            )
        lo, hi = _box_of(self.domain)
        top = float(max(np.abs(lo).max(), np.abs(hi).max()))
        if self.tol <= _TOL_ULPS * np.spacing(top):
            raise DomainError(
                f"tol={self.tol:g} is below the float64 resolution of coordinates as large as {top:.3g} (the "
                f"domain's): distances of tol are not resolved there. Shift the domain towards the origin (and the "
                f"first layer's bias with it), or raise tol above {_TOL_ULPS * np.spacing(top):.3g}."
            )
        self._domain = (float(r), c, lo, hi)
        self._domain_r = float(r)
        return self._domain

    def root(self) -> _Cell:
        """The domain as the first cell (with its vertices for the vertex method).

        Raises
        ------
        DomainError
            As `check_domain`.
        """
        r, c, lo, hi = self.check_domain()
        G, h = np.array(self.domain.A), np.array(self.domain.b)
        scale = _coord_scale(lo, hi)
        eps = _EPS * scale
        pad = _BOX_PAD * scale
        code = np.full(self.net.n_units, -1, dtype=np.int16)
        cell = _Cell(G, h, [[(-1, -1)] for _ in range(len(h))], code, c, r, c[None].copy(), lo - pad, hi + pad,
                     eps=eps)
        if self.method == "vertices":
            cell.V, cell.inc = self._root_vertices(G, h, lo, hi, eps)
        return cell

    def _root_vertices(self, G: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray, eps: float
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Vertices of the domain ``G x <= h`` and their packed incidences: the bounding box ``[lo, hi]`` (its
        corners and incidences are exact) cut by each domain row with the engine's own exact vertex cut, then
        the box rows dropped. No tolerance of an outside vertex solver enters (a domain 1e-10 thick keeps its
        two sides apart)."""
        d = self.d
        bits = (np.arange(2 ** d)[:, None] >> np.arange(d)[None, :]) & 1  # corner k takes hi_i where bit i is set
        V = np.where(bits == 1, hi[None, :], lo[None, :])
        box = _Cell(np.vstack([-np.eye(d), np.eye(d)]), np.concatenate([-lo, hi]), [[(-1, -1)] for _ in range(2 * d)],
                    np.zeros(0, dtype=np.int16), None, 0.0, None, lo, hi, V, _pack(np.hstack([bits == 0, bits == 1])),
                    eps)
        for j in range(len(h)):
            fv = box.V @ G[j] - h[j]  # > 0: outside row j
            box = self._split_both(box, G[j], -h[j], fv, (-1, -1), (-1, -1))[1]
        inc = _unpack(box.inc, len(box.h))[:, 2 * d:]
        return box.V, _pack(inc)

    def _domain_radius(self) -> float:
        if self._domain_r is None:  # a worker's engine: its cells come planned, the domain checked
            self._domain_r = float(chebyshev(np.array(self.domain.A), np.array(self.domain.b), self.stats)[0])
        return self._domain_r

    def _maps(self, cells: list[_Cell], n_groups: int, until: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear parts ``(n, d, ...)`` and offsets ``(n, 1, ...)`` of the input of node ``until`` (the output
        if None) on each cell, from the codes of the first ``n_groups`` spline layers."""
        net = self.net
        n, d = len(cells), self.d
        codes = np.stack([c.code for c in cells])
        icodes = {}
        for g in self.groups[:n_groups]:
            layer = net.nodes[g.node].layer
            pub = torch.from_numpy(codes[:, g.columns].astype(np.int64)).reshape(n, *g.shape)
            icodes[g.node] = layer.internal_code(pub, net._input_shape_of(g.node))
        shape = net.input_shape
        with torch.no_grad():
            eye = torch.eye(d, dtype=torch.float64).reshape(1, d, *shape).expand(n, d, *shape)
            zero = torch.zeros((n, 1, *shape), dtype=torch.float64)
            G, _ = net._frozen(eye, icodes, bias=False, until=until)
            o, _ = net._frozen(zero, icodes, bias=True, until=until)
        return G, o

    def stage_scores(self, cells: list[_Cell], s: int) -> tuple[np.ndarray, np.ndarray]:
        """Piece scores of the units of stage ``s`` on every cell, ``(n, U, R, d)`` and ``(n, U, R)``, each
        cell's scaled by a power of two to a largest slope entry in ``[0.5, 1)`` (`_normalise_scores`)."""
        node = self.groups[s].node
        G, o = self._maps(cells, s, node)
        with torch.no_grad():
            P, Q = self.net.nodes[node].layer.scores(G, o[:, 0], self.net._input_shape_of(node))
        return _normalise_scores(P.numpy(), Q.numpy())

    def split_stage(self, cell: _Cell, s: int, P: np.ndarray, Q: np.ndarray, budget: Any = None) -> list[_Cell]:
        g = self.groups[s]
        cells = [cell]
        todo = range(g.size)
        two = P.shape[1] == 2 and bool(np.all(np.isfinite(Q)))
        if two and cell.V is not None and _kernels.screen is not None:
            status = _kernels.screen(P, Q, cell.V, _SAME, cell.eps)
            cols = g.offset + np.arange(g.size)
            on, off = status == 1, status == 0
            cell.code[cols[on]] = 1
            cell.code[cols[off]] = 0
            todo = np.flatnonzero(status < 0)
        elif two:
            # Two-piece units, all at once: a unit whose hyperplane misses the cell's outer box (or whose
            # pieces differ by a constant) is decided for the cell and every part of it, without an LP.
            a = P[:, 1] - P[:, 0]
            beta = Q[:, 1] - Q[:, 0]
            norm = np.sqrt((a * a).sum(axis=1))  # sums in the order of the compiled screen (identical results)
            flat = norm <= _SAME
            safe = np.where(flat, 1.0, norm)  # no 0/0 for flat units (their rows are zeroed)
            nrm = a / safe[:, None]
            nrm[flat] = 0.0
            t = np.where(flat, beta, beta / safe)
            if cell.V is not None:  # exact extents over the vertices
                F = (cell.V[:, None, :] * nrm[None, :, :]).sum(axis=2) + t
                top, bottom = F.max(axis=0), F.min(axis=0)
            else:
                top = t + np.maximum(nrm * cell.lo, nrm * cell.hi).sum(axis=1)
                bottom = t + np.minimum(nrm * cell.lo, nrm * cell.hi).sum(axis=1)
            on = np.where(flat, beta > 0, bottom >= cell.eps)
            off = np.where(flat, beta <= 0, top <= -cell.eps)
            cols = g.offset + np.arange(g.size)
            cell.code[cols[on]] = 1
            cell.code[cols[off]] = 0
            todo = np.nonzero(~(on | off))[0]
        for u in todo:
            col = g.offset + int(u)
            nxt: list[_Cell] = []
            for c in cells:
                # Two-piece units were screened above (equal pieces have a zero-norm difference).
                if two and self.method == "vertices":
                    parts = self._split_two_v(c, col, 0, 1, P[u], Q[u])
                elif two:
                    parts = self._split_two(c, col, 0, 1, P[u], Q[u])
                else:
                    parts = self.split_unit(c, col, P[u], Q[u])
                if budget is not None:  # one cell can split into millions of parts within a stage
                    budget.grew(len(parts) - 1, parts)
                nxt.extend(parts)
            cells = nxt
        return cells

    def split_unit(self, c: _Cell, col: int, P: np.ndarray, Q: np.ndarray) -> list[_Cell]:
        valid = [r for r in range(len(Q)) if np.isfinite(Q[r])]
        pieces: list[int] = []
        for r in valid:  # merge identical pieces, keeping the lowest index (ties go to it)
            if not any(np.max(np.abs(P[r] - P[s])) <= _SAME and abs(Q[r] - Q[s]) <= _SAME * (1 + abs(Q[s]))
                       for s in pieces):
                pieces.append(r)
        if len(pieces) == 1:
            c.code[col] = pieces[0]
            return [c]
        if len(pieces) == 2:
            split = self._split_two_v if self.method == "vertices" else self._split_two
            return split(c, col, pieces[0], pieces[1], P, Q)
        if self.method == "vertices":
            return self._split_many_v(c, col, pieces, P, Q)
        return self._split_many(c, col, pieces, P, Q)

    def _split_two(self, c: _Cell, col: int, r0: int, r1: int, P: np.ndarray, Q: np.ndarray) -> list[_Cell]:
        a = P[r1] - P[r0]
        beta = Q[r1] - Q[r0]
        norm = float(np.linalg.norm(a))
        if norm <= _SAME:  # constant difference on the cell: a zero-weight or dead unit
            c.code[col] = r1 if beta > 0 else r0
            return [c]
        n, t = a / norm, beta / norm  # f(x) = n.x + t > 0  <=>  piece r1
        # Outer box bound: if f stays below numerical zero on the box (or above), no LP is needed.
        top = t + np.maximum(n * c.lo, n * c.hi).sum()
        bottom = t + np.minimum(n * c.lo, n * c.hi).sum()
        if top <= -c.eps:
            c.code[col] = r0
            return [c]
        if bottom >= c.eps:
            c.code[col] = r1
            return [c]
        fw = c.wit @ n + t
        fmax, xmax = (float(fw.max()), c.wit[int(fw.argmax())]) if fw.max() > self.tol else (None, None)
        fmin, xmin = (float(fw.min()), c.wit[int(fw.argmin())]) if fw.min() < -self.tol else (None, None)
        if fmax is None:
            v, xmax = extreme(n, c.G, c.h, self.stats)
            fmax = v + t
        if fmin is None:
            v, xmin = extreme(-n, c.G, c.h, self.stats)
            fmin = -v + t
        pos, neg = fmax > self.tol, -fmin > self.tol
        if pos and neg:
            out = []
            for side, (sign, piece, other, xs) in enumerate(((1.0, r1, r0, xmax), (-1.0, r0, r1, xmin))):
                # piece r1 side: f >= 0  <=>  -n.x <= t ; row keeps the unit off `other`
                sub = c.add_row(-sign * n, sign * t, (col, other))
                sub.code[col] = piece
                r, center = chebyshev(sub.G, sub.h, self.stats)
                if r <= self.tol:
                    self.slivers.append(Sliver(col, piece, max(r, 0.0), center, c.code.copy()))
                    continue
                sub.center, sub.radius = center, r
                keep = c.wit[(sign * fw) >= -c.eps]
                sub.wit = np.vstack([center[None], xs[None], keep])[:_MAX_WITNESSES]
                out.append(sub)
            return out
        if pos:
            piece, thin, xthin, alt = r1, -fmin, xmin, r0
        elif neg:
            piece, thin, xthin, alt = r0, fmax, xmax, r1
        else:  # cannot happen for a cell of inradius > tol; keep it whole, on the centre's side
            piece, thin, xthin, alt = (r1 if c.center @ n + t > 0 else r0), max(fmax, -fmin), c.center, r0
        c.code[col] = piece
        if thin > c.eps:
            self.slivers.append(Sliver(col, alt, float(thin), np.asarray(xthin), c.code.copy()))
        elif thin > -c.eps:
            self._label_coincident(c, n, t, col, alt)
        c.wit = np.vstack([c.wit, xthin[None]])[:_MAX_WITNESSES] if xthin is not None else c.wit
        return [c]

    # vertex method ---------------------------------------------------------------------------------------
    def _split_both(self, c: _Cell, n: np.ndarray, t: float, fv: np.ndarray, label_pos: tuple[int, int],
                    label_neg: tuple[int, int]) -> tuple[_Cell, _Cell]:
        """Both parts of ``c`` cut by ``f = n.x + t = 0``: ``f >= 0`` and ``f <= 0``, with their vertices.

        New vertices lie on the edges that cross ``f = 0``. Two vertices span an edge iff the rows tight on both
        are tight on no other vertex (the double-description adjacency test; exact for degenerate polytopes).
        Incidences are bit sets: ``c.inc`` holds one uint64 word per 64 rows.
        """
        if _kernels.split_vertices is not None:  # compiled: same arithmetic, no per-call NumPy overhead
            V, inc, k = _kernels.split_vertices(c.V, c.inc, fv, self.d, c.eps, len(c.h))
            hi_part = c.add_row(-n, t, label_pos, box=False)
            hi_part.V, hi_part.inc, hi_part.center = V[:k], inc[:k], None
            lo_part = c.add_row(n, -t, label_neg, box=False)
            lo_part.V, lo_part.inc, lo_part.center = V[k:], inc[k:], None
            return hi_part, lo_part
        pos, neg = fv > c.eps, fv < -c.eps
        zero = ~pos & ~neg
        ia, ib = np.nonzero(pos)[0], np.nonzero(neg)[0]
        words = c.inc
        if words.shape[1] == 1:  # up to 64 rows: one word per vertex, 2-D bit operations
            w = words[:, 0]
            common1 = w[ia][:, None] & w[ib][None, :]  # (a, b)
            ca, cb = np.nonzero(np.bitwise_count(common1) >= self.d - 1)
            C1 = common1[ca, cb]  # (P,)
            sup = (C1[:, None] & ~w[None, :]) == 0  # (P, k): vertex w tight on all of C
            C = C1[:, None]
        else:
            common = words[ia][:, None, :] & words[ib][None, :, :]  # (a, b, W)
            ca, cb = np.nonzero(np.bitwise_count(common).sum(axis=-1) >= self.d - 1)
            C = common[ca, cb]  # (P, W)
            sup = np.all((C[:, None, :] & ~words[None, :, :]) == 0, axis=-1)
        rows = np.arange(len(ca))
        sup[rows, ia[ca]] = False
        sup[rows, ib[cb]] = False
        adj = ~sup.any(axis=1)
        i, j = ia[ca[adj]], ib[cb[adj]]
        lam = fv[i] / (fv[i] - fv[j])
        new_V = c.V[i] + lam[:, None] * (c.V[j] - c.V[i])
        new_inc = C[adj]
        m = len(c.h)  # index of the new row
        word, bit = divmod(m, 64)
        if word >= words.shape[1]:  # the new row needs one more word
            words = np.concatenate((words, np.zeros((len(words), 1), dtype=np.uint64)), axis=1)
            new_inc = np.concatenate((new_inc, np.zeros((len(new_inc), 1), dtype=np.uint64)), axis=1)
        else:
            words, new_inc = words.copy(), new_inc.copy()
        flag = np.uint64(1 << bit)
        new_inc[:, word] |= flag  # new vertices lie on the new row, and so do the old ones at f = 0
        words[zero, word] |= flag
        out = []
        for keep, sign, t_row, label in ((pos | zero, -1.0, t, label_pos), (neg | zero, 1.0, -t, label_neg)):
            sub = c.add_row(sign * n, t_row, label, box=False)  # f >= 0 <=> -n.x <= t ; f <= 0 <=> n.x <= -t
            sub.V = np.concatenate((c.V[keep], new_V))
            sub.inc = np.concatenate((words[keep], new_inc))
            sub.center = None
            out.append(sub)
        return out[0], out[1]

    def _split_two_v(self, c: _Cell, col: int, r0: int, r1: int, P: np.ndarray, Q: np.ndarray) -> list[_Cell]:
        a = P[r1] - P[r0]
        beta = Q[r1] - Q[r0]
        norm = math.sqrt(a @ a)
        if norm <= _SAME:
            c.code[col] = r1 if beta > 0 else r0
            return [c]
        n, t = a / norm, beta / norm
        fv = c.V @ n + t
        fmax, fmin = float(fv.max()), float(fv.min())
        if fmax > self.tol and -fmin > self.tol:
            hi_part, lo_part = self._split_both(c, n, t, fv, (col, r0), (col, r1))
            hi_part.code[col] = r1
            lo_part.code[col] = r0
            return [hi_part, lo_part]
        if fmax > self.tol:
            piece, thin, ithin, alt = r1, -fmin, int(fv.argmin()), r0
        elif -fmin > self.tol:
            piece, thin, ithin, alt = r0, fmax, int(fv.argmax()), r1
        else:  # cannot happen for a full-dimensional cell
            piece, thin, ithin, alt = (r1 if fmax >= -fmin else r0), max(fmax, -fmin), int(np.abs(fv).argmax()), r0
        c.code[col] = piece
        if thin > c.eps:
            self.slivers.append(Sliver(col, alt, float(thin), c.V[ithin].copy(), c.code.copy()))
        elif thin > -c.eps:
            self._label_coincident(c, n, t, col, alt)
        return [c]

    def _split_many_v(self, c: _Cell, col: int, pieces: list[int], P: np.ndarray, Q: np.ndarray) -> list[_Cell]:
        out = []
        for r in pieces:
            rivals = _rivals(r, pieces, P, Q)
            sub, ok, thin, touching = c, rivals is not None, None, []
            for s, n, t in rivals or ():  # piece s beats r where n.x + t > 0: keep f <= 0
                fv = sub.V @ n + t
                if fv.min() >= -self.tol:  # piece r never wins by more than tol here
                    if fv.min() < -c.eps:
                        thin = (float(-fv.min()), sub.V[int(fv.argmin())].copy())
                    ok = False
                    break
                if fv.max() > c.eps:
                    sub = self._split_both(sub, n, t, fv, (col, r), (col, s))[1]
                elif fv.max() > -c.eps:  # r's boundary with s runs along the cell: maybe one of its facets
                    touching.append((n, t, s))
            if not ok:
                if thin is not None:
                    self.slivers.append(Sliver(col, r, thin[0], thin[1], c.code.copy()))
                continue
            if sub is c:
                sub = c.copy()
            else:  # the intersection of several cuts can be thin although each cut reaches past tol
                radius, center = chebyshev(sub.G, sub.h, self.stats)
                if radius <= self.tol:
                    if radius > c.eps:
                        self.slivers.append(Sliver(col, r, float(radius), center, c.code.copy()))
                    continue
            sub.code[col] = r
            for n, t, s in touching:
                self._label_coincident(sub, n, t, col, s)
            out.append(sub)
        return out

    def _label_coincident(self, c: _Cell, n: np.ndarray, t: float, col: int, piece: int) -> None:
        """The unit's hyperplane touches the cell: if it is one of the cell's rows, label that row with it too."""
        for sign in (1.0, -1.0):  # row n.x <= -t (or -n.x <= t) coincides with f = 0
            hit = np.nonzero((np.max(np.abs(c.G - sign * n), axis=1) <= _COINCIDENT)
                             & (np.abs(c.h + sign * t) <= _COINCIDENT * (1 + abs(t))))[0]
            for i in hit:
                if (col, piece) not in c.labels[i]:
                    c.labels[i] = c.labels[i] + [(col, piece)]

    def _split_many(self, c: _Cell, col: int, pieces: list[int], P: np.ndarray, Q: np.ndarray) -> list[_Cell]:
        out = []
        for r in pieces:
            rivals = _rivals(r, pieces, P, Q)
            if rivals is None:
                continue
            sub = c
            for s, n, t in rivals:
                sub = sub.add_row(n, -t, (col, s))
            radius, center = chebyshev(sub.G, sub.h, self.stats)
            if radius <= self.tol:
                if radius > c.eps:
                    self.slivers.append(Sliver(col, r, float(radius), center, c.code.copy()))
                continue
            if sub is c:
                sub = c.copy()
            sub.code[col] = r
            sub.center, sub.radius = center, radius
            w = c.wit
            inside = np.all(w @ sub.G[len(c.h):].T <= sub.h[len(c.h):] + c.eps, axis=1) if len(sub.h) > len(c.h) \
                else np.ones(len(w), bool)
            sub.wit = np.vstack([center[None], w[inside]])[:_MAX_WITNESSES]
            out.append(sub)
        return out

    def expand(self, cells: list[_Cell], start: int, stop: int | None = None, budget: Any = None) -> list[_Cell]:
        """Split cells through stages ``start..stop-1`` (all remaining stages by default).

        ``budget`` (a ``_parallel._Budget``) is told the cells of every stage (``begin``) and every split's parts
        (``grew``): one cell can split into millions of parts within a stage, so it sees each split, and raises
        to stop the enumeration past its limits.
        """
        stop = len(self.groups) if stop is None else stop
        for s in range(start, stop):
            if not cells:
                break
            if budget is not None:
                budget.begin(s, len(self.groups), cells)
            P, Q = self.stage_scores(cells, s)
            nxt: list[_Cell] = []
            for i, c in enumerate(cells):
                nxt.extend(self.split_stage(c, s, P[i], Q[i], budget))
            cells = nxt
        return cells

    # regions --------------------------------------------------------------------------------------------
    def finalize(self, cells: list[_Cell]) -> list[Region]:
        if not cells:
            return []
        net = self.net
        n, d = len(cells), self.d
        if min(int(c.code.min(initial=0)) for c in cells) < 0:
            raise RuntimeError("internal: undecided units in a final cell")
        J, b = self._maps(cells, len(self.groups), None)
        J = J.reshape(n, d, -1).transpose(1, 2).numpy()
        b = b.reshape(n, -1).numpy()
        if not (np.isfinite(J).all() and np.isfinite(b).all()):
            raise _overflow("the affine maps of its regions")
        code_dtype = np.uint8 if net._code_dtype == np.uint8 else np.int32
        regions = []
        for i, c in enumerate(cells):
            if self.method == "vertices":
                keep = self.facets_from_vertices(c)
                c.radius, c.center = chebyshev(c.G[keep], c.h[keep], self.stats)
                if c.radius > self._domain_radius() * (1 + _RADIUS_SLACK) + c.eps:
                    # wider than the domain: rounding lost a facet (vertices too close to tell rows apart);
                    # find the facets again with LPs, from the Chebyshev ball of every row
                    c.radius, c.center = chebyshev(c.G, c.h, self.stats)
                    keep = self.irredundant(c)
                    c.radius, c.center = chebyshev(c.G[keep], c.h[keep], self.stats)
                if c.radius <= self.tol:  # thin although every cut reached past tol: a sliver, counted apart
                    self.slivers.append(Sliver(-1, -1, max(float(c.radius), 0.0), c.center, c.code.copy()))
                    continue
            else:
                keep = self.irredundant(c)
            labels = [c.labels[k] for k in keep]
            units = np.array([lab[0] for lab in labels], dtype=np.int64)
            facet_units = tuple([tuple([int(u) for u, _ in lab]) for lab in labels])
            poly = Polytope._trusted(c.G[keep], c.h[keep], units)
            regions.append(Region(readonly(c.code, code_dtype), poly, facet_units, readonly(c.center),
                                  float(c.radius), Affine._trusted(J[i].copy(), b[i].copy())))
        return regions

    def facets_from_vertices(self, c: _Cell) -> list[int]:
        """Facet rows, from vertex incidences alone.

        In a full-dimensional polytope a row's tight-vertex set is a facet's vertex set iff it has at least d
        vertices and no other row's set strictly contains it (every lower face lies in a facet, and the rows
        include every facet). Rows with equal sets are coincident (duplicated units): the first is kept with
        every label.
        """
        m = len(c.h)
        if _kernels.facet_rows is not None:
            out = _kernels.facet_rows(c.inc, m, self.d).tolist()
            n_keep = out[0]
            for i, f in zip(out[1 + n_keep::2], out[2 + n_keep::2]):  # coincident rows: merge labels
                c.labels[f] = c.labels[f] + [lab for lab in c.labels[i] if lab not in c.labels[f]]
            return out[1:1 + n_keep]
        else:
            F = _unpack(c.inc, m).T  # (m, k)
            if F.shape[1] <= 64:  # each row's vertex set as one uint64 word: (m, m) subset tests
                f = _pack(F)[:, 0]
                big = np.bitwise_count(f) >= self.d
                subset = (f[:, None] & ~f[None, :]) == 0  # [i, j]: F_i within F_j
            else:
                big = F.sum(axis=1) >= self.d
                subset = ~np.any(F[:, None, :] & ~F[None, :, :], axis=-1)
            equal = subset & subset.T
            strict = subset & ~equal
            facet = big & ~strict.any(axis=1)
            first = np.argmax(equal & facet[None, :], axis=1)  # the first facet row with the same vertex set
        idx = np.arange(m)
        for i in np.nonzero(facet & (first != idx))[0]:  # coincident rows (duplicated units): merge labels
            f = int(first[i])
            c.labels[f] = c.labels[f] + [lab for lab in c.labels[i] if lab not in c.labels[f]]
        return np.nonzero(facet & (first == idx))[0].tolist()

    def irredundant(self, c: _Cell) -> list[int]:
        """Indices of the rows that are facets (slack above tol), duplicates and weak redundancy removed."""
        G, h = c.G, c.h
        m = len(h)
        # Certify most facets without LPs: project the centre onto each row's hyperplane; if the projection
        # satisfies every other row with margin, that row is a facet.
        s = h - G @ c.center
        proj = c.center[None, :] + s[:, None] * G
        slack = h[None, :] - proj @ G.T
        np.fill_diagonal(slack, np.inf)
        sure = np.all(slack > self.tol, axis=1)
        active = np.ones(m, dtype=bool)
        if not sure.all():
            # DAQP's minimal representation drops strictly redundant rows in one call; it keeps weakly
            # redundant and duplicate rows, which the LPs below settle. Translate to the centre and rescale
            # first: minrep has absolute tolerances.
            import daqp

            scale = max(float(s.min()), float(np.finfo(np.float64).tiny))
            try:
                red = np.asarray(daqp.minrep(np.array(G, order="C"), np.array(s / scale))) == 1
                self.stats.daqp += 1
            except Exception:  # noqa: BLE001  # pragma: no cover - fall back to LPs for every row
                red = np.zeros(m, dtype=bool)
            active &= ~(red & ~sure)
        for i in range(m):
            if sure[i] or not active[i]:
                continue
            active[i] = False
            relaxed_h = h.copy()
            relaxed_h[i] += _RELAX
            idx = np.nonzero(active)[0].tolist() + [i]
            v, _ = extreme(G[i], G[idx], relaxed_h[idx], self.stats)
            if v - h[i] > self.tol:
                active[i] = True
        return np.nonzero(active)[0].tolist()
