r"""Exact enumeration of the linear regions of a network inside a bounded domain.

Algorithm (layer-wise subdivision). The spline layers are taken in topological order. A *cell* is a convex
polytope on which the codes of the layers handled so far are fixed, so the next layer's units have piece scores
that are affine in the input. Each unit splits each cell into the parts where each of its pieces wins. After the
last layer every cell is one region, with its affine map from a frozen pass through the network.

Two exact ways to cut cells and find facets (``method``): ``"vertices"`` carries each cell's vertices and their
row incidences (double description: exact decisions from vertex extents, edges by the combinatorial adjacency
test, facets from incidences, one LP per region for its Chebyshev centre); ``"lp"`` decides cuts from witness
points, outer bounding boxes and LPs, and reduces rows to facets with ``daqp.minrep`` plus LPs.

Exactness policy (see the docs' "Exactness" page):

* distances are in input units, rows are normalised to unit norm;
* a hyperplane cuts a cell only if both sides reach more than ``tol`` past it; parts thinner than ``tol`` are
  never made into regions and never dropped silently: they are listed as :class:`Sliver` and counted apart;
* identical pieces (duplicated units, a max-pool window of equal inputs) are merged, lowest index first; pieces
  whose difference is constant on a cell (zero-weight and dead units) decide their unit without a split;
* a facet on which several units' hyperplanes coincide lists all of them.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import pickle
import struct
import sys
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from maso import _kernels
from maso._lp import LPStats, chebyshev, extreme
from maso._validation import readonly
from maso.affine import Affine
from maso.domain import as_domain
from maso.errors import CheckpointError, NumericalWarning, ShapeError, WorkerError
from maso.network import Network
from maso.polytope import Polytope

__all__ = ["Region", "RegionSet", "Sliver", "VerificationReport", "enumerate_regions", "iter_regions",
           "DEFAULT_TOL"]

#: Default tolerance (input-space distance): thinner parts are slivers, counted apart.
DEFAULT_TOL = 1e-9
#: Below this, a distance is numerical zero (a hyperplane through a vertex, a duplicate row).
_EPS = 1e-12
#: Two pieces are identical when their slopes and offsets agree to this (duplicated units).
_SAME = 1e-12
#: ``method="auto"`` carries vertices up to this input dimension, and uses LPs above it.
_VERTEX_MAX_DIM = 6
#: Witness points kept per cell.
_MAX_WITNESSES = 12


# ----------------------------------------------------------------------------------------------- records
@dataclass(frozen=True, eq=False)
class Sliver:
    """A part of a cell thinner than the tolerance: not made a region, reported here instead.

    Attributes
    ----------
    unit : int
        Code column of the unit whose hyperplane cut off the sliver.
    piece : int
        The piece of that unit on the sliver.
    thickness : float
        How far the sliver reaches past the hyperplane (at most ``tol``).
    point : ndarray of shape (d,)
        A point of the sliver (an LP optimum).
    code_prefix : ndarray of shape (n_units,)
        The codes decided for the cell when it was found (-1: not yet decided).
    """

    unit: int
    piece: int
    thickness: float
    point: np.ndarray
    code_prefix: np.ndarray


@dataclass(frozen=True, eq=False)
class Region:
    """One linear region: a convex polytope on which the network is one affine map.

    Attributes
    ----------
    code : ndarray of shape (n_units,)
        The spline code (as :meth:`Network.codes` gives it).
    polytope : Polytope
        Irredundant H-representation with unit-norm rows; ``polytope.units[i]`` is the (first) unit of facet
        ``i`` and its competing piece, ``(-1, -1)`` for a facet of the domain.
    facet_units : tuple of tuple of int
        All units whose hyperplane is facet ``i`` (several for duplicated units; ``(-1,)`` for the domain).
    interior_point : ndarray of shape (d,)
        The Chebyshev centre.
    inradius : float
        Radius of the largest ball inside the region.
    affine : Affine
        The network's map on the region (on the flattened input).
    """

    code: np.ndarray
    polytope: Polytope
    facet_units: tuple[tuple[int, ...], ...]
    interior_point: np.ndarray
    inradius: float
    affine: Affine

    def contains(self, y: Any, *, atol: float = 1e-9) -> Any:
        """Whether points lie in the (closed) region."""
        return self.polytope.contains(y, atol=atol)

    def vertices(self) -> np.ndarray:
        """Vertices ``(k, d)`` (qhull, through the interior point; practical for d <= 6 or so)."""
        from scipy.spatial import HalfspaceIntersection

        P = self.polytope
        if P.dim == 1:  # an interval: qhull needs d >= 2
            a, b = P.A[:, 0], P.b
            return np.array([[float(np.max(b[a < 0] / a[a < 0]))], [float(np.min(b[a > 0] / a[a > 0]))]])
        hs = HalfspaceIntersection(np.hstack([P.A, -P.b[:, None]]), self.interior_point)
        return np.unique(np.round(hs.intersections, 12), axis=0)

    def volume(self) -> float:
        """Lebesgue volume (area in 2-D), from the vertices' convex hull."""
        from scipy.spatial import ConvexHull

        V = self.vertices()
        if V.shape[1] == 1:
            return float(V.max() - V.min())
        return float(ConvexHull(V).volume)

    def distance_to_boundary(self, y: Any) -> float:
        """Distance from a point inside to the region's boundary (rows are unit-norm: the smallest slack)."""
        return float(np.min(self.polytope.slack(y)))

    def maximize(self, objective: Any, *, solver: str | None = None) -> tuple[float, np.ndarray]:
        """Maximise an objective over the region.

        Parameters
        ----------
        objective : array of shape (d_out,) or callable
            A vector ``c`` maximises ``c . f(y)`` over the region (``f`` the region's affine map), solved
            directly by LP. A callable ``objective(y, out)`` receives a cvxpy variable ``y`` and the cvxpy
            expression ``out = A y + b`` and returns a concave cvxpy expression (needs ``pip install cvxpy``).
        solver : str, optional
            cvxpy solver name, for callables.

        Returns
        -------
        value, argmax : float, ndarray of shape (d,)
        """
        return self._optimize(objective, solver, sense=1.0)

    def minimize(self, objective: Any, *, solver: str | None = None) -> tuple[float, np.ndarray]:
        """Minimise an objective over the region; see :meth:`maximize` (callables must be convex)."""
        return self._optimize(objective, solver, sense=-1.0)

    def _optimize(self, objective: Any, solver: str | None, sense: float) -> tuple[float, np.ndarray]:
        A, b = np.asarray(self.affine.A, dtype=np.float64), np.asarray(self.affine.b, dtype=np.float64)
        P = self.polytope
        if not callable(objective):
            c = np.asarray(objective, dtype=np.float64).reshape(-1)
            if c.shape != (A.shape[0],):
                raise ShapeError(f"A linear objective needs shape ({A.shape[0]},) (one weight per output). "
                                 f"Got {c.shape}.")
            v, x = extreme(sense * (c @ A), P.A, P.b)
            return float(sense * v + c @ b), x
        try:
            import cvxpy as cp
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Callable objectives need cvxpy: pip install 'maso[opt]' (or cvxpy).") from e
        y = cp.Variable(P.dim)
        out = A @ y + b
        expr = objective(y, out)
        prob = cp.Problem(cp.Maximize(expr) if sense > 0 else cp.Minimize(expr), [P.A @ y <= P.b])
        prob.solve(solver=solver)
        if prob.status not in ("optimal", "optimal_inaccurate"):
            from maso.errors import SolverError

            raise SolverError(f"cvxpy returned status {prob.status!r} for the region objective.")
        return float(prob.value), np.asarray(y.value)


