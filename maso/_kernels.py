"""Compiled kernels for the vertex method of region enumeration (optional: ``pip install "maso[fast]"``).

With numba installed, the two steps that run once per cell cut and once per region, and that cost dozens of
small NumPy calls each, run as compiled loops: :func:`split_vertices` (the vertices and incidences of both
parts of a cut cell) and :func:`facet_rows` (facets from incidences). They compute exactly what the NumPy
code in :mod:`maso.regions` computes, with the same floating-point operations in the same order, so results
are bit-identical (tested). Without numba, or with ``MASO_NO_KERNELS=1`` in the environment, the NumPy code
runs.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["AVAILABLE", "certified", "facet_rows", "screen", "split_vertices"]

AVAILABLE = False
split_vertices = None
facet_rows = None
certified = None
screen = None

if not os.environ.get("MASO_NO_KERNELS"):
    try:
        import numba
    except Exception:  # not installed (or broken against this NumPy): the NumPy code paths run
        numba = None
    if numba is not None:
        def _njit(fn):
            try:
                return numba.njit(cache=True, nogil=True)(fn)
            except RuntimeError:  # no writable cache location: compile once per process instead
                return numba.njit(nogil=True)(fn)

        @_njit
        def _popcount(x):
            n = 0
            while x:
                x &= x - np.uint64(1)
                n += 1
            return n

        @_njit
        def split_vertices(V, words, fv, d, eps, m):  # pragma: no cover - compiled
            """Both parts of a cell cut by ``f = 0`` (``fv``: f at the vertices); the new row has index ``m``.

            Returns ``(V, inc, n)``: the vertices and incidence words of ``f >= 0`` (rows ``:n``) and of
            ``f <= 0`` (rows ``n:``), in one pair of arrays (each array returned costs a boxing step). New vertices are on the edges that cross ``f = 0``: pairs (positive, negative) whose
            common tight rows number at least ``d - 1`` and are tight on no other vertex together.
            """
            k, W = words.shape
            dim = V.shape[1]
            word, bit = m // 64, m % 64
            W2 = W + 1 if word >= W else W
            flag = np.uint64(1) << np.uint64(bit)
            npos = 0
            nneg = 0
            for v in range(k):
                if fv[v] > eps:
                    npos += 1
                elif fv[v] < -eps:
                    nneg += 1
            ia = np.empty(npos, np.int64)
            ib = np.empty(nneg, np.int64)
            p = 0
            q = 0
            for v in range(k):
                if fv[v] > eps:
                    ia[p] = v
                    p += 1
                elif fv[v] < -eps:
                    ib[q] = v
                    q += 1
            newV = np.empty((npos * nneg, dim))
            newI = np.zeros((npos * nneg, W2), np.uint64)
            common = np.empty(W, np.uint64)
            n_new = 0
            for x in range(npos):
                a = ia[x]
                for y in range(nneg):
                    b = ib[y]
                    cnt = 0
                    for w in range(W):
                        common[w] = words[a, w] & words[b, w]
                        cnt += _popcount(common[w])
                    if cnt < d - 1:
                        continue
                    adjacent = True
                    for v in range(k):
                        if v == a or v == b:
                            continue
                        inside = True
                        for w in range(W):
                            if common[w] & ~words[v, w]:
                                inside = False
                                break
                        if inside:
                            adjacent = False
                            break
                    if not adjacent:
                        continue
                    lam = fv[a] / (fv[a] - fv[b])
                    for j in range(dim):
                        newV[n_new, j] = V[a, j] + lam * (V[b, j] - V[a, j])
                    for w in range(W):
                        newI[n_new, w] = common[w]
                    newI[n_new, word] |= flag
                    n_new += 1
            n_zero = k - npos - nneg
            n_first = npos + n_zero + n_new
            Vs = np.empty((n_first + nneg + n_zero + n_new, dim))
            Is = np.zeros((n_first + nneg + n_zero + n_new, W2), np.uint64)
            r = 0
            for side in range(2):
                for v in range(k):
                    f = fv[v]
                    zero = not (f > eps) and not (f < -eps)
                    if zero or (side == 0 and f > eps) or (side == 1 and f < -eps):
                        for j in range(dim):
                            Vs[r, j] = V[v, j]
                        for w in range(W):
                            Is[r, w] = words[v, w]
                        if zero:
                            Is[r, word] |= flag
                        r += 1
                for t in range(n_new):
                    for j in range(dim):
                        Vs[r, j] = newV[t, j]
                    for w in range(W2):
                        Is[r, w] = newI[t, w]
                    r += 1
            return Vs, Is, n_first

        @_njit
        def facet_rows(words, m, d):  # pragma: no cover - compiled
            """Facet rows from incidences, as ``_Engine.facets_from_vertices`` finds them: a row is a facet if at
            least ``d`` vertices are tight on it and no other row's tight set strictly contains its own; of rows
            with equal sets (coincident units) the first is kept and the others are listed with it."""
            k = words.shape[0]
            size = np.zeros(m, np.int64)
            sub = np.zeros((m, m), np.bool_)  # sub[i, j]: F_i within F_j (F_r: the vertices tight on row r)
            if k <= 64:  # each row's vertex set as one word
                bits = np.zeros(m, np.uint64)
                for v in range(k):
                    vb = np.uint64(1) << np.uint64(v)
                    for r in range(m):
                        if (words[v, r // 64] >> np.uint64(r % 64)) & np.uint64(1):
                            bits[r] |= vb
                            size[r] += 1
                for i in range(m):
                    for j in range(m):
                        sub[i, j] = (bits[i] & ~bits[j]) == np.uint64(0)
            else:
                F = np.zeros((m, k), np.bool_)
                for v in range(k):
                    for r in range(m):
                        if (words[v, r // 64] >> np.uint64(r % 64)) & np.uint64(1):
                            F[r, v] = True
                            size[r] += 1
                for i in range(m):
                    for j in range(m):
                        ok = True
                        for v in range(k):
                            if F[i, v] and not F[j, v]:
                                ok = False
                                break
                        sub[i, j] = ok
            facet = np.zeros(m, np.bool_)
            for i in range(m):
                if size[i] < d:
                    continue
                strict = False
                for j in range(m):
                    if sub[i, j] and not sub[j, i]:
                        strict = True
                        break
                facet[i] = not strict
            # one array out: [n_keep, keep rows..., then (row, first equal facet row) pairs of coincident facets]
            out = np.empty(1 + 3 * m, np.int64)
            n_keep = 0
            for i in range(m):
                if facet[i]:
                    f = i
                    for j in range(i):
                        if sub[i, j] and sub[j, i] and facet[j]:
                            f = j
                            break
                    if f == i:
                        out[1 + n_keep] = i
                        n_keep += 1
            out[0] = n_keep
            n_pairs = 0
            for i in range(m):
                if facet[i]:
                    for j in range(i):
                        if sub[i, j] and sub[j, i] and facet[j]:
                            out[1 + n_keep + 2 * n_pairs] = i
                            out[2 + n_keep + 2 * n_pairs] = j
                            n_pairs += 1
                            break
            return out[:1 + n_keep + 2 * n_pairs]

        @_njit
        def screen(P, Q, V, same, eps):  # pragma: no cover - compiled
            """Two-piece units of a stage against a cell's vertices: 1 on, 0 off, -1 cuts (or too close to say).

            ``P (U, 2, d)``, ``Q (U, 2)``: the pieces' slopes and offsets; the unit's gap ``a.x + beta`` is
            normalised to ``n.x + t`` and evaluated at the vertices, with the sums in NumPy's order.
            """
            U = P.shape[0]
            k, d = V.shape
            status = np.empty(U, np.int8)
            nrm = np.empty(d)
            for u in range(U):
                beta = Q[u, 1] - Q[u, 0]
                ss = 0.0
                for j in range(d):
                    a = P[u, 1, j] - P[u, 0, j]
                    nrm[j] = a
                    ss += a * a
                norm = np.sqrt(ss)
                if norm <= same:  # constant gap: decided by its sign
                    status[u] = 1 if beta > 0 else 0
                    continue
                for j in range(d):
                    nrm[j] = nrm[j] / norm
                t = beta / norm
                top = -np.inf
                bottom = np.inf
                for v in range(k):
                    f = 0.0
                    for j in range(d):
                        f += V[v, j] * nrm[j]
                    f = f + t
                    if f > top:
                        top = f
                    if f < bottom:
                        bottom = f
                status[u] = 1 if bottom >= eps else (0 if top <= -eps else -1)
            return status

        @_njit
        def certified(G, h, c, r, tol):  # pragma: no cover - compiled
            """``_lp._certified``: the ball (c, r) fits in ``G x <= h`` up to ``tol * (1 + max |h|)``."""
            if not np.isfinite(r):
                return False
            for j in range(c.shape[0]):
                if not np.isfinite(c[j]):
                    return False
            worst = -1.0
            hmax = 0.0
            for i in range(G.shape[0]):
                s = 0.0
                for j in range(G.shape[1]):
                    s += G[i, j] * c[j]
                v = s + r - h[i]
                if v > worst:
                    worst = v
                if abs(h[i]) > hmax:
                    hmax = abs(h[i])
            return worst <= tol * (1.0 + hmax)

        AVAILABLE = True


def warm() -> None:
    """Load (or compile) the kernels for the argument types enumeration uses, so that processes forked later
    (enumeration workers come from a fork server that calls this) inherit them ready."""
    if not AVAILABLE:
        return
    V = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    words = np.array([[5], [3], [6]], dtype=np.uint64)  # triangle: rows {0, 2}, {0, 1}, {1, 2}
    fv = V @ np.array([1.0, 0.0]) - 0.5
    split_vertices(V, words, fv, 2, 1e-12, 3)
    facet_rows(words, 3, 2)
    G = np.array([[-1.0, 0.0], [0.0, -1.0], [0.70710678, 0.70710678]])
    certified(G, np.array([0.0, 0.0, 0.7]), np.array([0.2, 0.2]), 0.1, 1e-9)
    screen(np.zeros((1, 2, 2)), np.array([[0.0, 1.0]]), V, 1e-12, 1e-12)

