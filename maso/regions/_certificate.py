"""The certificate of an enumeration ([`RegionSet.verify`][maso.regions.RegionSet.verify]).

Every check recomputes what it checks from the network and the domain, not from the enumeration's cells:

``codes``
    The network's code at each region's interior point is the region's code; no two regions share a code.
``maps``
    ``|A y + b - net(y)| <= atol * S`` at each region's interior point, at ``d`` (at most 8) further points deep
    inside it, and at the random points of ``coverage`` (in the region their code names). ``S``, the network's
    output scale, is the largest ``sum_j |A_ij y_j| + |b_i|`` over those points and regions: the size of the
    terms an output is summed from, so the tolerance is relative (``s * f`` passes for any ``s > 0``).
``facets``
    Rows are unit-norm; each unit facet is the hyperplane of every unit it is labelled with, recomputed by a
    frozen pass of the network at the region's code (normals to ``_ROW_TOL``).
``domain_facets``
    Each row labelled as the domain's is a row of the domain.
``inradii``
    The Chebyshev radius recomputed by LP equals the stored inradius, which exceeds ``tol``; the ball around the
    interior point fits.
``adjacency``
    Completeness across facets: for each facet that is not the domain's, a region on its other side contains a
    point of its relative interior. A single missing region is always caught: the regions on the far side of
    the cut that made it have facets inside its own, with nothing else across.
``volumes`` (input dimension up to ``_VOLUME_MAX_DIM``, 4)
    Each region's vertices lie in the domain and in the polytope of its code (up to ``tol``: the sliver
    policy), and the volumes sum to the domain's, up to ``_VOLUME_RTOL`` and what the listed slivers can hold.
    With distinct codes, this proves that the regions tile the domain.
``coverage``
    Random points of the domain each lie in exactly one region (sampled: an extra check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.spatial import QhullError

from maso._lp import chebyshev
from maso._validation import check_float, check_int
from maso.core._program import frozen_pass
from maso.core.network import Network
from maso.errors import SolverError
from maso.regions._geometry import _box_of, _competing_piece, _polytope_vertices, _row_norms
from maso.regions._tolerances import _SAME

if TYPE_CHECKING:
    from maso.regions._records import Region, RegionSet

#: A unit facet's normal (and offset, relative to ``1 + |offset|``) must match the unit's hyperplane to this.
_ROW_TOL = 1e-7
#: A row labelled as the domain's must equal a domain row to this (normals; offsets relative to ``1 + |b|``).
_DOMAIN_ROW_TOL = 1e-9
#: Rows must have unit norm to this.
_UNIT_NORM_TOL = 1e-9
#: The stored inradius must equal the recomputed Chebyshev radius to this relative precision.
_RADIUS_RTOL = 1e-6
#: Distances below this times the domain's largest coordinate magnitude are numerical zero for computed
#: vertices and radii (their rounding is about 1e-15 of it).
_DIST_ZERO = 1e-10
#: Points count as inside a region up to ``min(atol * M, tol * _POINT_SLACK)`` (``M``: the domain's largest
#: coordinate magnitude): below ``tol``, so that no region thinner than the slack could hide behind it.
_POINT_SLACK = 0.25
#: Vertices are checked and volumes summed up to this input dimension: above it qhull's hulls cost 3 ms (5-D) to
#: 13 ms (6-D) per region, and fail on some degenerate regions.
_VOLUME_MAX_DIM = 4
#: The region volumes must sum to the domain's to this relative precision, besides what the listed slivers can
#: hold (sums of exact region volumes agree to about 1e-15 up to 4-D).
_VOLUME_RTOL = 1e-10
#: Vertices of a region (scaled to inradius 1) are tight on a row when within this of it.
_TIGHT = 1e-7
#: The map is checked at this many points deep inside each region (besides its interior point): the axis
#: directions, enough to pin an affine map when ``d`` is at most this.
_MAP_POINTS = 8
#: A facet's point is the interior point projected onto it when that lands this far (times the inradius)
#: inside the facet; else the facet's own Chebyshev centre (an LP).
_PROJECTION_DEPTH = 1e-3
#: Regions whose rows are recomputed from the network at once (bounded by memory: rows of all units).
_CHUNK_BYTES = 64 << 20
#: ... and at most this many (the containment test holds vertices x rows per region).
_CHUNK_REGIONS = 1024


@dataclass(frozen=True)
class VerificationReport:
    """What [`RegionSet.verify`][maso.regions.RegionSet.verify] checked, and what failed.

    Attributes
    ----------
    n_regions : int
    code_mismatches : int
        Regions whose interior point has another code than the region's.
    max_map_error : float
        Largest ``|A y + b - net(y)|`` at the points checked (interior points, points deep inside each region,
        random points of the domain).
    facet_errors : int
        Facets whose row is not unit-norm, or not the hyperplane of a unit it is labelled with.
    n_points, uncovered, multiply_covered : int
        Random points of the domain, those in no region and those in more than one (sampled coverage).
    ok : bool
        Every check that ran passed (``checks_failed`` is empty).
    duplicate_codes : int
        Regions whose code another region has too.
    domain_facet_errors : int
        Rows labelled as the domain's that are not rows of the domain.
    inradius_errors : int
        Regions whose inradius is not their recomputed Chebyshev radius, is not above ``tol``, or whose ball
        around the interior point does not fit.
    unmatched_facets : int
        Facets (not the domain's) with no region across them: a region is missing.
    containment_errors : int
        Regions with a vertex outside the domain, or more than ``tol`` outside the polytope of their code
        (input dimension up to 4; qhull failures count here).
    volume_error : float
        ``|sum of region volumes - domain volume| / domain volume`` (NaN where not computed: above 4-D).
    map_tolerance : float
        The map check's bound: ``atol`` times the network's output scale (the largest ``sum_j |A_ij y_j| + |b_i|``
        over the points checked).
    checks_run, checks_failed : tuple of str
        Names of the checks that ran and of those that failed: ``codes``, ``inradii``, ``facets``,
        ``domain_facets``, ``volumes`` (up to 4-D), ``adjacency``, ``maps``, ``coverage`` (``regions`` for an
        empty set).
    """

    n_regions: int
    code_mismatches: int
    max_map_error: float
    facet_errors: int
    n_points: int
    uncovered: int
    multiply_covered: int
    ok: bool
    duplicate_codes: int = 0
    domain_facet_errors: int = 0
    inradius_errors: int = 0
    unmatched_facets: int = 0
    containment_errors: int = 0
    volume_error: float = float("nan")
    map_tolerance: float = float("nan")
    checks_run: tuple[str, ...] = ()
    checks_failed: tuple[str, ...] = ()

    def __str__(self) -> str:
        failed = f" (failed: {', '.join(self.checks_failed)})" if self.checks_failed else ""
        volume = "not computed" if self.volume_error != self.volume_error else f"{self.volume_error:.1e}"
        return (f"{'OK' if self.ok else 'FAILED'}{failed}: {self.n_regions} regions; code mismatches "
                f"{self.code_mismatches}, duplicate codes {self.duplicate_codes}; max map error "
                f"{self.max_map_error:.2e} (bound {self.map_tolerance:.2e}); facet errors {self.facet_errors}, "
                f"domain facet errors {self.domain_facet_errors}, inradius errors {self.inradius_errors}; "
                f"unmatched facets {self.unmatched_facets}; containment errors {self.containment_errors}; "
                f"volume error {volume}; coverage: {self.n_points} random points, {self.uncovered} in no region, "
                f"{self.multiply_covered} in several")


def verify(rs: RegionSet, *, n_points: int = 1000, atol: float = 1e-8, rng: Any = None) -> VerificationReport:
    """See [`RegionSet.verify`][maso.regions.RegionSet.verify]."""
    net = rs.network
    # the sample is drawn four times over in the bounding box and rejected outside the domain
    n_points = check_int(n_points, "n_points", "RegionSet.verify", minimum=0, maximum=10**7)
    atol = check_float(atol, "atol", "RegionSet.verify", minimum=0.0, strict=True)
    rng = np.random.default_rng(rng)
    regions = list(rs)
    n = len(regions)
    run: list[str] = []
    failed: list[str] = []
    if n == 0:
        return VerificationReport(0, 0, 0.0, 0, 0, n_points, 0, False, checks_run=("regions",),
                                  checks_failed=("regions",))
    d = net.input_dim
    dom = rs.domain
    tol = float(rs.tol)
    shape = net.input_shape
    lo, hi = _box_of(dom)
    coord = float(max(np.abs(lo).max(), np.abs(hi).max()))  # > 0: the domain is full-dimensional
    zero = _DIST_ZERO * coord  # numerical zero of computed vertices and radii
    slack = min(atol * coord, tol * _POINT_SLACK)  # containment slack of points

    # codes ----------------------------------------------------------------------------------------------
    codes = np.stack([r.code for r in regions])
    centers = np.stack([np.asarray(r.interior_point, dtype=np.float64) for r in regions])
    got = net.codes(centers.reshape(n, *shape))
    mism = int(np.sum(np.any(got != codes, axis=1)))
    dup = n - len({c.tobytes() for c in codes})
    _record(run, failed, "codes", mism == 0 and dup == 0)

    # inradii, vertices, volumes -------------------------------------------------------------------------
    low = d <= _VOLUME_MAX_DIM
    rad_err = 0
    balls: list[tuple[np.ndarray, float] | None] = []
    for r in regions:
        A, b = np.asarray(r.polytope.A), np.asarray(r.polytope.b)
        try:
            rr, cc = chebyshev(A, b)
        except SolverError:
            rr, cc = -1.0, centers[0]
        ok = (rr > tol and abs(r.inradius - rr) <= _RADIUS_RTOL * rr + zero
              and float(np.min(b - A @ r.interior_point, initial=np.inf)) >= r.inradius * (1 - _RADIUS_RTOL) - zero)
        rad_err += not ok
        balls.append((cc, rr) if rr > 0 else None)
    _record(run, failed, "inradii", rad_err == 0)
    verts: list[np.ndarray | None] = [None] * n
    vol_err = float("nan")
    contain_err = 0
    if low:
        vols = np.zeros(n)
        for i, (r, ball) in enumerate(zip(regions, balls)):
            if ball is None:
                contain_err += 1
                continue
            try:
                vx = _vertices(r.polytope.A, r.polytope.b, *ball)
                verts[i] = vx
                vols[i] = _volume(vx)
            except (QhullError, ValueError):  # qhull refused the region: it cannot be certified
                contain_err += 1
        dom_vol, dom_area = _domain_measure(dom)
        allowance = sum(math.sqrt(d + 1) * max(float(s.thickness), 0.0) for s in rs.slivers) * dom_area
        vol_err = abs(float(vols.sum()) - dom_vol) / dom_vol
        vol_ok = abs(float(vols.sum()) - dom_vol) <= _VOLUME_RTOL * dom_vol + allowance
        DA, Db = np.asarray(dom.A), np.asarray(dom.b)
        for V in verts:  # inside the domain
            if V is not None and np.any(V @ DA.T - Db > zero):
                contain_err += 1

    # facets: domain rows, unit rows (recomputed from the network), containment in the code's polytope --------
    facet_err = 0
    dom_err = 0
    DA, Db = np.asarray(dom.A), np.asarray(dom.b)
    for r in regions:
        A, b, units = np.asarray(r.polytope.A), np.asarray(r.polytope.b), r.polytope.units
        if units is None or len(r.facet_units) != len(b):
            facet_err += len(b)
            continue
        facet_err += int(np.sum(np.abs(_row_norms(A) - 1.0) > _UNIT_NORM_TOL))
        facet_err += sum(1 for f, fu in enumerate(r.facet_units) if not fu or fu[0] != units[f, 0])
        for f in np.flatnonzero(units[:, 0] < 0):
            diff = np.maximum(np.abs(DA - A[f]).max(axis=1), np.abs(Db - b[f]) / (1 + np.abs(Db)))
            dom_err += not bool(diff.min(initial=np.inf) <= _DOMAIN_ROW_TOL)
    bad_rows, bad_contain = _check_unit_rows(net, regions, verts, tol + zero)
    facet_err += bad_rows
    contain_err += bad_contain
    _record(run, failed, "facets", facet_err == 0)
    _record(run, failed, "domain_facets", dom_err == 0)
    if low:
        _record(run, failed, "volumes", vol_ok and contain_err == 0)

    # adjacency: a region across every facet that is not the domain's --------------------------------------
    unmatched = _match_facets(rs, regions, verts, balls, slack)
    _record(run, failed, "adjacency", unmatched == 0)

    # maps -----------------------------------------------------------------------------------------------
    pts, owner = _deep_points(regions, balls, tol, rng)
    # coverage: random points of the domain's bounding box, kept if inside the domain
    cov = rng.uniform(lo, hi, size=(4 * n_points, d)) if n_points > 0 else np.zeros((0, d))
    cov = cov[dom.contains(cov)][:n_points] if len(cov) else cov
    counts = np.zeros(len(cov), dtype=np.int64)
    for r in regions:
        counts += r.polytope.contains(cov, atol=slack)
    if len(cov):
        pcodes = net.codes(cov.reshape(len(cov), *shape))
        index = {c.tobytes(): i for i, c in enumerate(codes)}
        where = np.array([index.get(np.asarray(c, dtype=codes.dtype).tobytes(), -1) for c in pcodes])
        counts[where < 0] = 0  # a code that names no region: uncovered
        pts = np.concatenate([pts, cov[where >= 0]])
        owner = np.concatenate([owner, where[where >= 0]])
    err, out_scale = _map_errors(net, regions, pts, owner)
    map_tol = atol * out_scale
    _record(run, failed, "maps", err <= map_tol)
    unc = int(np.sum(counts == 0))
    multi = int(np.sum(counts > 1))
    _record(run, failed, "coverage", unc == 0 and multi == 0)
    return VerificationReport(
        n, mism, err, facet_err, len(cov), unc, multi, not failed, duplicate_codes=dup,
        domain_facet_errors=dom_err, inradius_errors=rad_err, unmatched_facets=unmatched,
        containment_errors=contain_err, volume_error=vol_err, map_tolerance=map_tol, checks_run=tuple(run),
        checks_failed=tuple(failed),
    )


def _record(run: list[str], failed: list[str], name: str, ok: bool) -> None:
    run.append(name)
    if not ok:
        failed.append(name)


# ---------------------------------------------------------------------------------------------- geometry
def _vertices(A: np.ndarray, b: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if A.shape[1] == 1:
        a = A[:, 0]
        return np.array([[float(np.max(b[a < 0] / a[a < 0]))], [float(np.min(b[a > 0] / a[a > 0]))]])
    return _polytope_vertices(A, b, center, radius, unique=False)


def _volume(V: np.ndarray) -> float:
    if V.shape[1] == 1:
        return float(V.max() - V.min())
    from scipy.spatial import ConvexHull, QhullError

    c = V.mean(axis=0)
    s = float(np.abs(V - c).max())  # qhull's tolerances are absolute: hull a copy scaled to size 1
    try:
        hull = ConvexHull((V - c) / s)
    except QhullError:  # nearly degenerate: joggled input (moves points by ~1e-11, volumes by as little)
        hull = ConvexHull((V - c) / s, qhull_options="QJ")
    return float(hull.volume) * s ** V.shape[1]


def _domain_measure(dom: Any) -> tuple[float, float]:
    """Volume and surface area of the domain (the area bounds what a slab of unit width can hold)."""
    A, b = np.asarray(dom.A), np.asarray(dom.b)
    d = A.shape[1]
    r, c = chebyshev(A, b)
    V = _vertices(A, b, c, r)
    if d == 1:
        return float(V.max() - V.min()), 2.0
    from scipy.spatial import ConvexHull

    ctr = V.mean(axis=0)
    s = float(np.abs(V - ctr).max())
    hull = ConvexHull((V - ctr) / s)
    return float(hull.volume) * s ** d, float(hull.area) * s ** (d - 1)


# ------------------------------------------------------------------------------------ rows from the net
def _stage_scores(net: Network, codes: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Piece scores of the units of spline stage ``s`` as affine functions of the input, ``(n, U, R, d)`` and
    ``(n, U, R)``, for the regions with these codes: a frozen pass of the network."""
    groups = net.units
    n, d = codes.shape[0], net.input_dim
    icodes = {}
    for g in groups[:s]:
        layer = net.program.spline_layer(g.node)
        pub = torch.from_numpy(codes[:, g.columns].astype(np.int64)).reshape(n, *g.shape)
        icodes[g.node] = layer.internal_code(pub, net.program.input_shape_of(g.node))
    node = groups[s].node
    shape = net.input_shape
    with torch.no_grad():
        eye = torch.eye(d, dtype=torch.float64).reshape(1, d, *shape).expand(n, d, *shape)
        zero = torch.zeros((n, 1, *shape), dtype=torch.float64)
        G, _ = frozen_pass(net.program, eye, icodes, bias=False, until=node)
        o, _ = frozen_pass(net.program, zero, icodes, bias=True, until=node, zero_input=True)
        P, Q = net.program.spline_layer(node).scores(G, o[:, 0], net.program.input_shape_of(node))
    return P.numpy(), Q.numpy()


def _check_unit_rows(net: Network, regions: list[Region], verts: list[np.ndarray | None], slack: float
                     ) -> tuple[int, int]:
    """Facet rows that are not their units' hyperplanes, and regions whose vertices leave the polytope of their
    code by more than ``slack`` (where vertices are known)."""
    groups = net.units
    n = len(regions)
    d = net.input_dim
    if not groups:
        return sum(int(np.sum(r.polytope.units[:, 0] >= 0)) for r in regions if r.polytope.units is not None), 0
    col_group = np.zeros(net.n_units, dtype=np.int64)
    for gi, g in enumerate(groups):
        col_group[g.columns] = gi
    per_region = max(g.size * g.n_pieces for g in groups) * (d + 1) * 8
    chunk = int(max(1, min(_CHUNK_REGIONS, _CHUNK_BYTES // max(per_region, 1))))
    codes = np.stack([r.code for r in regions]).astype(np.int64)
    # every unit facet, flattened: region, row, first unit and its competing piece; coincident units apart
    fr = np.concatenate([np.full(len(r.polytope.b), i) for i, r in enumerate(regions)])
    FA = np.concatenate([np.asarray(r.polytope.A) for r in regions])
    Fb = np.concatenate([np.asarray(r.polytope.b) for r in regions])
    FU = np.concatenate([np.asarray(r.polytope.units) for r in regions])
    single = np.concatenate([[len(fu) == 1 for fu in r.facet_units] for r in regions]).astype(bool)
    u0, p0 = FU[:, 0], FU[:, 1]
    unit = (u0 >= 0) & (u0 < net.n_units)
    stage = np.full(len(u0), -1, dtype=np.int64)
    stage[unit] = col_group[u0[unit]]  # (a zero-width network has no columns to look up)
    multi = []
    bad_rows = int(np.sum(u0 >= net.n_units))  # rows labelled with a unit the network does not have
    for i, r in enumerate(regions):
        for f, fu in enumerate(r.facet_units):
            if len(fu) > 1 and any(u >= 0 for u in fu):
                if all(u < net.n_units for u in fu):
                    multi.append((i, f))
                else:
                    bad_rows += 1
    outside = np.zeros(n, dtype=bool)
    for a in range(0, n, chunk):
        C = codes[a:a + chunk]
        in_chunk = (fr >= a) & (fr < a + chunk)
        for s, g in enumerate(groups):
            P, Q = _stage_scores(net, C, s)
            k_, U, R = Q.shape
            scale = np.abs(P).reshape(k_, -1).max(axis=1, initial=0.0)
            q = C[:, g.offset:g.offset + U]  # (k, U) chosen pieces
            Pq = np.take_along_axis(P, q[:, :, None, None], axis=2)  # (k, U, 1, d)
            Qq = np.take_along_axis(Q, q[:, :, None], axis=2)
            with np.errstate(invalid="ignore"):
                rows = (P - Pq).reshape(k_, U * R, d)  # piece r beats the chosen one where rows.x > rhs
                rhs = -(Q - Qq).reshape(k_, U * R)
            nrm = _row_norms(rows.reshape(-1, d)).reshape(k_, U * R)
            live = np.isfinite(rhs) & (nrm > _SAME * scale[:, None])
            safe = np.where(live, nrm, 1.0)
            with np.errstate(invalid="ignore"):
                rows = np.where(live[:, :, None], rows / safe[:, :, None], 0.0)
                rhs = np.where(live, rhs / safe, 0.0)
            # facets of one unit: vectorised
            sel = np.flatnonzero(in_chunk & single & (stage == s))
            k = fr[sel] - a
            ok = (p0[sel] >= 0) & (p0[sel] < R) & (p0[sel] != codes[fr[sel], u0[sel]])
            j = np.where(ok, (u0[sel] - g.offset) * R + np.clip(p0[sel], 0, R - 1), 0)
            ok &= live[k, j]
            ok &= np.max(np.abs(rows[k, j] - FA[sel]), axis=1, initial=0.0) <= _ROW_TOL
            ok &= np.abs(rhs[k, j] - Fb[sel]) <= _ROW_TOL * (1 + np.abs(rhs[k, j]))
            bad_rows += int(np.sum(~ok))
            # facets of coincident units: each unit of this stage must give the facet's hyperplane
            for i, f in multi:
                if not a <= i < a + chunk:
                    continue
                r = regions[i]
                A_f, b_f = np.asarray(r.polytope.A[f]), float(r.polytope.b[f])
                for u in r.facet_units[f]:
                    if u < 0 or col_group[u] != s:
                        continue
                    piece = _competing_piece(r, f, u, g.n_pieces)
                    pieces = [piece] if piece is not None else [p for p in range(R) if p != r.code[u]]
                    hit = any(p != r.code[u] and 0 <= p < R and live[i - a, (u - g.offset) * R + p]
                              and np.max(np.abs(rows[i - a, (u - g.offset) * R + p] - A_f)) <= _ROW_TOL
                              and abs(rhs[i - a, (u - g.offset) * R + p] - b_f)
                              <= _ROW_TOL * (1 + abs(rhs[i - a, (u - g.offset) * R + p])) for p in pieces)
                    bad_rows += not hit
            # every vertex inside the polytope of the region's code (up to the sliver slack)
            known = [(i, vx) for i in range(a, min(n, a + chunk)) if (vx := verts[i]) is not None]
            have = [i for i, _ in known]
            if have:
                kv = max(len(vx) for _, vx in known)
                Vp = np.stack([np.concatenate([vx, np.repeat(vx[:1], kv - len(vx), axis=0)])
                               for _, vx in known])
                ks = np.asarray(have) - a
                viol = np.einsum("kvd,krd->kvr", Vp, rows[ks]) - rhs[ks][:, None, :]
                outside[np.asarray(have)] |= np.any(viol > slack, axis=(1, 2))
    return bad_rows, int(outside.sum())


# ---------------------------------------------------------------------------------------------- adjacency
def _facet_points(r: Region, V: np.ndarray | None, ball: tuple[np.ndarray, float] | None
                  ) -> list[tuple[int, np.ndarray]]:
    """A point of the relative interior of each unit facet of ``r``: the mean of its vertices (when known), else
    the interior point projected onto the facet if that stays inside, else the facet's own Chebyshev centre."""
    A, b, units = np.asarray(r.polytope.A), np.asarray(r.polytope.b), r.polytope.units
    assert units is not None  # the caller skips regions without unit labels
    d = A.shape[1]
    c, rad = ball if ball is not None else (np.asarray(r.interior_point), max(r.inradius, 0.0))
    facets = np.flatnonzero(units[:, 0] >= 0)
    pts = np.full((len(facets), d), np.nan)
    if V is not None and rad > 0:
        T = np.abs(V @ A[facets].T - b[facets]) <= _TIGHT * rad  # (k, facets): vertices on each facet
        cnt = T.sum(axis=0)
        full = cnt >= d
        pts[full] = (T[:, full].T @ V) / cnt[full, None]
    for k in np.flatnonzero(np.isnan(pts[:, 0])):
        f = facets[k]
        p = c + (b[f] - A[f] @ c) * A[f]
        other = np.delete(np.arange(len(b)), f)
        if len(other) and np.min(b[other] - A[other] @ p) <= _PROJECTION_DEPTH * rad:
            p = _facet_center(A, b, f)
        if p is not None:
            pts[k] = p
    return [(int(f), pts[k]) for k, f in enumerate(facets) if not np.isnan(pts[k, 0])]


def _facet_center(A: np.ndarray, b: np.ndarray, f: int) -> np.ndarray | None:
    """The Chebyshev centre of facet ``f`` of ``{A x <= b}`` inside its hyperplane (None if it has none)."""
    n, c = A[f], b[f]
    d = A.shape[1]
    if d == 1:
        return np.array([c / n[0]])
    x0 = n * c
    basis = np.linalg.svd(n[None, :])[2][1:].T
    G = np.delete(A, f, axis=0) @ basis
    h = np.delete(b, f) - np.delete(A, f, axis=0) @ x0
    nrm = np.linalg.norm(G, axis=1)
    keep = nrm > _SAME
    if np.any(h[~keep] < 0):
        return None
    try:
        rr, z = chebyshev(G[keep] / nrm[keep, None], h[keep] / nrm[keep])
    except SolverError:
        return None
    return x0 + basis @ z if rr >= 0 else None


def _match_facets(rs: RegionSet, regions: list[Region], verts: list[np.ndarray | None],
                  balls: list[tuple[np.ndarray, float] | None], slack: float) -> int:
    """Unit facets with no region across (holding a relative-interior point of the facet, up to ``slack``).

    The region across a facet's point ``p`` is looked up by the network's code just across (``p`` moved by
    ``tol / 2`` along the facet's normal); where that does not name a region holding ``p``, every region whose
    code can lie across (`_Prefix`) is tried.
    """
    net = rs.network
    shape = net.input_shape
    items: list[tuple[int, int, np.ndarray]] = []  # (region, facet, point on the facet)
    for i, r in enumerate(regions):
        if r.polytope.units is None:
            continue
        items.extend((i, f, p) for f, p in _facet_points(r, verts[i], balls[i]))
    n_unit = sum(int(np.sum(r.polytope.units[:, 0] >= 0)) for r in regions if r.polytope.units is not None)
    unmatched = n_unit - len(items)  # facets without a relative-interior point
    if not items:
        return unmatched
    src = np.array([i for i, _, _ in items])
    Pts = np.stack([p for _, _, p in items])
    N = np.stack([regions[i].polytope.A[f] for i, f, _ in items])
    off = np.array([regions[i].polytope.b[f] for i, f, _ in items])
    step = float(rs.tol) / 2
    pcodes = net.codes((Pts + step * N).reshape(len(Pts), *shape))
    codes = np.stack([r.code for r in regions])
    index = {c.tobytes(): i for i, c in enumerate(codes)}
    found = np.array([index.get(np.asarray(c, dtype=codes.dtype).tobytes(), -1) for c in pcodes])
    centers = np.stack([np.asarray(r.interior_point) for r in regions])
    # the regions found hold p (all their rows at once, as one flat array) and lie across
    m = np.array([len(r.polytope.b) for r in regions])
    start = np.concatenate([[0], np.cumsum(m)[:-1]])
    RA = np.concatenate([np.asarray(r.polytope.A) for r in regions])
    Rb = np.concatenate([np.asarray(r.polytope.b) for r in regions])
    j = np.maximum(found, 0)
    rows = np.repeat(start[j], m[j]) + (np.arange(m[j].sum()) - np.repeat(np.cumsum(m[j]) - m[j], m[j]))
    s_ = Rb[rows] - np.einsum("kd,kd->k", RA[rows], np.repeat(Pts, m[j], axis=0))
    holds = np.minimum.reduceat(s_, np.cumsum(m[j]) - m[j]) >= -slack
    ok = (found >= 0) & (found != src) & holds & (np.einsum("kd,kd->k", centers[j], N) > off)
    DA, Db = np.asarray(rs.domain.A), np.asarray(rs.domain.b)
    ok |= np.max(Pts @ DA.T - Db, axis=1) >= -slack  # along the domain's boundary: nothing lies across
    prefix = None
    for t in np.flatnonzero(~ok):
        i, f, p = items[t]
        if prefix is None:
            prefix = _Prefix(rs, codes)
        if not any(jj != i and _holds(regions[jj], p, slack) and centers[jj] @ N[t] > off[t]
                   for jj in prefix.candidates(regions[i], f)):
            unmatched += 1
    return unmatched


def _holds(r: Region, p: np.ndarray, slack: float) -> bool:
    return bool(np.all(np.asarray(r.polytope.b) - np.asarray(r.polytope.A) @ p >= -slack))


class _Prefix:
    """Regions by code prefix: those that can lie across a facet (the codes of layers up to the facet's agree,
    its units flipped), as [`RegionSet.graph`][maso.regions.RegionSet.graph] finds them."""

    def __init__(self, rs: RegionSet, codes: np.ndarray) -> None:
        self.groups = rs.network.units
        self.codes = codes
        self.ends = [g.offset + g.size for g in self.groups]
        self.col_group = np.zeros(rs.network.n_units, dtype=np.int64)
        for gi, g in enumerate(self.groups):
            self.col_group[g.columns] = gi
        self.by_prefix: list[dict[bytes, list[int]]] = [{} for _ in self.groups]
        for i, c in enumerate(codes):
            for gi, end in enumerate(self.ends):
                self.by_prefix[gi].setdefault(c[:end].tobytes(), []).append(i)

    def candidates(self, r: Region, f: int) -> list[int]:
        units = [u for u in r.facet_units[f] if u >= 0]
        if not units:
            return []
        gi = int(self.col_group[units].max())
        target = np.asarray(r.code[: self.ends[gi]]).copy()
        unknown = []
        for u in units:
            piece = _competing_piece(r, f, u, self.groups[int(self.col_group[u])].n_pieces)
            if piece is None:
                unknown.append(u)
            else:
                target[u] = piece
        if not unknown:
            return self.by_prefix[gi].get(target.tobytes(), [])
        known = np.ones(self.ends[gi], dtype=bool)
        known[unknown] = False
        hits = np.all(self.codes[:, : self.ends[gi]][:, known] == target[known], axis=1)
        return np.flatnonzero(hits).tolist()


# ---------------------------------------------------------------------------------------------- maps
def _deep_points(regions: list[Region], balls: list[tuple[np.ndarray, float] | None], tol: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each region's interior point, and points deeper than ``tol`` inside it along the axes (``d <= 8``) or along
    two random directions: where a region's code and map must hold (parts within ``tol`` of its boundary may
    be slivers of another code)."""
    pts, owner = [], []
    d = len(regions[0].interior_point)
    dirs = np.eye(d) if d <= _MAP_POINTS else None
    for i, (r, ball) in enumerate(zip(regions, balls)):
        pts.append(np.asarray(r.interior_point, dtype=np.float64)[None])
        owner.append(i)
        if ball is None or ball[1] <= tol:
            continue
        c, rad = ball
        step = (rad - tol) / 2
        if dirs is None:
            u = rng.normal(size=(2, d))
            D = u / np.linalg.norm(u, axis=1, keepdims=True)
        else:
            D = dirs
        pts.append(c[None, :] + step * D)
        owner.extend([i] * len(D))
    return np.concatenate(pts), np.asarray(owner, dtype=np.int64)


def _map_errors(net: Network, regions: list[Region], pts: np.ndarray, owner: np.ndarray) -> tuple[float, float]:
    """Largest ``|A y + b - net(y)|`` over the points (each in the region ``owner`` names), and the output scale:
    the largest ``sum_j |A_ij y_j| + |b_i|``."""
    if len(pts) == 0:
        return 0.0, 0.0
    shape = net.input_shape
    out = np.asarray(net(pts.reshape(len(pts), *shape))).reshape(len(pts), -1)
    A = np.stack([np.asarray(r.affine.A) for r in regions])[owner]  # (k, o, d)
    b = np.stack([np.asarray(r.affine.b) for r in regions])[owner]
    with np.errstate(over="ignore", invalid="ignore"):
        pred = np.einsum("kod,kd->ko", A, pts) + b
        scale = np.einsum("kod,kd->ko", np.abs(A), np.abs(pts)) + np.abs(b)
        err = np.abs(pred - out)
    if not (np.all(np.isfinite(err)) and np.all(np.isfinite(scale))):
        return float("inf"), float(np.nanmax(np.where(np.isfinite(scale), scale, np.nan), initial=0.0))
    return float(err.max(initial=0.0)), float(scale.max(initial=0.0))