@dataclass(frozen=True)
class VerificationReport:
    """What :meth:`RegionSet.verify` checked, and what failed.

    Attributes
    ----------
    n_regions : int
    code_mismatches : int
        Regions whose interior point has another code than the region's.
    max_map_error : float
        Largest ``|A y + b - net(y)|`` at interior points and random points of the regions.
    facet_errors : int
        Facets whose row is not the hyperplane of the unit they are labelled with.
    n_points, uncovered, multiply_covered : int
        Random points of the domain, those in no region and those in more than one.
    ok : bool
        All of the above clean (map error below ``atol``).
    """

    n_regions: int
    code_mismatches: int
    max_map_error: float
    facet_errors: int
    n_points: int
    uncovered: int
    multiply_covered: int
    ok: bool

    def __str__(self) -> str:
        return (f"{'OK' if self.ok else 'FAILED'}: {self.n_regions} regions; code mismatches {self.code_mismatches}; "
                f"max map error {self.max_map_error:.2e}; facet errors {self.facet_errors}; coverage: "
                f"{self.n_points} random points, {self.uncovered} in no region, {self.multiply_covered} in several")


class RegionSet(Sequence[Region]):
    """The regions of a network in a domain: sized, iterable, indexable.

    Attributes
    ----------
    network : Network
    domain : Polytope
        The domain with unit-norm rows.
    slivers : tuple of Sliver
        Parts thinner than ``tol``, counted apart (``len(slivers)``), never silently dropped.
    tol : float
    stats : dict
        LPs solved (DAQP, HiGHS), fallbacks, tasks.
    """

    def __init__(self, network: Network, domain: Polytope, regions: Sequence[Region], slivers: Sequence[Sliver],
                 tol: float, stats: dict[str, int]) -> None:
        self.network = network
        self.domain = domain
        self._regions = tuple(regions)
        self.slivers = tuple(slivers)
        self.tol = tol
        self.stats = dict(stats)
        self._index = {r.code.tobytes(): i for i, r in enumerate(self._regions)}

    def __len__(self) -> int:
        return len(self._regions)

    def __getitem__(self, i: Any) -> Any:
        return self._regions[i]

    def __iter__(self) -> Iterator[Region]:
        return iter(self._regions)

    def __repr__(self) -> str:
        return (f"RegionSet({len(self)} regions, {len(self.slivers)} slivers thinner than tol={self.tol:g}, "
                f"d={self.domain.dim})")

    @property
    def codes(self) -> np.ndarray:
        """All codes, ``(n_regions, n_units)``."""
        return np.stack([r.code for r in self._regions]) if self._regions else np.zeros((0, self.network.n_units))

    def find(self, y: Any) -> int | None:
        """Index of the region holding point ``y`` (by its code), or None."""
        code = self.network.codes(np.asarray(y, dtype=np.float64).reshape(self.network.input_shape))
        return self._index.get(np.asarray(code, dtype=self._regions[0].code.dtype).tobytes()) if self._regions \
            else None

    def graph(self) -> Any:
        """Adjacency graph (networkx): regions as nodes, an edge where two regions share a facet.

        Each edge carries ``units``: the code columns that flip across the shared facet. Adjacency is decided
        exactly: candidate neighbours share the code up to the facet's layer, and the shared part of the
        facet must contain a (d-1)-dimensional ball of radius above ``tol``.
        """
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(len(self)))
        groups = self.network.units
        ends = [grp.offset + grp.size for grp in groups]
        col_group = np.zeros(self.network.n_units, dtype=np.int64)
        for gi, grp in enumerate(groups):
            col_group[grp.columns] = gi
        prefix: list[dict[bytes, list[int]]] = [{} for _ in groups]
        for i, r in enumerate(self._regions):
            for gi, end in enumerate(ends):
                prefix[gi].setdefault(r.code[:end].tobytes(), []).append(i)
        all_codes = None
        for i, r in enumerate(self._regions):
            P = r.polytope
            for f, units in enumerate(r.facet_units):
                if units[0] < 0:
                    continue
                # units of coincident boundaries can sit in several layers: every unit not listed keeps its
                # piece across the facet, so the neighbour's code is known up to the last listed layer
                gi = int(col_group[list(units)].max())
                target = r.code[: ends[gi]].copy()
                unknown = []
                for u in units:
                    piece = _competing_piece(r, f, u, groups[int(col_group[u])].n_pieces)
                    if piece is None:
                        unknown.append(u)
                    else:
                        target[u] = piece
                if unknown:  # e.g. a max-pool window of zeros whose winner changes where one input turns on
                    if all_codes is None:
                        all_codes = np.array([q.code for q in self._regions])
                    known = np.ones(ends[gi], dtype=bool)
                    known[unknown] = False
                    hits = np.all(all_codes[:, : ends[gi]][:, known] == target[known], axis=1)
                    candidates = np.flatnonzero(hits).tolist()
                else:
                    candidates = prefix[gi].get(target.tobytes(), [])
                for j in candidates:
                    if j <= i or g.has_edge(i, j):
                        continue
                    if _share_facet(P.A, P.b, f, self._regions[j].polytope, self.tol):
                        g.add_edge(i, j, units=tuple(int(u) for u in units))
        return g

    def verify(self, *, n_points: int = 1000, atol: float = 1e-8, rng: Any = None) -> VerificationReport:
        """Certify the enumeration: codes, maps and facets of every region, and coverage of the domain.

        Parameters
        ----------
        n_points : int, default=1000
            Random points of the domain (rejection-sampled from its bounding box) that must each lie in exactly
            one region.
        atol : float, default=1e-8
            Tolerance of the map check and of the containment tests.
        rng : numpy Generator or int, optional
        """
        net = self.network
        rng = np.random.default_rng(rng)
        regions = self._regions
        n = len(regions)
        if n == 0:
            return VerificationReport(0, 0, 0.0, 0, 0, n_points, 0, False)
        centers = np.stack([r.interior_point for r in regions])
        shape = net.input_shape
        codes = net.codes(centers.reshape(n, *shape))
        mism = int(np.sum(np.any(codes != self.codes, axis=1)))
        out = net(centers.reshape(n, *shape)).reshape(n, -1)
        pred = np.stack([r.affine.A @ c + r.affine.b for r, c in zip(regions, centers)])
        err = float(np.max(np.abs(out - pred)))
        facet_err = _check_facets(net, regions)
        # Coverage: random points of the domain's bounding box, kept if inside the domain.
        lo, hi = _bounding_box(self.domain)
        pts = rng.uniform(lo, hi, size=(4 * n_points, len(lo)))
        pts = pts[self.domain.contains(pts)][:n_points]
        counts = np.zeros(len(pts), dtype=np.int64)
        for r in regions:
            counts += r.polytope.contains(pts, atol=atol)
        # Maps at the random points, in the region their code names.
        pcodes = net.codes(pts.reshape(len(pts), *shape))
        pout = net(pts.reshape(len(pts), *shape)).reshape(len(pts), -1)
        for k, c in enumerate(pcodes):
            i = self._index.get(np.asarray(c, dtype=regions[0].code.dtype).tobytes())
            if i is None:
                counts[k] = min(counts[k], 0)  # its code names no region: uncovered
                continue
            f = regions[i].affine
            err = max(err, float(np.max(np.abs(f.A @ pts[k] + f.b - pout[k]))))
        unc = int(np.sum(counts == 0))
        multi = int(np.sum(counts > 1))
        ok = mism == 0 and err <= atol * 100 and facet_err == 0 and unc == 0 and multi == 0
        return VerificationReport(n, mism, err, facet_err, len(pts), unc, multi, ok)


