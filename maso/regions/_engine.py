"""The subdivision engines' contract: cells cut layer by layer into the regions of a network.

`Engine` holds what both exact algorithms share (domain checks, the root cell, each stage's piece scores, the stage
driver, ``expand`` and ``finalize``); ``_lp_engine.LPEngine`` (``method="lp"``) and ``_vertex_engine.VertexEngine``
(``method="vertices"``) supply the steps that differ: the cell's representation, how a unit cuts a cell into two or
more pieces, and the facets of a finished cell. `make_engine` picks one by name.

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

import abc
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch

from maso._lp import LPStats, chebyshev, extreme
from maso._validation import readonly, sealed
from maso.core import _program
from maso.core._program import frozen_pass
from maso.core.affine import Affine
from maso.core.network import Network
from maso.core.polytope import Polytope
from maso.errors import DomainError
from maso.regions._geometry import _box_of
from maso.regions._records import Region, Sliver
from maso.regions._tolerances import (
    _BOX_PAD,
    _COEF_ZERO,
    _COINCIDENT,
    _EPS,
    _RELAX,
    _SAME,
    _TINY,
    _TOL_ULPS,
    _UNDERFLOW,
)

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



# ------------------------------------------------------------------------------------------ the network
# The engines see the network only through the evaluator (maso.core._program) and these three helpers.
def _input_shape_of(net: Network, node: int) -> tuple[int, ...]:
    """Shape of the (first) input of node ``node``."""
    return net.program.input_shape_of(node)


def _frozen(net: Network, z: torch.Tensor, icodes: dict[int, torch.Tensor], *, bias: bool, until: int | None
            ) -> torch.Tensor:
    """The network run on ``z`` ``(n, T, *input_shape)`` with every unit frozen on its coded piece (stopping before
    node ``until``: its input)."""
    return frozen_pass(net.program, z, icodes, bias=bias, until=until)[0]


def _code_dtype(net: Network) -> type:
    """The dtype of the network's code rows: uint8 or int32."""
    return np.uint8 if net.program.code_dtype == np.uint8 else np.int32


def require_piecewise_linear(net: Network, caller: str) -> None:
    """Refuse networks with soft (smooth) spline layers: they have no regions.

    Raises
    ------
    UnsupportedLayerError
        A soft spline layer in ``net``.
    """
    _program.require_piecewise_linear(net.program, caller)


# ------------------------------------------------------------------------------------------------ cells
class _Cell:
    """A polytope with the codes of the layers handled so far fixed (mutable, internal): rows ``G x <= h`` with
    their labels, an interior ball (``center``, ``radius``; None and 0 where not known), witness points, an outer
    bounding box ``[lo, hi]`` (not tight) and ``eps``, the numerical zero of input distances here (``_EPS``
    times the domain's coordinate scale). The LP engine's cell; `_VertexCell` adds vertices."""

    __slots__ = ("G", "center", "code", "eps", "h", "hi", "labels", "lo", "radius", "wit")

    def __init__(self, G, h, labels, code, center, radius, wit, lo, hi, eps=_EPS):
        self.G, self.h, self.labels, self.code = G, h, labels, code
        self.center, self.radius, self.wit = center, radius, wit
        self.lo, self.hi = lo, hi
        self.eps = eps

    def add_row(self, n: np.ndarray, c: float, label: tuple[int, int]) -> _Cell:
        """This cell cut by ``n.x <= c`` (the bounding box tightened with it), with a code of its own."""
        G = np.concatenate((self.G, n[None]))  # concatenate: np.vstack/np.append cost 3-5x more per call here
        h = np.concatenate((self.h, (c,)))
        lo, hi = _tighten(self.lo, self.hi, n, c, self.eps)
        return _Cell(G, h, self.labels + [[label]], self.code.copy(), None, 0.0, None, lo, hi, self.eps)

    def copy(self) -> _Cell:
        """A cell sharing this one's arrays, with its own code and labels (to be changed independently)."""
        return _Cell(self.G, self.h, [list(x) for x in self.labels], self.code.copy(), self.center, self.radius,
                     self.wit, self.lo, self.hi, self.eps)


