"""Small linear programs over polytopes ``{x : G x <= h}``: DAQP in the hot path, HiGHS to fall back on.

Every function takes rows that the caller has normalised to unit norm, so that slacks are distances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from maso import kernels as _kernels
from maso.errors import SolverError

__all__ = ["LPStats", "chebyshev", "extreme"]

#: Bounds at or beyond this are infinite (DAQP's convention for absent bounds).
_BIG = 1e30
#: Cap on the Chebyshev radius so that the LP stays bounded for any polytope (domains are bounded anyway).
_R_CAP = 1e6
#: DAQP's primal feasibility tolerance: its default (1e-6) gave 0.2% radius errors at r = 2e-5.
_PRIMAL_TOL = 1e-12
#: A DAQP solution is accepted when it violates no row by more than this times ``1 + max |h|`` (else HiGHS).
_FEASIBILITY = 1e-9
#: LPs whose right-hand sides reach below ``2^-_SCALE_WINDOW`` or above ``2^_SCALE_WINDOW`` are solved rescaled
#: by a power of two (exact), so that the solvers' absolute tolerances act relative to the polytope's size.
_SCALE_WINDOW = 8


@dataclass
class LPStats:
    """Counters of one enumeration: LPs solved per backend, fallbacks, and cross-check disagreements."""

    daqp: int = 0
    highs: int = 0
    fallbacks: int = 0

    def merge(self, other: LPStats) -> None:
        self.daqp += other.daqp
        self.highs += other.highs
        self.fallbacks += other.fallbacks


def _daqp_lp(f: np.ndarray, A: np.ndarray, bu: np.ndarray, bl: np.ndarray) -> tuple[int, np.ndarray, float]:
    import daqp

    # DAQP's Cython layer needs writable, C-contiguous float64 buffers.
    A = A if A.flags.writeable and A.flags.c_contiguous else np.array(A, dtype=np.float64, order="C")
    x, fval, flag, _ = daqp.solve(None, f, A, bu, bl, primal_tol=_PRIMAL_TOL)
    return int(flag), np.asarray(x), float(fval)


def _highs_lp(f: np.ndarray, A: np.ndarray, bu: np.ndarray, bl: np.ndarray, lb: np.ndarray, ub: np.ndarray
              ) -> tuple[str, np.ndarray, float]:
    """min f.x s.t. bl <= A x <= bu, lb <= x <= ub, with HiGHS (no presolve: the LPs are tiny)."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    n = A.shape[1]
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = A.shape[0]
    lp.col_cost_ = f.astype(np.float64)
    lp.col_lower_ = np.where(lb <= -_BIG, -inf, lb)
    lp.col_upper_ = np.where(ub >= _BIG, inf, ub)
    lp.row_lower_ = np.where(bl <= -_BIG, -inf, bl)
    lp.row_upper_ = np.where(bu >= _BIG, inf, bu)
    csc = A.T  # column-wise storage of A
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(np.full(n, A.shape[0]))]).astype(np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(A.shape[0], dtype=np.int32), n)
    lp.a_matrix_.value_ = np.ascontiguousarray(csc).reshape(-1)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        sol = h.getSolution()
        x = np.array(sol.col_value)
        return "optimal", x, float(f @ x)
    if status == highspy.HighsModelStatus.kInfeasible:
        return "infeasible", np.zeros(n), np.inf
    if status in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return "unbounded", np.zeros(n), -np.inf
    return str(status), np.zeros(n), np.nan


def _exponent(h: np.ndarray) -> int:
    """The power of two ``e`` by which ``h`` is divided: ``max |h| / 2^e`` in ``[0.5, 1)``, or 0 when ``max |h|``
    is already within ``2^+-_SCALE_WINDOW`` (or zero, or not finite).

    The LPs are solved on ``{x : G x <= h / 2^e}`` and their results scaled back, exactly: the solvers'
    tolerances are absolute, so without this a polytope 1e-11 wide near the origin got radii 4e-5 off.
    """
    if not len(h):
        return 0
    top = max(-float(h.min()), float(h.max()))
    if not 0.0 < top < math.inf:
        return 0
    e = math.frexp(top)[1]
    return e if abs(e) > _SCALE_WINDOW else 0