def _competing_piece(r: Region, f: int, u: int, n_pieces: int) -> int | None:
    """The piece unit ``u`` takes across facet ``f``; ``None`` if the facet does not say (a unit with more than
    two pieces whose boundary coincides with the facet's own unit)."""
    units = r.polytope.units
    if units is not None and units[f, 0] == u:
        return int(units[f, 1])
    if n_pieces == 2:  # a coincident duplicate unit: two-piece units flip
        return int(1 - r.code[u])
    return None


def _bounding_box(P: Polytope) -> tuple[np.ndarray, np.ndarray]:
    d = P.dim
    lo, hi = np.empty(d), np.empty(d)
    for i in range(d):
        e = np.zeros(d)
        e[i] = 1.0
        hi[i] = extreme(e, P.A, P.b)[0]
        lo[i] = -extreme(-e, P.A, P.b)[0]
    return lo, hi


def _share_facet(A: np.ndarray, b: np.ndarray, f: int, other: Polytope, tol: float) -> bool:
    """Whether facet ``f`` of ``{A x <= b}`` and the closure of ``other`` meet in a (d-1)-dimensional piece."""
    n, c = A[f], b[f]
    d = A.shape[1]
    if d == 1:
        x = np.array([c / n[0]])
        return bool(np.all(A @ x <= b + 1e-9) and other.contains(x, atol=1e-9))
    # Parametrise the hyperplane n.x = c as x0 + B z.
    x0 = n * c
    basis = np.linalg.svd(n[None, :])[2][1:].T  # (d, d-1), orthonormal
    rows = []
    rhs = []
    for Gm, hm in ((np.delete(A, f, axis=0), np.delete(b, f)), (other.A, other.b)):
        Gz = Gm @ basis
        hz = hm - Gm @ x0
        norms = np.linalg.norm(Gz, axis=1)
        flat = norms <= 1e-12
        if np.any(hz[flat] < -1e-9):
            return False
        rows.append(Gz[~flat] / norms[~flat, None])
        rhs.append(hz[~flat] / norms[~flat])
    r, _ = chebyshev(np.vstack(rows), np.concatenate(rhs))
    return r > tol