class _VertexCell(_Cell):
    """A `_Cell` with its vertices ``V`` ``(k, d)`` and their incidences ``inc``: which rows each vertex is tight
    on, as bit sets ``(k, ceil(m / 64))`` uint64 (`_pack`). The vertex engine's cell."""

    __slots__ = ("V", "inc")

    def __init__(self, G, h, labels, code, center, radius, wit, lo, hi, eps, V, inc):
        # the fields assigned here, not by super().__init__: cells are made once per cut
        self.G, self.h, self.labels, self.code = G, h, labels, code
        self.center, self.radius, self.wit = center, radius, wit
        self.lo, self.hi = lo, hi
        self.eps = eps
        self.V, self.inc = V, inc

    def cut(self, n: np.ndarray, c: float, label: tuple[int, int], V: np.ndarray, inc: np.ndarray) -> _VertexCell:
        """This cell cut by ``n.x <= c``, whose vertices and incidences are ``V`` and ``inc`` (the bounding box
        is kept: vertices decide every cut), with a code of its own."""
        G = np.concatenate((self.G, n[None]))
        h = np.concatenate((self.h, (c,)))
        return _VertexCell(G, h, self.labels + [[label]], self.code.copy(), None, 0.0, None, self.lo, self.hi,
                           self.eps, V, inc)

    def copy(self) -> _VertexCell:
        return _VertexCell(self.G, self.h, [list(x) for x in self.labels], self.code.copy(), self.center,
                           self.radius, self.wit, self.lo, self.hi, self.eps, self.V, self.inc)


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



# ------------------------------------------------------------------------------------------------ engine
#: The cell type of an engine.
C = TypeVar("C", bound=_Cell)


