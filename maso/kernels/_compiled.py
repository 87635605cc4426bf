"""The compiled kernels themselves (numba); imported on first use through `maso.kernels`."""

from __future__ import annotations

import numba
import numpy as np


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
    ``f <= 0`` (rows ``n:``), in one pair of arrays (each array returned costs a boxing step). New vertices
    are on the edges that cross ``f = 0``: pairs (positive, negative) whose common tight rows number at least
    ``d - 1`` and are tight on no other vertex together.
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
    """Facet rows from incidences, as ``VertexEngine.facets_from_vertices`` finds them: a row is a facet if at
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
            top = max(top, f)
            bottom = min(bottom, f)
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
        worst = max(worst, v)
        hmax = max(hmax, abs(h[i]))
    return worst <= tol * (1.0 + hmax)


@_njit
def mesh_split(P, Z, src, tt, gen, E, EF, parent, codes, nV, nE, nF, d):  # pragma: no cover - compiled
    """``Mesh.split`` in place on arrays with room for the result (see ``Mesh._reserve``); the vertex rows of
    ``P`` and ``Z`` are interpolated onto new vertices, whose provenance (``src``: the edge's two ends, ``tt``:
    the interpolation weight, ``gen``: one more than the larger of the ends') is recorded for carried values.

    Returns ``(n_new_vertices, n_cut_faces)``; before changing anything, ``(-2, -2)`` when the arrays
    have no room for the result, and ``(-1, -1)`` when a cut face does not meet ``d = 0`` in exactly two
    points (the caller re-runs the NumPy split, which raises).
    """
    return _split_with(P, Z, src, tt, gen, E, EF, parent, codes, nV, nE, nF, d, *_split_scratch(nV, nE, nF))


@_njit
def _split_scratch(n_vertices, n_edges, n_faces):  # pragma: no cover - compiled
    """Work arrays of `_split_with` for meshes of up to these sizes: per vertex its sign; per face a flag
    (kept 0), its new face (kept -1) and its two points on the cut; lists of edges and faces."""
    return (np.empty(n_vertices, np.int8), np.zeros(n_faces, np.int8), np.full(n_faces, -1, np.int64),
            np.empty(n_faces, np.int64), np.empty(n_faces, np.int64), np.empty(n_edges, np.int64),
            np.empty(n_faces, np.int64), np.empty(n_edges, np.int64))


@_njit
def _split_with(P, Z, src, tt, gen, E, EF, parent, codes, nV, nE, nF, d, s, flag, new_f, z0, z1, touched, cut,
                negative):  # pragma: no cover - compiled
    """`mesh_split` with its work arrays given (`_split_scratch`; ``flag`` and ``new_f`` are left as found):
    one pass over every edge lists the edges with two different signs and those with a negative end; the
    other passes visit only those (a layer's cuts no longer allocate and scan the whole mesh four times)."""
    for v in range(nV):
        if d[v] > 0:
            s[v] = 1
        elif d[v] < 0:
            s[v] = -1
        else:
            s[v] = 0
    n_touched = 0
    n_negative = 0
    n_new = 0
    for e in range(nE):
        c0 = s[E[e, 0]]
        c1 = s[E[e, 1]]
        if c0 < 0 or c1 < 0:
            negative[n_negative] = e
            n_negative += 1
        if c0 == c1:
            continue
        touched[n_touched] = e
        n_touched += 1
        if c0 * c1 < 0:
            n_new += 1
        for j in range(2):
            f = EF[e, j]
            if f >= 0:
                if c0 > 0 or c1 > 0:
                    flag[f] |= 1
                if c0 < 0 or c1 < 0:
                    flag[f] |= 2
    # the cut faces (both signs), numbered in face order as a scan of every face would number them
    k = 0
    for i in range(n_touched):
        e = touched[i]
        for j in range(2):
            f = EF[e, j]
            if f >= 0 and flag[f] == 3:
                flag[f] = 4  # listed
                cut[k] = f
                k += 1
    for i in range(n_touched):  # the flags back to 0 (only faces of touched edges were flagged)
        e = touched[i]
        for j in range(2):
            f = EF[e, j]
            if f >= 0:
                flag[f] = 0
    if k == 0:
        return 0, 0
    cut[:k].sort()
    if (P.shape[0] < nV + n_new or Z.shape[0] < nV + n_new or src.shape[0] < nV + n_new or E.shape[0] < nE + n_new + k
            or EF.shape[0] < nE + n_new + k or parent.shape[0] < nF + k or codes.shape[0] < nF + k):
        return -2, -2  # no room: the caller grows the arrays and calls again
    for i in range(k):
        new_f[cut[i]] = nF + i
        z0[cut[i]] = -1
        z1[cut[i]] = -1
    # the two points of every cut face on d = 0: zero vertices, and the new vertices on crossing edges
    # (numbered nV, nV + 1, ... in edge order), found before anything changes
    new_id = nV
    for i in range(n_touched):
        e = touched[i]
        crossing = s[E[e, 0]] * s[E[e, 1]] < 0
        for j in range(2):
            f = EF[e, j]
            if f < 0 or new_f[f] < 0:
                continue
            for q in range(3):
                if q < 2:
                    v = E[e, q]
                    if s[v] != 0:
                        continue
                elif crossing:
                    v = new_id
                else:
                    continue
                if z0[f] == v or z1[f] == v:
                    continue
                if z0[f] < 0:
                    z0[f] = v
                elif z1[f] < 0:
                    z1[f] = v
                else:
                    _unmark(new_f, cut, k)
                    return -1, -1
        if crossing:
            new_id += 1
    for i in range(k):
        if z1[cut[i]] < 0:
            _unmark(new_f, cut, k)
            return -1, -1
    # new vertices; each crossing edge (a, b) becomes (a, new) and (new, b), both with the old faces
    i = 0
    for m in range(n_touched):
        e = touched[m]
        a = E[e, 0]
        b = E[e, 1]
        if s[a] * s[b] >= 0:
            continue
        t = d[a] / (d[a] - d[b])
        w = nV + i
        for q in range(P.shape[1]):
            P[w, q] = P[a, q] + t * (P[b, q] - P[a, q])
        for q in range(Z.shape[1]):
            Z[w, q] = Z[a, q] + t * (Z[b, q] - Z[a, q])
        src[w, 0] = a
        src[w, 1] = b
        tt[w] = t
        gen[w] = 1 + max(gen[a], gen[b])
        E[e, 1] = w
        E[nE + i, 0] = w
        E[nE + i, 1] = b
        EF[nE + i, 0] = EF[e, 0]
        EF[nE + i, 1] = EF[e, 1]
        i += 1
    nE2 = nE + n_new
    # edges of cut faces on the negative side move to the new face (new vertices have sign 0): only edges with
    # a negative end before the split, or the new halves of crossing edges, can be there
    for m in range(n_negative + n_new):
        e = negative[m] if m < n_negative else nE + m - n_negative
        a = E[e, 0]
        b = E[e, 1]
        neg = (a < nV and s[a] < 0) or (b < nV and s[b] < 0)
        if not neg:
            continue
        for j in range(2):
            f = EF[e, j]
            if f >= 0 and new_f[f] >= 0:
                EF[e, j] = new_f[f]
    for i in range(k):
        f = cut[i]
        g = new_f[f]
        r = nE2 + g - nF
        E[r, 0] = min(z0[f], z1[f])
        E[r, 1] = max(z0[f], z1[f])
        EF[r, 0] = f
        EF[r, 1] = g
        parent[g] = parent[f]
        for q in range(codes.shape[1]):
            codes[g, q] = codes[f, q]
    _unmark(new_f, cut, k)
    return n_new, k


@_njit
def _unmark(new_f, cut, k):  # pragma: no cover - compiled
    for i in range(k):
        new_f[cut[i]] = -1


@_njit
def _snap_into(x, d, n, tol):  # pragma: no cover - compiled
    """``Mesh.snap`` of ``x[:n]`` into ``d[:n]``: values within ``tol`` times the largest finite ``|x|`` become
    exactly 0. Returns whether ``d`` has both signs (a cut) and how many nonzero values were snapped."""
    # x read once (a column of a wide row-major Z: a cache line per value), then d
    scale = 0.0
    for v in range(n):
        y = x[v]
        d[v] = y
        if np.isfinite(y) and abs(y) > scale:
            scale = abs(y)
    lim = tol * scale
    pos = False
    neg = False
    n_small = 0
    for v in range(n):
        y = d[v]
        if abs(y) <= lim:
            if y != 0:
                n_small += 1
            y = 0.0
        d[v] = y
        if y > 0:
            pos = True
        elif y < 0:
            neg = True
    return pos and neg, n_small


@_njit
def mesh_cut_columns(P, Z, src, tt, gen, E, EF, parent, codes, nV, nE, nF, c0, c1, tol, max_faces):  # pragma: no cover
    """Snap and split by the columns ``c0, c1 - 1`` of ``Z`` in turn (the two-piece loop of a layer).

    Returns ``(status, column, nV, nE, nF, snapped, faces_cut)`` with status 0 (done), 1 (arrays full:
    grow them and resume at ``column``), 2 (the cut by ``column`` is degenerate: nothing of it was
    done) or 3 (more than ``max_faces`` faces after ``column``).
    """
    snapped = 0
    cut_total = 0
    d = np.empty(Z.shape[0])
    work = _split_scratch(P.shape[0], E.shape[0], parent.shape[0])  # (the arrays cannot grow in this call)
    # Z's columns in blocks of 8 (a cache line of a row), copied out contiguous: reading one column of the wide
    # row-major Z costs a cache line per vertex, so each row's line is read once per block, not once per column
    B = 8
    T = np.empty((B, Z.shape[0]))
    for b0 in range(c0, c1, B):
        nb = min(B, c1 - b0)
        for v in range(nV):
            for j in range(nb):
                T[j, v] = Z[v, b0 + j]
        for j in range(nb):
            c = b0 + j
            cuts, n_small = _snap_into(T[j], d, nV, tol)
            if not cuts:
                snapped += n_small
                continue
            n_new, k = _split_with(P, Z, src, tt, gen, E, EF, parent, codes, nV, nE, nF, d[:nV], *work)
            if k == -2:
                return 1, c, nV, nE, nF, snapped, cut_total
            if k < 0:
                return 2, c, nV, nE, nF, snapped, cut_total
            for v in range(nV, nV + n_new):  # the new vertices' values of the block's later columns
                for q in range(j + 1, nb):
                    T[q, v] = Z[v, b0 + q]
            snapped += n_small
            nV += n_new
            nE += n_new + k
            nF += k
            cut_total += k
            if nF > max_faces:
                return 3, c, nV, nE, nF, snapped, cut_total
    return 0, c1, nV, nE, nF, snapped, cut_total


@_njit
def mesh_cut_pieces(P, Z, src, tt, gen, E, EF, parent, codes, nV, nE, nF, R, valid, u0, i0, tol,
                    max_faces):  # pragma: no cover - compiled
    """``Mesh.cut_pieces`` from unit ``u0``, piece ``i0``: for each unit (columns ``u * R`` to ``u * R + R - 1``
    of ``Z``, its pieces those where ``valid[u]``), cut where each piece overtakes the best of the pieces before
    it, snapping as ``Mesh.snap`` does, in the NumPy loop's order and arithmetic.

    Returns ``(status, unit, piece, nV, nE, nF, snapped, faces_cut)`` with status 0 (done), 1 (arrays full: grow
    them and resume at ``unit, piece``), 2 (the cut at ``unit, piece`` is degenerate: nothing of it was done) or
    3 (more than ``max_faces`` faces after the cut before ``unit, piece``).
    """
    snapped = 0
    cut_total = 0
    U = valid.shape[0]
    d = np.empty(Z.shape[0])
    # the unit's scores, copied out of Z's wide rows once per unit (and for new vertices after a cut): each pass
    # then reads a compact block instead of one cache line per vertex of Z
    Zu = np.empty((Z.shape[0], R))
    pieces = np.empty(R, dtype=np.int64)
    signs = np.zeros(R, dtype=np.int8)
    work = _split_scratch(P.shape[0], E.shape[0], parent.shape[0])  # (the arrays cannot grow in this call)
    for u in range(u0, U):
        n = 0
        for r in range(R):
            if valid[u, r]:
                pieces[n] = r
                n += 1
        if n < 2:
            continue
        for v in range(nV):
            for r in range(R):
                Zu[v, r] = Z[v, u * R + r]
        first = i0 if u == u0 else 1
        # which pieces take both signs against the best before them, in one pass over the vertices (most
        # pieces of most units take one sign: they need no pass of their own); new vertices add their signs
        signs[:n] = 0
        _piece_signs(Zu, pieces, n, first, 0, nV, signs)
        for i in range(first, n):
            if signs[i] != 3:
                continue  # one sign: snapping (which only zeroes values) cannot make it cut
            for v in range(nV):
                b = Zu[v, pieces[0]]
                for j in range(1, i):
                    x = Zu[v, pieces[j]]
                    if x > b or np.isnan(x):  # NaN propagates, as in np.max
                        b = x
                d[v] = Zu[v, pieces[i]] - b
            cuts, n_small = _snap_into(d, d, nV, tol)
            if not cuts:
                snapped += n_small
                continue
            n_new, k = _split_with(P, Z, src, tt, gen, E, EF, parent, codes, nV, nE, nF, d[:nV], *work)
            if k == -2:
                return 1, u, i, nV, nE, nF, snapped, cut_total
            if k < 0:
                return 2, u, i, nV, nE, nF, snapped, cut_total
            for v in range(nV, nV + n_new):  # the new vertices' scores, as the split interpolated them
                for r in range(R):
                    Zu[v, r] = Z[v, u * R + r]
            _piece_signs(Zu, pieces, n, i + 1, nV, nV + n_new, signs)
            snapped += n_small
            nV += n_new
            nE += n_new + k
            nF += k
            cut_total += k
            if nF > max_faces:
                return 3, u, i + 1, nV, nE, nF, snapped, cut_total
    return 0, U, 0, nV, nE, nF, snapped, cut_total


@_njit
def _piece_signs(Zu, pieces, n, first, v0, v1, signs):  # pragma: no cover - compiled
    """OR into ``signs[i]`` (1: positive, 2: negative) the signs at vertices ``v0`` to ``v1 - 1`` of piece ``i``'s
    score less the best of the pieces before it, for ``i >= first``: the differences `mesh_cut_pieces` cuts by,
    in its arithmetic (the running best in the same order, NaN propagating)."""
    for v in range(v0, v1):
        b = Zu[v, pieces[0]]
        for i in range(1, n):
            x = Zu[v, pieces[i]]
            if i >= first:
                y = x - b
                if y > 0:
                    signs[i] |= 1
                elif y < 0:
                    signs[i] |= 2
            if x > b or np.isnan(x):
                b = x


@_njit
def face_winners(E, EF, nF, X, R, valid, lim):  # pragma: no cover - compiled
    """``Mesh.piece_codes``: per face and unit (columns ``u * R`` to ``u * R + R - 1`` of ``X``), the lowest
    valid piece whose face mean is within ``lim`` of the best valid one. The means are `face_means`' (the same
    additions in the same order), formed one face at a time in a buffer instead of a (faces, columns) array;
    invalid pieces count as ``-inf`` and NaN propagates, as in the NumPy code."""
    # each face's vertex rows in the order face_means adds them: by edge side j, edge end k, edge
    start = np.zeros(nF + 1, dtype=np.int64)
    for j in range(2):
        for k in range(2):
            for e in range(E.shape[0]):
                f = EF[e, j]
                if f >= 0:
                    start[f + 1] += 1
    for f in range(nF):
        start[f + 1] += start[f]
    fill = start[:nF].copy()
    rows = np.empty(start[nF], dtype=np.int64)
    for j in range(2):
        for k in range(2):
            for e in range(E.shape[0]):
                f = EF[e, j]
                if f >= 0:
                    rows[fill[f]] = E[e, k]
                    fill[f] += 1
    U = valid.shape[0]
    out = np.zeros((nF, U), dtype=np.int64)
    buf = np.empty(X.shape[1])
    mean = np.empty(R)
    for f in range(nF):
        buf[:] = 0.0
        for p in range(start[f], start[f + 1]):
            v = rows[p]
            for q in range(X.shape[1]):
                buf[q] += X[v, q]
        count = float(start[f + 1] - start[f])  # (face_means' sum of ones: exact)
        for u in range(U):
            top = -np.inf
            for r in range(R):
                mean[r] = buf[u * R + r] / count if valid[u, r] else -np.inf
                if mean[r] > top or np.isnan(mean[r]):
                    top = mean[r]
            bar = top - lim
            for r in range(R):
                if mean[r] >= bar:
                    out[f, u] = r
                    break
    return out


@_njit
def face_means(E, EF, nF, X):  # pragma: no cover - compiled
    """``Mesh.face_means``: vertex rows ``X`` averaged over each face, summed in edge order."""
    out = np.zeros((nF, X.shape[1]))
    count = np.zeros(nF)
    for j in range(2):
        for k in range(2):
            for e in range(E.shape[0]):
                f = EF[e, j]
                if f < 0:
                    continue
                v = E[e, k]
                for q in range(X.shape[1]):
                    out[f, q] += X[v, q]
                count[f] += 1.0
    for f in range(nF):
        for q in range(X.shape[1]):
            out[f, q] = out[f, q] / count[f]
    return out


@_njit
def polygons(P, E, EF, F):  # pragma: no cover - compiled
    """``slices._polygons`` by walking each face's boundary (no sorting): counter-clockwise cycles from
    the smallest kept vertex index, collinear vertices dropped; returns offsets, vertices, areas, means.
    """
    nE = E.shape[0]
    ptr = np.zeros(F + 1, dtype=np.int64)
    for e in range(nE):
        for j in range(2):
            if EF[e, j] >= 0:
                ptr[EF[e, j] + 1] += 1
    for f in range(F):
        ptr[f + 1] += ptr[f]
    fill = ptr[:-1].copy()
    fe = np.empty(ptr[F], dtype=np.int64)
    for e in range(nE):
        for j in range(2):
            f = EF[e, j]
            if f >= 0:
                fe[fill[f]] = e
                fill[f] += 1
    out_v = np.empty(ptr[F], dtype=np.int64)
    offsets = np.zeros(F + 1, dtype=np.int64)
    areas = np.zeros(F)
    inner = np.zeros((F, 2))
    n_out = 0
    for f in range(F):
        a0, m = ptr[f], ptr[f + 1] - ptr[f]
        cyc = np.empty(m, dtype=np.int64)
        used = np.zeros(m, dtype=np.bool_)
        cyc[0] = E[fe[a0], 0]
        cyc[1] = E[fe[a0], 1]
        used[0] = True
        for i in range(2, m):  # the face's other edge at the current vertex
            cur = cyc[i - 1]
            for q in range(1, m):
                if used[q]:
                    continue
                e = fe[a0 + q]
                if E[e, 0] == cur:
                    cyc[i] = E[e, 1]
                    used[q] = True
                    break
                if E[e, 1] == cur:
                    cyc[i] = E[e, 0]
                    used[q] = True
                    break
        # (shoelace sums relative to one of the face's vertices: products of absolute coordinates would cancel
        # to nothing in a small window far from the origin)
        twice = 0.0
        x0, y0 = P[cyc[0], 0], P[cyc[0], 1]
        for i in range(m):
            u, w = cyc[i], cyc[(i + 1) % m]
            twice += (P[u, 0] - x0) * (P[w, 1] - y0) - (P[w, 0] - x0) * (P[u, 1] - y0)
        if twice < 0:  # walked clockwise
            cyc = cyc[::-1].copy()
        keep = np.zeros(m, dtype=np.bool_)
        n_keep = 0
        for i in range(m):
            v, pv, nv = cyc[i], cyc[(i - 1) % m], cyc[(i + 1) % m]
            ax, ay = P[v, 0] - P[pv, 0], P[v, 1] - P[pv, 1]
            bx, by = P[nv, 0] - P[v, 0], P[nv, 1] - P[v, 1]
            cross = ax * by - ay * bx
            keep[i] = abs(cross) > 1e-12 * np.sqrt(ax * ax + ay * ay) * np.sqrt(bx * bx + by * by)
            if keep[i]:
                n_keep += 1
        if n_keep < 3:  # never reduce a (numerically flat) face below a triangle
            keep[:] = True
            n_keep = m
        first, best = -1, -1
        for i in range(m):
            if keep[i] and (best < 0 or cyc[i] < best):
                first, best = i, cyc[i]
        start = n_out
        for r in range(m):
            i = (first + r) % m
            if keep[i]:
                out_v[n_out] = cyc[i]
                n_out += 1
        k = n_out - start
        twice = 0.0
        sx = 0.0
        sy = 0.0
        x0, y0 = P[out_v[start], 0], P[out_v[start], 1]
        for r in range(k):
            u, w = out_v[start + r], out_v[start + (r + 1) % k]
            twice += (P[u, 0] - x0) * (P[w, 1] - y0) - (P[w, 0] - x0) * (P[u, 1] - y0)
            sx += P[u, 0]
            sy += P[u, 1]
        areas[f] = 0.5 * twice
        inner[f, 0] = sx / k
        inner[f, 1] = sy / k
        offsets[f + 1] = n_out
    return offsets, out_v[:n_out].copy(), areas, inner
