"""Small exact-geometry helpers shared by the enumeration engine, the region set and its certificate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maso._lp import chebyshev, extreme
from maso.core.polytope import Polytope

if TYPE_CHECKING:
    from maso.regions._records import Region

#: A shared facet piece must hold a (d-1)-ball larger than this fraction of ``tol`` (adjacency).
_SHARE_TOL = 1.0
#: A row whose direction inside a hyperplane has norm below this (rows are unit-norm) is parallel to it.
_PARALLEL = 1e-12
#: Containment slack, in input units relative to ``1 + |coordinates|``, for points on a shared facet.
_ON_FACET = 1e-9
#: qhull vertices (of a polytope moved to its Chebyshev centre and scaled to inradius 1) are kept at this
#: resolution when duplicates are merged.
_VERTEX_DECIMALS = 10


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


def _box_of(P: Polytope) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box of ``P``: read off exactly when ``P`` is an axis-aligned box given by its ``2 d`` face
    rows ``+-e_i`` (the usual [`Box`][maso.Box] domain), else by LPs (`_bounding_box`)."""
    A, b = np.asarray(P.A), np.asarray(P.b)
    d = P.dim
    nz = A != 0
    if A.shape[0] == 2 * d and np.all(nz.sum(axis=1) == 1):
        rows = np.arange(2 * d)
        axis = nz.argmax(axis=1)
        val = A[rows, axis]
        up, down = val == 1.0, val == -1.0
        if np.all(up | down) and np.array_equal(np.sort(axis[up]), np.arange(d)) \
                and np.array_equal(np.sort(axis[down]), np.arange(d)):
            lo, hi = np.empty(d), np.empty(d)
            hi[axis[up]] = b[up]
            lo[axis[down]] = -b[down]
            if np.all(lo < hi):
                return lo, hi
    return _bounding_box(P)


def _row_norms(A: np.ndarray) -> np.ndarray:
    """Euclidean norms of the rows of ``A`` without overflow or underflow (rows of 1e200 have norm 1e200)."""
    A = np.asarray(A, dtype=np.float64)
    big = np.max(np.abs(A), axis=1, initial=0.0)
    safe = np.where(big > 0, big, 1.0)
    return big * np.sqrt(np.sum((A / safe[:, None]) ** 2, axis=1))


def _polytope_vertices(A: np.ndarray, b: np.ndarray, center: np.ndarray, radius: float, unique: bool = True
                       ) -> np.ndarray:
    """Vertices ``(k, d)`` of the bounded polytope ``{A x <= b}`` (unit rows, ``d >= 2``) with Chebyshev ball
    ``(center, radius)``, from qhull on the polytope moved to the origin and scaled to inradius 1 (qhull's
    tolerances are absolute: unscaled, a polytope 1e-11 wide defeats it). ``unique=False`` keeps qhull's
    repeats of degenerate vertices (unrounded, for volumes)."""
    from scipy.spatial import HalfspaceIntersection, QhullError

    A = np.asarray(A, dtype=np.float64)
    h = (np.asarray(b, dtype=np.float64) - A @ center) / radius
    H = np.hstack([A, -h[:, None]])
    try:
        hs = HalfspaceIntersection(H, np.zeros(A.shape[1]))
    except QhullError:  # nearly degenerate: joggled input (moves vertices by ~1e-11 of the inradius)
        hs = HalfspaceIntersection(H, np.zeros(A.shape[1]), qhull_options="QJ")
    W = np.unique(np.round(hs.intersections, _VERTEX_DECIMALS), axis=0) if unique else hs.intersections
    return center[None, :] + radius * W


def _share_facet(A: np.ndarray, b: np.ndarray, f: int, other: Polytope, tol: float) -> bool:
    """Whether facet ``f`` of ``{A x <= b}`` and the closure of ``other`` meet in a (d-1)-dimensional piece that
    holds a (d-1)-ball of radius above ``_SHARE_TOL * tol``."""
    n, c = A[f], b[f]
    d = A.shape[1]
    if d == 1:
        x = np.array([c / n[0]])
        slack = _ON_FACET * (1 + abs(float(x[0])))
        return bool(np.all(A @ x <= b + slack) and other.contains(x, atol=slack))
    # Parametrise the hyperplane n.x = c as x0 + B z.
    x0 = n * c
    basis = np.linalg.svd(n[None, :])[2][1:].T  # (d, d-1), orthonormal
    rows = []
    rhs = []
    for Gm, hm in ((np.delete(A, f, axis=0), np.delete(b, f)), (other.A, other.b)):
        Gz = Gm @ basis
        hz = hm - Gm @ x0
        norms = np.linalg.norm(Gz, axis=1)
        flat = norms <= _PARALLEL
        if np.any(hz[flat] < -_ON_FACET * (1 + abs(c))):
            return False
        rows.append(Gz[~flat] / norms[~flat, None])
        rhs.append(hz[~flat] / norms[~flat])
    r, _ = chebyshev(np.vstack(rows), np.concatenate(rhs))
    return r > _SHARE_TOL * tol
