"""The LP engine (``method="lp"``): cuts decided by witness points, outer bounding boxes and LPs; facets by
``daqp.minrep`` and LPs. Its cost grows gently with the input dimension."""

from __future__ import annotations

import numpy as np

from maso._lp import chebyshev, extreme
from maso.regions._engine import _MAX_WITNESSES, Engine, _Cell, _rivals
from maso.regions._tolerances import _SAME


class LPEngine(Engine[_Cell]):
    """Cells are polytopes ``G x <= h`` with an outer bounding box, a Chebyshev ball and witness points (points
    of the cell): a unit's hyperplane cuts a cell when both sides reach past ``tol``, which the box or a witness
    point shows without an LP, else the extremes of the unit over the cell (two LPs) decide. Every part is
    checked by its Chebyshev ball (an LP); a finished cell's facets are its rows less the redundant ones
    (`irredundant`)."""

    method = "lp"

    def _root_cell(self, cell: _Cell, lo: np.ndarray, hi: np.ndarray) -> _Cell:
        return cell

    def _extents(self, cell: _Cell, nrm: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # over the outer box: an interval bound, not tight
        top = t + np.maximum(nrm * cell.lo, nrm * cell.hi).sum(axis=1)
        bottom = t + np.minimum(nrm * cell.lo, nrm * cell.hi).sum(axis=1)
        return top, bottom

    def split_two(self, c: _Cell, col: int, r0: int, r1: int, P: np.ndarray, Q: np.ndarray) -> list[_Cell]:
        """Cut ``c`` by the unit's hyperplane where both sides reach past ``tol``: decided by the outer box, then
        by the witness points, then by two LPs (the extremes of ``f`` over the cell)."""
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
        if fmax is None or xmax is None:  # (None together)
            v, xmax = extreme(n, c.G, c.h, self.stats)
            fmax = v + t
        if fmin is None or xmin is None:
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
                    self._sliver(col, piece, max(r, 0.0), center, c.code.copy())
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
            self._sliver(col, alt, float(thin), np.asarray(xthin), c.code.copy())
        elif thin > -c.eps:
            self._label_coincident(c, n, t, col, alt)
        c.wit = np.vstack([c.wit, xthin[None]])[:_MAX_WITNESSES] if xthin is not None else c.wit
        return [c]

    def split_many(self, c: _Cell, col: int, pieces: list[int], P: np.ndarray, Q: np.ndarray) -> list[_Cell]:
        """Each piece's part: the cell cut by the hyperplanes past which a rival piece wins, kept if its
        Chebyshev ball (an LP) is wider than ``tol``."""
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
                    self._sliver(col, r, float(radius), center, c.code.copy())
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

    def facets(self, c: _Cell) -> list[int]:
        return self.irredundant(c)