class Engine(abc.ABC, Generic[C]):
    """One exact algorithm that cuts the domain into the regions of a network (one run, or one task of a run).

    Shared by both algorithms: the domain's checks and root cell, each stage's piece scores, the stage driver
    (`split_stage`: two-piece units screened at once, then each undecided unit cuts every cell), `split_unit`
    (identical pieces merged), `expand` and `finalize` (affine maps and records). Each algorithm supplies the
    cell's representation (`_root_cell`), the extents of units over a cell (`_extents`), the cut of a cell by a
    unit with two pieces (`split_two`) or more (`split_many`), and the facets of a finished cell (`facets`).

    An engine gathers its LP counts (``stats``) and the slivers it met (``slivers``); the cells are the caller's.
    """

    #: The ``method`` of [`enumerate_regions`][maso.enumerate_regions] this engine runs (also in checkpoint
    #: headers, task payloads and ``RegionSet.stats``).
    method: ClassVar[str]

    def __init__(self, net: Network, domain: Polytope, tol: float) -> None:
        self.net = net
        self.domain = domain
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

    def root(self) -> C:
        """The domain as the first cell, in this engine's representation.

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
        return self._root_cell(cell, lo, hi)

    def _domain_radius(self) -> float:
        if self._domain_r is None:  # a worker's engine: its cells come planned, the domain checked
            self._domain_r = float(chebyshev(np.array(self.domain.A), np.array(self.domain.b), self.stats)[0])
        return self._domain_r

    def _maps(self, cells: Sequence[_Cell], n_groups: int, until: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear parts ``(n, d, ...)`` and offsets ``(n, 1, ...)`` of the input of node ``until`` (the output
        if None) on each cell, from the codes of the first ``n_groups`` spline layers."""
        net = self.net
        n, d = len(cells), self.d
        codes = np.stack([c.code for c in cells])
        icodes = {}
        for g in self.groups[:n_groups]:
            layer = net.program.spline_layer(g.node)
            pub = torch.from_numpy(codes[:, g.columns].astype(np.int64)).reshape(n, *g.shape)
            icodes[g.node] = layer.internal_code(pub, _input_shape_of(net, g.node))
        shape = net.input_shape
        with torch.no_grad():
            eye = torch.eye(d, dtype=torch.float64).reshape(1, d, *shape).expand(n, d, *shape)
            zero = torch.zeros((n, 1, *shape), dtype=torch.float64)
            G = _frozen(net, eye, icodes, bias=False, until=until)
            o = _frozen(net, zero, icodes, bias=True, until=until)
        return G, o

    def stage_scores(self, cells: Sequence[_Cell], s: int) -> tuple[np.ndarray, np.ndarray]:
        """Piece scores of the units of stage ``s`` on every cell, ``(n, U, R, d)`` and ``(n, U, R)``, each
        cell's scaled by a power of two to a largest slope entry in ``[0.5, 1)`` (`_normalise_scores`)."""
        node = self.groups[s].node
        G, o = self._maps(cells, s, node)
        with torch.no_grad():
            P, Q = self.net.program.spline_layer(node).scores(G, o[:, 0], _input_shape_of(self.net, node))
        return _normalise_scores(P.numpy(), Q.numpy())

    def split_stage(self, cell: C, s: int, P: np.ndarray, Q: np.ndarray, budget: Any = None) -> list[C]:
        """The parts of ``cell`` on which every unit of stage ``s`` has one piece (scores ``P``, ``Q`` of the
        cell), and their codes."""
        g = self.groups[s]
        cells: list[C] = [cell]
        two = P.shape[1] == 2 and bool(np.all(np.isfinite(Q)))
        todo = self._screen(cell, g.offset, P, Q) if two else range(g.size)
        for u in todo:
            col = g.offset + int(u)
            nxt: list[C] = []
            for c in cells:
                # Two-piece units were screened above (equal pieces have a zero-norm difference).
                parts = self.split_two(c, col, 0, 1, P[u], Q[u]) if two else self.split_unit(c, col, P[u], Q[u])
                if budget is not None:  # one cell can split into millions of parts within a stage
                    budget.grew(len(parts) - 1, parts)
                nxt.extend(parts)
            cells = nxt
        return cells

    def _screen(self, cell: C, offset: int, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
        """Two-piece units, all at once: a unit whose hyperplane misses the cell (by `_extents`), or whose pieces
        differ by a constant, is decided for the cell and every part of it, without a cut. Its code columns
        start at ``offset``; returns the indices of the undecided units."""
        a = P[:, 1] - P[:, 0]
        beta = Q[:, 1] - Q[:, 0]
        norm = np.sqrt((a * a).sum(axis=1))  # sums in the order of the compiled screen (identical results)
        flat = norm <= _SAME
        safe = np.where(flat, 1.0, norm)  # no 0/0 for flat units (their rows are zeroed)
        nrm = a / safe[:, None]
        nrm[flat] = 0.0
        t = np.where(flat, beta, beta / safe)
        top, bottom = self._extents(cell, nrm, t)
        on = np.where(flat, beta > 0, bottom >= cell.eps)
        off = np.where(flat, beta <= 0, top <= -cell.eps)
        cols = offset + np.arange(len(P))
        cell.code[cols[on]] = 1
        cell.code[cols[off]] = 0
        return np.nonzero(~(on | off))[0]

    def split_unit(self, c: C, col: int, P: np.ndarray, Q: np.ndarray) -> list[C]:
        """The parts of ``c`` on which unit ``col`` (piece scores ``P`` ``(R, d)``, ``Q`` ``(R,)``; ``-inf``:
        a missing piece) has one piece; identical pieces are merged first, the lowest index kept."""
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
            return self.split_two(c, col, pieces[0], pieces[1], P, Q)
        return self.split_many(c, col, pieces, P, Q)

    def _label_coincident(self, c: _Cell, n: np.ndarray, t: float, col: int, piece: int) -> None:
        """The unit's hyperplane touches the cell: if it is one of the cell's rows, label that row with it too."""
        for sign in (1.0, -1.0):  # row n.x <= -t (or -n.x <= t) coincides with f = 0
            hit = np.nonzero((np.max(np.abs(c.G - sign * n), axis=1) <= _COINCIDENT)
                             & (np.abs(c.h + sign * t) <= _COINCIDENT * (1 + abs(t))))[0]
            for i in hit:
                if (col, piece) not in c.labels[i]:
                    c.labels[i] = c.labels[i] + [(col, piece)]

    def expand(self, cells: list[C], start: int, stop: int | None = None, budget: Any = None) -> list[C]:
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
            nxt: list[C] = []
            for i, c in enumerate(cells):
                nxt.extend(self.split_stage(c, s, P[i], Q[i], budget))
            cells = nxt
        return cells

    # regions --------------------------------------------------------------------------------------------
    def finalize(self, cells: list[C]) -> list[Region]:
        """The regions of cells with every unit decided (cells found thinner than ``tol`` become slivers)."""
        if not cells:
            return []
        n, d = len(cells), self.d
        if min(int(c.code.min(initial=0)) for c in cells) < 0:
            raise RuntimeError("internal: undecided units in a final cell")
        Jt, bt = self._maps(cells, len(self.groups), None)
        J = Jt.reshape(n, d, -1).transpose(1, 2).numpy()
        b = bt.reshape(n, -1).numpy()
        if not (np.isfinite(J).all() and np.isfinite(b).all()):
            raise _overflow("the affine maps of its regions")
        code_dtype = _code_dtype(self.net)
        regions = []
        for i, c in enumerate(cells):
            keep = self.facets(c)
            if keep is None:
                continue
            labels = [c.labels[k] for k in keep]
            units = np.array([lab[0] for lab in labels], dtype=np.int64)
            facet_units = tuple([tuple([int(u) for u, _ in lab]) for lab in labels])
            poly = Polytope.from_owned(c.G[keep], c.h[keep], units)
            regions.append(Region(readonly(c.code, code_dtype), poly, facet_units, readonly(c.center),
                                  float(c.radius), Affine.from_owned(J[i].copy(), b[i].copy())))
        return regions

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

            scale = max(float(s.min()), _TINY)
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

    def _sliver(self, unit: int, piece: int, thickness: float, point: np.ndarray, code: np.ndarray) -> None:
        """Record a part thinner than ``tol`` (its arrays made read-only: they end in a frozen RegionSet)."""
        self.slivers.append(Sliver(unit, piece, thickness, sealed(point), sealed(code)))

    # the algorithm's steps ------------------------------------------------------------------------------
    @abc.abstractmethod
    def _root_cell(self, cell: _Cell, lo: np.ndarray, hi: np.ndarray) -> C:
        """The domain's cell (rows, ball, padded box) in this engine's representation; ``[lo, hi]`` is the
        domain's exact bounding box."""

    @abc.abstractmethod
    def _extents(self, cell: C, nrm: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower bounds ``(U,)`` of ``nrm[u] . x + t[u]`` over the cell, for `_screen`: units whose
        bounds keep one sign are decided without a cut."""

    @abc.abstractmethod
    def split_two(self, c: C, col: int, r0: int, r1: int, P: np.ndarray, Q: np.ndarray) -> list[C]:
        """The parts of ``c`` where piece ``r0`` or ``r1`` of unit ``col`` wins (one or two cells, their code at
        ``col`` set); parts thinner than ``tol`` become slivers."""

    @abc.abstractmethod
    def split_many(self, c: C, col: int, pieces: list[int], P: np.ndarray, Q: np.ndarray) -> list[C]:
        """The parts of ``c`` where each of ``pieces`` (three or more, all distinct) of unit ``col`` wins."""

    @abc.abstractmethod
    def facets(self, c: C) -> list[int] | None:
        """Indices of the facet rows of a finished cell (coincident rows' labels merged), with ``c.center`` and
        ``c.radius`` its Chebyshev ball; None if the cell proves thinner than ``tol`` (recorded as a sliver)."""