def _check_facets(net: Network, regions: Sequence[Region]) -> int:
    """Count facets whose row is not (a positive multiple of) the labelled unit's constraint at the region."""
    bad = 0
    for r in regions:
        P = net.region_at(r.interior_point.reshape(net.input_shape))
        A = P.A
        norms = np.linalg.norm(A, axis=1)
        for i, (u, piece) in enumerate(r.polytope.units):
            if u < 0:
                continue
            rows = np.nonzero((P.units[:, 0] == u) & (P.units[:, 1] == piece))[0]
            if len(rows) != 1 or norms[rows[0]] == 0:
                bad += 1
                continue
            j = rows[0]
            if not (np.allclose(A[j] / norms[j], r.polytope.A[i], atol=1e-7)
                    and abs(P.b[j] / norms[j] - r.polytope.b[i]) <= 1e-7 * (1 + abs(P.b[j] / norms[j]))):
                bad += 1
    return bad


# ------------------------------------------------------------------------------------------------ engine
class _Cell:
    """A polytope with the codes of the layers handled so far fixed (mutable, internal)."""

    __slots__ = ("G", "h", "labels", "code", "center", "radius", "wit", "lo", "hi", "V", "inc")

    def __init__(self, G, h, labels, code, center, radius, wit, lo, hi, V=None, inc=None):
        self.G, self.h, self.labels, self.code = G, h, labels, code
        self.center, self.radius, self.wit = center, radius, wit
        self.lo, self.hi = lo, hi  # an outer bounding box (not tight)
        self.V, self.inc = V, inc  # vertex method: vertices (k, d) and which rows each is tight on (k, m)

    def add_row(self, n: np.ndarray, c: float, label: tuple[int, int], box: bool = True) -> "_Cell":
        G = np.concatenate((self.G, n[None]))  # concatenate: np.vstack/np.append cost 3-5x more per call here
        h = np.concatenate((self.h, (c,)))
        lo, hi = _tighten(self.lo, self.hi, n, c) if box else (self.lo, self.hi)
        return _Cell(G, h, self.labels + [[label]], self.code.copy(), None, 0.0, None, lo, hi)