def chebyshev(G: np.ndarray, h: np.ndarray, stats: LPStats | None = None) -> tuple[float, np.ndarray]:
    """Largest ball ``{c + r u : |u| <= 1}`` in ``{x : G x <= h}`` (unit rows), with ``r`` free.

    Returns ``(r, c)``; ``r < 0`` means the polytope is empty, ``r == 0`` that it is flat. Scale-equivariant:
    the LP is solved with ``h`` divided by a power of two near its largest entry.
    """
    e = _exponent(h)
    if e:
        r, c = _chebyshev(G, np.ldexp(h, -e), stats)
        return float(np.ldexp(r, e)), np.ldexp(c, e)
    return _chebyshev(G, h, stats)


def _chebyshev(G: np.ndarray, h: np.ndarray, stats: LPStats | None) -> tuple[float, np.ndarray]:
    m, d = G.shape
    A = np.empty((m, d + 1))
    A[:, :d] = G
    A[:, d] = 1.0
    f = np.zeros(d + 1)
    f[-1] = -1.0
    bu = np.empty(d + 1 + m)
    bu[:d] = _BIG
    bu[d] = _R_CAP
    bu[d + 1:] = h
    bl = np.full(d + 1 + m, -_BIG)
    bl[d] = -_R_CAP
    flag, x, _ = _daqp_lp(f, A, bu, bl)
    if stats is not None:
        stats.daqp += 1
    if flag == 1 and _certified(G, h, x[:d], x[-1]):
        return float(x[-1]), x[:d]
    # DAQP failed or returned an inaccurate point: solve again with HiGHS.
    lb = np.concatenate([np.full(d, -_BIG), [-_R_CAP]])
    ub = np.concatenate([np.full(d, _BIG), [_R_CAP]])
    status, x, _ = _highs_lp(f, A, h, np.full(m, -_BIG), lb, ub)
    if stats is not None:
        stats.highs += 1
        stats.fallbacks += 1
    if status != "optimal":
        raise SolverError(f"Chebyshev LP failed in both DAQP (exit flag {flag}) and HiGHS ({status}).")
    return float(x[-1]), x[:d]


def _certified(G: np.ndarray, h: np.ndarray, c: np.ndarray, r: float, tol: float = _FEASIBILITY) -> bool:
    """Primal check of a Chebyshev solution: the ball fits (up to ``tol``)."""
    if _kernels.certified is not None and G.flags.c_contiguous:
        return bool(_kernels.certified(G, h, c, float(r), tol))
    if not (np.isfinite(r) and np.isfinite(c).all()):
        return False
    return bool((G @ c + r - h).max(initial=-1.0) <= tol * (1.0 + np.abs(h).max(initial=0.0)))


def _free_bounds(m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(d + m, -_BIG), np.full(d, _BIG)


def extreme(n: np.ndarray, G: np.ndarray, h: np.ndarray, stats: LPStats | None = None) -> tuple[float, np.ndarray]:
    """``max n.x`` over the bounded polytope ``{x : G x <= h}``. Returns ``(value, argmax)``. Scale-equivariant,
    as `chebyshev`."""
    e = _exponent(h)
    if e:
        v, x = _extreme(n, G, np.ldexp(h, -e), stats)
        return float(np.ldexp(v, e)), np.ldexp(x, e)
    return _extreme(n, G, h, stats)


def _extreme(n: np.ndarray, G: np.ndarray, h: np.ndarray, stats: LPStats | None) -> tuple[float, np.ndarray]:
    m, d = G.shape
    bl, big = _free_bounds(m, d)
    flag, x, _ = _daqp_lp(-n, G, np.concatenate([big, h]), bl)
    if stats is not None:
        stats.daqp += 1
    if flag == 1 and (G @ x - h).max(initial=-1.0) <= _FEASIBILITY * (1.0 + np.abs(h).max(initial=0.0)):
        return float(n @ x), x
    status, x, _ = _highs_lp(-n, G, h, np.full(m, -_BIG), np.full(d, -_BIG), np.full(d, _BIG))
    if stats is not None:
        stats.highs += 1
        stats.fallbacks += 1
    if status != "optimal":
        raise SolverError(f"LP max n.x failed in both DAQP (exit flag {flag}) and HiGHS ({status}); the polytope "
                          "may be empty or unbounded.")
    return float(n @ x), x
