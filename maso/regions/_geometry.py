"""Small exact-geometry helpers shared by the enumeration engine, the region set and its certificate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maso._lp import chebyshev, extreme
from maso.polytope import Polytope

if TYPE_CHECKING:
    from maso.regions._records import Region


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
