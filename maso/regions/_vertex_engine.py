"""The vertex engine (``method="vertices"``): each cell carries its vertices and their row incidences (double
description); cuts and facets are decided exactly from vertices, with one LP per region (its Chebyshev centre).
Fast in low input dimension."""

from __future__ import annotations

import math

import numpy as np

from maso import kernels as _kernels
from maso._lp import chebyshev
from maso.regions._engine import Engine, _Cell, _pack, _rivals, _unpack, _VertexCell
from maso.regions._tolerances import _RADIUS_SLACK, _SAME


class VertexEngine(Engine[_VertexCell]):
    """Cells are `_VertexCell`: polytopes with their vertices and, for each vertex, the rows it is tight on. A
    unit's values at the vertices decide whether it cuts a cell (exactly); a cut's new vertices lie on the edges
    it crosses (the combinatorial adjacency test); a finished cell's facets are read off the incidences, and its
    Chebyshev ball is one LP (the only one per region, unless rounding lost a facet: then `irredundant`)."""

    method = "vertices"

    def _root_cell(self, cell: _Cell, lo: np.ndarray, hi: np.ndarray) -> _VertexCell:
        V, inc = self._root_vertices(cell.G, cell.h, lo, hi, cell.eps)
        return _VertexCell(cell.G, cell.h, cell.labels, cell.code, cell.center, cell.radius, cell.wit, cell.lo,
                           cell.hi, cell.eps, V, inc)

    def _root_vertices(self, G: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray, eps: float
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Vertices of the domain ``G x <= h`` and their packed incidences: the bounding box ``[lo, hi]`` (its
        corners and incidences are exact) cut by each domain row with the engine's own exact vertex cut, then
        the box rows dropped. No tolerance of an outside vertex solver enters (a domain 1e-10 thick keeps its
        two sides apart)."""
        d = self.d
        bits = (np.arange(2 ** d)[:, None] >> np.arange(d)[None, :]) & 1  # corner k takes hi_i where bit i is set
        V = np.where(bits == 1, hi[None, :], lo[None, :])
        box = _VertexCell(np.vstack([-np.eye(d), np.eye(d)]), np.concatenate([-lo, hi]),
                          [[(-1, -1)] for _ in range(2 * d)], np.zeros(0, dtype=np.int16), None, 0.0, None, lo, hi,
                          eps, V, _pack(np.hstack([bits == 0, bits == 1])))
        for j in range(len(h)):
            fv = box.V @ G[j] - h[j]  # > 0: outside row j
            box = self._split_both(box, G[j], -h[j], fv, (-1, -1), (-1, -1))[1]
        inc = _unpack(box.inc, len(box.h))[:, 2 * d:]
        return box.V, _pack(inc)

    def _screen(self, cell: _VertexCell, offset: int, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
        if _kernels.screen is None:
            return super()._screen(cell, offset, P, Q)
        # compiled: the same decisions as the NumPy screen, without its temporaries
        status = _kernels.screen(P, Q, cell.V, _SAME, cell.eps)
        cols = offset + np.arange(len(P))
        cell.code[cols[status == 1]] = 1
        cell.code[cols[status == 0]] = 0
        return np.flatnonzero(status < 0)

    def _extents(self, cell: _VertexCell, nrm: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        F = (cell.V[:, None, :] * nrm[None, :, :]).sum(axis=2) + t  # exact extents: over the vertices
        return F.max(axis=0), F.min(axis=0)

    def _split_both(self, c: _VertexCell, n: np.ndarray, t: float, fv: np.ndarray, label_pos: tuple[int, int],
                    label_neg: tuple[int, int]) -> tuple[_VertexCell, _VertexCell]:
        """Both parts of ``c`` cut by ``f = n.x + t = 0``: ``f >= 0`` and ``f <= 0``, with their vertices.

        New vertices lie on the edges that cross ``f = 0``. Two vertices span an edge iff the rows tight on both
        are tight on no other vertex (the double-description adjacency test; exact for degenerate polytopes).
        Incidences are bit sets: ``c.inc`` holds one uint64 word per 64 rows.
        """
        if _kernels.split_vertices is not None:  # compiled: same arithmetic, no per-call NumPy overhead
            V, inc, k = _kernels.split_vertices(c.V, c.inc, fv, self.d, c.eps, len(c.h))
            return c.cut(-n, t, label_pos, V[:k], inc[:k]), c.cut(n, -t, label_neg, V[k:], inc[k:])
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
        # f >= 0 <=> -n.x <= t ; f <= 0 <=> n.x <= -t
        hi_keep, lo_keep = pos | zero, neg | zero
        return (c.cut(-n, t, label_pos, np.concatenate((c.V[hi_keep], new_V)),
                      np.concatenate((words[hi_keep], new_inc))),
                c.cut(n, -t, label_neg, np.concatenate((c.V[lo_keep], new_V)),
                      np.concatenate((words[lo_keep], new_inc))))

    def split_two(self, c: _VertexCell, col: int, r0: int, r1: int, P: np.ndarray, Q: np.ndarray) -> list[_VertexCell]:
        """Cut ``c`` by the unit's hyperplane where both sides reach past ``tol``, decided exactly by the
        hyperplane's values at the cell's vertices."""
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
            self._sliver(col, alt, float(thin), c.V[ithin].copy(), c.code.copy())
        elif thin > -c.eps:
            self._label_coincident(c, n, t, col, alt)
        return [c]

    def split_many(self, c: _VertexCell, col: int, pieces: list[int], P: np.ndarray, Q: np.ndarray) -> list[_VertexCell]:
        """Each piece's part: the cell cut (vertices and all) by the hyperplanes past which a rival piece wins;
        a part cut more than once is checked by its Chebyshev ball (an LP)."""
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
                    self._sliver(col, r, thin[0], thin[1], c.code.copy())
                continue
            if sub is c:
                sub = c.copy()
            else:  # the intersection of several cuts can be thin although each cut reaches past tol
                radius, center = chebyshev(sub.G, sub.h, self.stats)
                if radius <= self.tol:
                    if radius > c.eps:
                        self._sliver(col, r, float(radius), center, c.code.copy())
                    continue
            sub.code[col] = r
            for n, t, s in touching:
                self._label_coincident(sub, n, t, col, s)
            out.append(sub)
        return out

    def facets_from_vertices(self, c: _VertexCell) -> list[int]:
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

    def facets(self, c: _VertexCell) -> list[int] | None:
        keep = self.facets_from_vertices(c)
        c.radius, c.center = chebyshev(c.G[keep], c.h[keep], self.stats)
        if c.radius > self._domain_radius() * (1 + _RADIUS_SLACK) + c.eps:
            # wider than the domain: rounding lost a facet (vertices too close to tell rows apart); find the
            # facets again with LPs, from the Chebyshev ball of every row
            c.radius, c.center = chebyshev(c.G, c.h, self.stats)
            keep = self.irredundant(c)
            c.radius, c.center = chebyshev(c.G[keep], c.h[keep], self.stats)
        if c.radius <= self.tol:  # thin although every cut reached past tol: a sliver, counted apart
            self._sliver(-1, -1, max(float(c.radius), 0.0), c.center, c.code.copy())
            return None
        return keep
