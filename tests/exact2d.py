"""Independent exact reference for 2-D ReLU-type networks: convex polygon splitting in rational arithmetic.

Weights are converted to Fractions exactly (every float is a rational), so counts are exact, degenerate
arrangements included (duplicate lines, lines through a vertex, zero and constant units).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def _frac(a: np.ndarray) -> list:
    return [[Fraction(float(v)) for v in row] for row in np.atleast_2d(a)]


def _split(poly: list, a: list, c: Fraction) -> tuple[list, list]:
    """Split a convex polygon (vertex list) by a.x + c = 0 into the parts with value <= 0 and >= 0."""
    vals = [a[0] * x + a[1] * y + c for x, y in poly]
    neg, pos = [], []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        vp, vq = vals[i], vals[(i + 1) % n]
        if vp <= 0:
            neg.append(p)
        if vp >= 0:
            pos.append(p)
        if (vp < 0 < vq) or (vq < 0 < vp):
            t = vp / (vp - vq)
            m = (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))
            neg.append(m)
            pos.append(m)
    return neg, pos


def area(poly: list) -> Fraction:
    s = Fraction(0)
    for i in range(len(poly)):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % len(poly)]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


def regions(layers: list[tuple[np.ndarray, np.ndarray, tuple[float, float]]], lo: float, hi: float) -> list:
    """Regions of a 2-D network ``x -> max(s0*u, s1*u)`` per layer (u = W x + b), as (polygon, code) pairs.

    ``layers``: (W, b, (s0, s1)) per hidden layer, the unit being ``s1*u`` when ``u > 0`` else ``s0*u``.
    """
    L, H = Fraction(float(lo)), Fraction(float(hi))
    cells = [([(L, L), (H, L), (H, H), (L, H)], (), [[Fraction(1), Fraction(0)], [Fraction(0), Fraction(1)]],
              [Fraction(0), Fraction(0)])]
    for W, b, (s0, s1) in layers:
        Wf, bf = _frac(W), [Fraction(float(v)) for v in b]
        S0, S1 = Fraction(float(s0)), Fraction(float(s1))
        for k in range(len(bf)):
            nxt = []
            for poly, code, M, m in cells:
                # unit k's pre-activation on this cell: u = Wk (M x + m) + bk
                a = [sum(Wf[k][j] * M[j][i] for j in range(len(M))) for i in range(2)]
                c = sum(Wf[k][j] * m[j] for j in range(len(m))) + bf[k]
                vals = [a[0] * x + a[1] * y + c for x, y in poly]
                if max(vals) <= 0:  # on the off side, touching at most (u == 0 counts as off)
                    nxt.append((poly, code + (0,), M, m))
                elif min(vals) >= 0:
                    nxt.append((poly, code + (1,), M, m))
                else:
                    neg, pos = _split(poly, a, c)
                    nxt.append((neg, code + (0,), M, m))
                    nxt.append((pos, code + (1,), M, m))
            cells = nxt
        # apply the layer on each cell: new affine map of the layer output
        out = []
        for poly, code, M, m in cells:
            bits = code[-len(bf):]
            newM, newm = [], []
            for k in range(len(bf)):
                s = S1 if bits[k] else S0
                newM.append([s * sum(Wf[k][j] * M[j][i] for j in range(len(M))) for i in range(2)])
                newm.append(s * (sum(Wf[k][j] * m[j] for j in range(len(m))) + bf[k]))
            out.append((poly, code, newM, newm))
        cells = out
    return [(poly, code) for poly, code, _, _ in cells]