def _pack(inc: np.ndarray) -> np.ndarray:
    """Bool incidences (k, m) to bit sets: (k, ceil(m / 64)) uint64, row r in word r // 64, bit r % 64."""
    packed = np.packbits(inc, axis=1, bitorder="little")
    out = np.zeros((inc.shape[0], -(-packed.shape[1] // 8) * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view(np.uint64)


def _unpack(words: np.ndarray, m: int) -> np.ndarray:
    """Inverse of :func:`_pack`: (k, m) bool."""
    return np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :m].astype(bool)


def _tighten(lo: np.ndarray, hi: np.ndarray, a: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the box [lo, hi] with the half-space a.x <= c (one pass of bound propagation)."""
    low = np.minimum(a * lo, a * hi)
    rest = low.sum() - low
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (c - rest) / a
    lo2, hi2 = lo.copy(), hi.copy()
    pos, neg = a > 1e-12, a < -1e-12
    hi2[pos] = np.minimum(hi[pos], bound[pos] + 1e-12)
    lo2[neg] = np.maximum(lo[neg], bound[neg] - 1e-12)
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

    # cells ----------------------------------------------------------------------------------------------
    def root(self) -> _Cell:
        G, h = np.array(self.domain.A), np.array(self.domain.b)
        r, c = chebyshev(G, h, self.stats)
        code = np.full(self.net.n_units, -1, dtype=np.int16)
        lo, hi = _bounding_box(self.domain)
        cell = _Cell(G, h, [[(-1, -1)] for _ in range(len(h))], code, c, r, c[None].copy(), lo - 1e-9, hi + 1e-9)
        if self.method == "vertices":
            if self.d == 1:
                V = np.array([[lo[0]], [hi[0]]])
            else:
                from scipy.spatial import HalfspaceIntersection

                hs = HalfspaceIntersection(np.hstack([G, -h[:, None]]), c)
                V = np.unique(np.round(hs.intersections, 13), axis=0)
            cell.V = V
            cell.inc = _pack(np.abs(V @ G.T - h[None, :]) <= 1e-10 * (1 + np.abs(h))[None, :])
        return cell

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
        """Piece scores of the units of stage ``s`` on every cell: ``(n, U, R, d)`` and ``(n, U, R)``."""
        node = self.groups[s].node
        G, o = self._maps(cells, s, node)
        with torch.no_grad():
            P, Q = self.net.nodes[node].layer.scores(G, o[:, 0], self.net._input_shape_of(node))
        return P.numpy(), Q.numpy()

    def split_stage(self, cell: _Cell, s: int, P: np.ndarray, Q: np.ndarray) -> list[_Cell]:
        g = self.groups[s]
        cells = [cell]
        todo = range(g.size)
        two = P.shape[1] == 2 and bool(np.all(np.isfinite(Q)))
        if two and cell.V is not None and _kernels.screen is not None:
            status = _kernels.screen(P, Q, cell.V, _SAME, _EPS)
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
            on = np.where(flat, beta > 0, bottom >= _EPS)
            off = np.where(flat, beta <= 0, top <= -_EPS)
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
                    nxt.extend(self._split_two_v(c, col, 0, 1, P[u], Q[u]))
                elif two:
                    nxt.extend(self._split_two(c, col, 0, 1, P[u], Q[u]))
                else:
                    nxt.extend(self.split_unit(c, col, P[u], Q[u]))
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
        if top <= -_EPS:
            c.code[col] = r0
            return [c]
        if bottom >= _EPS:
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
                keep = c.wit[(sign * fw) >= -_EPS]
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
        if thin > _EPS:
            self.slivers.append(Sliver(col, alt, float(thin), np.asarray(xthin), c.code.copy()))
        elif thin > -_EPS:
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
            V, inc, k = _kernels.split_vertices(c.V, c.inc, fv, self.d, _EPS, len(c.h))
            hi_part = c.add_row(-n, t, label_pos, box=False)
            hi_part.V, hi_part.inc, hi_part.center = V[:k], inc[:k], None
            lo_part = c.add_row(n, -t, label_neg, box=False)
            lo_part.V, lo_part.inc, lo_part.center = V[k:], inc[k:], None
            return hi_part, lo_part
        pos, neg = fv > _EPS, fv < -_EPS
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
        if thin > _EPS:
            self.slivers.append(Sliver(col, alt, float(thin), c.V[ithin].copy(), c.code.copy()))
        elif thin > -_EPS:
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
                    if fv.min() < -_EPS:
                        thin = (float(-fv.min()), sub.V[int(fv.argmin())].copy())
                    ok = False
                    break
                if fv.max() > _EPS:
                    sub = self._split_both(sub, n, t, fv, (col, r), (col, s))[1]
                elif fv.max() > -_EPS:  # r's boundary with s runs along the cell: maybe one of its facets
                    touching.append((n, t, s))
            if not ok:
                if thin is not None:
                    self.slivers.append(Sliver(col, r, thin[0], thin[1], c.code.copy()))
                continue
            if sub is c:
                sub = _Cell(c.G, c.h, [list(x) for x in c.labels], c.code.copy(), c.center, c.radius, c.wit,
                            c.lo, c.hi, c.V, c.inc)
            else:  # the intersection of several cuts can be thin although each cut reaches past tol
                radius, center = chebyshev(sub.G, sub.h, self.stats)
                if radius <= self.tol:
                    if radius > _EPS:
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
            hit = np.nonzero((np.max(np.abs(c.G - sign * n), axis=1) <= 1e-10)
                             & (np.abs(c.h + sign * t) <= 1e-10 * (1 + abs(t))))[0]
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
                if radius > _EPS:
                    self.slivers.append(Sliver(col, r, float(radius), center, c.code.copy()))
                continue
            if sub is c:
                sub = _Cell(c.G, c.h, [list(x) for x in c.labels], c.code.copy(), None, 0.0, None, c.lo, c.hi)
            sub.code[col] = r
            sub.center, sub.radius = center, radius
            w = c.wit
            inside = np.all(w @ sub.G[len(c.h):].T <= sub.h[len(c.h):] + _EPS, axis=1) if len(sub.h) > len(c.h) \
                else np.ones(len(w), bool)
            sub.wit = np.vstack([center[None], w[inside]])[:_MAX_WITNESSES]
            out.append(sub)
        return out

    def expand(self, cells: list[_Cell], start: int, stop: int | None = None) -> list[_Cell]:
        """Split cells through stages ``start..stop-1`` (all remaining stages by default)."""
        stop = len(self.groups) if stop is None else stop
        for s in range(start, stop):
            if not cells:
                break
            P, Q = self.stage_scores(cells, s)
            nxt: list[_Cell] = []
            for i, c in enumerate(cells):
                nxt.extend(self.split_stage(c, s, P[i], Q[i]))
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
        code_dtype = np.uint8 if net._code_dtype == np.uint8 else np.int32
        regions = []
        for i, c in enumerate(cells):
            if self.method == "vertices":
                keep = self.facets_from_vertices(c)
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

            scale = max(float(s.min()), 1e-300)
            try:
                red = np.asarray(daqp.minrep(np.array(G, order="C"), np.array(s / scale))) == 1
                self.stats.daqp += 1
            except Exception:  # pragma: no cover - fall back to LPs for every row
                red = np.zeros(m, dtype=bool)
            active &= ~(red & ~sure)
        for i in range(m):
            if sure[i] or not active[i]:
                continue
            active[i] = False
            relaxed_h = h.copy()
            relaxed_h[i] += 1.0
            idx = np.nonzero(active)[0].tolist() + [i]
            v, _ = extreme(G[i], G[idx], relaxed_h[idx], self.stats)
            if v - h[i] > self.tol:
                active[i] = True
        return np.nonzero(active)[0].tolist()


# --------------------------------------------------------------------------------------- public driver
def _fingerprint(net: Network, domain: Polytope, tol: float, method: str) -> str:
    hsh = hashlib.sha256(method.encode())
    for node in net.nodes:
        hsh.update(node.name.encode())
        hsh.update(repr(node.shape).encode())
        if node.layer is not None:
            hsh.update(type(node.layer).__name__.encode())
            for k, v in sorted(node.layer.arrays().items()):
                hsh.update(k.encode())
                hsh.update(np.ascontiguousarray(v).tobytes())
    hsh.update(np.ascontiguousarray(domain.A).tobytes())
    hsh.update(np.ascontiguousarray(domain.b).tobytes())
    hsh.update(repr(tol).encode())
    return hsh.hexdigest()


def _run_task(payload: tuple[Network, Polytope, float, list[_Cell], int, str]
              ) -> tuple[list[Region], list[Sliver], LPStats]:
    net, domain, tol, cells, stage, method = payload
    eng = _Engine(net, domain, tol, method)
    cells = eng.expand(list(cells), stage)
    return eng.finalize(cells), eng.slivers, eng.stats


def _pack_regions(regions: list[Region]) -> dict[str, Any]:
    """Regions as a few concatenated arrays: pickling them costs a copy, not ~10 pickled arrays per region
    (12,836 regions: 1.3 s to pickle and unpickle as objects, which cancelled the speed-up of 2 workers)."""
    if not regions:
        return {"n": 0}
    fu = [f for r in regions for f in r.facet_units]
    return {
        "n": len(regions),
        "code": np.stack([r.code for r in regions]),
        "rows": np.array([len(r.polytope.b) for r in regions], dtype=np.int64),
        "A": np.concatenate([r.polytope.A for r in regions]),
        "b": np.concatenate([r.polytope.b for r in regions]),
        "units": np.concatenate([r.polytope.units for r in regions]),
        "fu_len": np.array([len(f) for f in fu], dtype=np.int64),
        "fu": np.array([u for f in fu for u in f], dtype=np.int64),
        "center": np.stack([r.interior_point for r in regions]),
        "radius": np.array([r.inradius for r in regions], dtype=np.float64),
        "map_A": np.stack([r.affine.A for r in regions]),
        "map_b": np.stack([r.affine.b for r in regions]),
    }


def _unpack_regions(pk: Any) -> list[Region]:
    """Inverse of :func:`_pack_regions`; regions hold read-only views of the packed arrays."""
    if isinstance(pk, list):  # a checkpoint written before regions were packed
        return pk
    n = pk["n"]
    if n == 0:
        return []
    for key in ("code", "A", "b", "units", "center", "map_A", "map_b"):
        pk[key].setflags(write=False)
    ends = np.cumsum(pk["rows"])
    starts = ends - pk["rows"]
    fu_flat = pk["fu"].tolist()
    fu_ends = np.cumsum(pk["fu_len"]).tolist()
    fu = [tuple(fu_flat[e - k:e]) for e, k in zip(fu_ends, pk["fu_len"].tolist())]
    A, b, units, code, center = pk["A"], pk["b"], pk["units"], pk["code"], pk["center"]
    map_A, map_b, radius = pk["map_A"], pk["map_b"], pk["radius"].tolist()
    out = []
    for i, (a, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        poly = Polytope._trusted(A[a:e], b[a:e], units[a:e])
        out.append(Region(code[i], poly, tuple(fu[a:e]), center[i], radius[i], Affine._trusted(map_A[i], map_b[i])))
    return out


def _run_task_packed(payload: tuple[Network, Polytope, float, list[_Cell], int, str]
                     ) -> tuple[dict[str, Any], list[Sliver], LPStats]:
    """:func:`_run_task` for another process: the regions come back packed."""
    regions, slivers, stats = _run_task(payload)
    return _pack_regions(regions), slivers, stats


def _pool_context() -> Any:
    """Worker processes that start fast and safely.

    Forking this process once torch's OpenMP thread pool runs can deadlock the children, so workers come from a
    fork server (a clean process that has imported maso but run no torch kernel); "spawn" where there is none.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["maso", "maso._warm"])  # workers fork with maso and its kernels loaded
        return ctx
    return multiprocessing.get_context("spawn")


def _worker_init() -> None:
    """Pool workers: one torch thread each (the pool supplies the parallelism)."""
    torch.set_num_threads(1)


def _chunks(cells: list[_Cell], n_tasks: int) -> list[list[_Cell]]:
    """Group cells into ``n_tasks`` contiguous tasks (deterministic: checkpoints rely on it)."""
    n_tasks = max(1, min(n_tasks, len(cells)))
    bounds = np.linspace(0, len(cells), n_tasks + 1).round().astype(int)
    return [cells[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class _Checkpoint:
    """Append-only record file: a header, then one length-prefixed pickle per finished task."""

    def __init__(self, path: str, fingerprint: str) -> None:
        self.path = path
        self.done: dict[int, tuple[list[Region], list[Sliver]]] = {}
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, "rb") as fh:
                head = _read_record(fh)
                if head is None or head.get("fingerprint") != fingerprint:
                    raise CheckpointError(
                        f"Checkpoint {path!r} belongs to another run (network, domain or tolerance differ). "
                        "Use a new path, or delete the file to start over."
                    )
                good = fh.tell()
                while True:
                    rec = _read_record(fh)
                    if rec is None:
                        break
                    self.done[rec["task"]] = (_unpack_regions(rec["regions"]), rec["slivers"])
                    good = fh.tell()
            with open(path, "r+b") as fh:  # drop a record cut short by a kill
                fh.truncate(good)
        else:
            with open(path, "wb") as fh:
                _write_record(fh, {"fingerprint": fingerprint})

    def save(self, task: int, regions: list[Region], slivers: list[Sliver]) -> None:
        with open(self.path, "ab") as fh:
            _write_record(fh, {"task": task, "regions": _pack_regions(regions), "slivers": slivers})


def _write_record(fh: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(struct.pack("<Q", len(data)) + data)
    fh.flush()
    os.fsync(fh.fileno())


def _read_record(fh: Any) -> Any:
    head = fh.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    data = fh.read(size)
    if len(data) < size:
        return None
    try:
        return pickle.loads(data)
    except Exception:
        return None


def _prepare(net: Network, domain: Any, tol: float, caller: str, method: str = "auto") -> tuple[_Engine, Polytope]:
    if not isinstance(net, Network):
        raise ShapeError(f"{caller} needs a maso.Network. Got {type(net).__name__}.")
    net._require_piecewise_linear(caller)
    if not (isinstance(tol, (int, float)) and _EPS <= tol < 1):
        raise ShapeError(f"The 'tol' parameter of {caller} must be a float in [{_EPS:g}, 1): distances below "
                         f"{_EPS:g} are numerical zero in float64. Got {tol!r}.")
    if method not in ("auto", "vertices", "lp"):
        raise ShapeError(f"The 'method' parameter of {caller} must be 'auto', 'vertices' or 'lp'. Got {method!r}.")
    dom = as_domain(domain, net.input_dim, caller=caller)
    if method == "auto":
        method = "vertices" if net.input_dim <= _VERTEX_MAX_DIM else "lp"
    return _Engine(net, dom, tol, method), dom


def _plan(eng: _Engine, min_tasks: int) -> tuple[list[_Cell], int]:
    """Split the domain through the first stages until there are enough independent tasks."""
    cells = [eng.root()]
    stage = 0
    while stage < len(eng.groups) and len(cells) < min_tasks:
        cells = eng.expand(cells, stage, stage + 1)
        stage += 1
    return cells, stage


def iter_regions(net: Network, domain: Any, *, tol: float = DEFAULT_TOL, method: str = "auto",
                 slivers: list | None = None) -> Iterator[Region]:
    """Stream the regions of ``net`` in ``domain``, one task at a time (memory: one task's cells).

    Parameters
    ----------
    net : Network
    domain : Box or Polytope
    tol : float, default=DEFAULT_TOL
    slivers : list, optional
        If given, slivers found are appended to it.

    Yields
    ------
    Region

    Examples
    --------
    >>> net = maso.mlp([2, 4, 1], seed=0)
    >>> sum(1 for _ in maso.iter_regions(net, maso.Box([-1, -1], [1, 1])))
    8
    """
    eng, dom = _prepare(net, domain, tol, "iter_regions", method)
    cells, stage = _plan(eng, 64)
    if slivers is not None:
        slivers.extend(eng.slivers)
    for chunk in _chunks(cells, 16):
        regions, sl, _ = _run_task((net, dom, tol, chunk, stage, eng.method))
        if slivers is not None:
            slivers.extend(sl)
        yield from regions


def enumerate_regions(
    net: Network,
    domain: Any,
    *,
    tol: float = DEFAULT_TOL,
    workers: int = 1,
    executor: Executor | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool | None = None,
    min_tasks: int = 64,
    method: str = "auto",
) -> RegionSet:
    """Every linear region of ``net`` that meets ``domain``, each exact and certified.

    Parameters
    ----------
    net : Network
        Any maso network (ReLU, leaky ReLU, abs, max-pool, maxout; residual and concatenation graphs). For
        image inputs the domain lives in the flattened input space.
    domain : Box or Polytope
        Bounded and full-dimensional.
    tol : float, default=1e-9
        Distance (in input units) below which a part of a cell is a sliver: reported in ``slivers``, not made a
        region. See the exactness policy in the module docs.
    workers : int, default=1
        Processes to run tasks in (a ``ProcessPoolExecutor``); ignored if ``executor`` is given.
    executor : concurrent.futures.Executor, optional
        Any executor (e.g. ``dask.distributed.Client.get_executor()`` or a Ray executor).
    checkpoint : path, optional
        Append each finished task to this file; a run restarted with the same path skips finished tasks.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    method : {"auto", "vertices", "lp"}, default="auto"
        How cells are cut. ``"vertices"`` carries each cell's vertices and their incidences (double description):
        cuts and facets are decided exactly from vertices, with one LP per region (its Chebyshev centre); fast in
        low dimension. ``"lp"`` decides every cut and facet by LPs; its cost grows gently with the dimension.
        ``"auto"``: vertices up to d = 6.
    min_tasks : int, default=64
        The domain is first split into at least this many independent cells (when the network allows), grouped
        into tasks: one task in a single process without a checkpoint, and ``max(4 * workers, min_tasks // 4)``
        otherwise (a task is the unit of work of a worker and of a checkpoint record).

    Returns
    -------
    RegionSet

    Raises
    ------
    DomainError
        Empty, unbounded or wrong-dimensional domain.
    CheckpointError
        The checkpoint file belongs to another run.
    SolverError
        Both LP solvers failed on a problem.

    Examples
    --------
    >>> net = maso.mlp([2, 8, 8, 1], seed=0)
    >>> regions = maso.enumerate_regions(net, maso.Box([-1, -1], [1, 1]))
    >>> len(regions), regions.verify().ok
    (33, True)
    """
    eng, dom = _prepare(net, domain, tol, "enumerate_regions", method)
    fp = _fingerprint(net, dom, tol, eng.method)
    ck = _Checkpoint(os.fspath(checkpoint), fp) if checkpoint is not None else None
    cells, stage = _plan(eng, min_tasks)
    # Tasks: few when one process works without a checkpoint (less overhead), more otherwise.
    n_par = workers if executor is None else max(workers, 4)
    n_tasks = 1 if (checkpoint is None and executor is None and workers <= 1) else max(4 * n_par, min_tasks // 4)
    cells = _chunks(cells, n_tasks)
    slivers_all = list(eng.slivers)
    stats = LPStats()
    stats.merge(eng.stats)
    results: dict[int, tuple[list[Region], list[Sliver]]] = dict(ck.done) if ck else {}
    todo = [i for i in range(len(cells)) if i not in results]
    show = progress if progress is not None else sys.stderr.isatty()
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="regions", unit="task")
    own = None
    if executor is None and workers > 1:
        own = executor = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                                             initializer=_worker_init)
    try:
        payloads = [(net, dom, tol, cells[i], stage, eng.method) for i in todo]  # a list: Dask refuses iterators
        it: Iterable[Any] = (executor.map(_run_task_packed, payloads) if executor is not None
                             else map(_run_task, payloads))
        n_regions = sum(len(r) for r, _ in results.values())
        for i, (regions, sl, st) in zip(todo, it):
            if executor is not None:
                regions = _unpack_regions(regions)
            results[i] = (regions, sl)
            stats.merge(st)
            if ck is not None:
                ck.save(i, regions, sl)
            n_regions += len(regions)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(regions=n_regions)
    except BrokenProcessPool as exc:
        kept = f"; the {len(results)} finished task(s) are kept in {checkpoint!s}" if ck is not None else ""
        who = f"enumerate_regions(workers={workers})" if own is not None else "the executor passed in"
        raise WorkerError(
            f"a worker process of {who} died before returning its task{kept}. Workers start by importing the "
            "main module, so a script must call enumerate_regions under 'if __name__ == \"__main__\":'; "
            "otherwise a worker may have run out of memory (try fewer workers)."
        ) from exc
    finally:
        if bar is not None:
            bar.close()
        if own is not None:
            own.shutdown()
    regions_all: list[Region] = []
    for i in range(len(cells)):
        regions, sl = results[i]
        regions_all.extend(regions)
        slivers_all.extend(sl)
    if slivers_all:
        warnings.warn(f"{len(slivers_all)} part(s) thinner than tol={tol:g} were not made regions; see "
                      "RegionSet.slivers.", NumericalWarning, stacklevel=2)
    info = {"method": eng.method, "lp_daqp": stats.daqp, "lp_highs": stats.highs, "lp_fallbacks": stats.fallbacks,
            "tasks": len(cells)}
    return RegionSet(net, dom, regions_all, slivers_all, tol, info)

