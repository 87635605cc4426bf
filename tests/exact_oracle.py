"""An exact oracle for 1-D paths through any maso network (graphs included), in rational arithmetic.

Independent of maso's walk: each node's affine map and each spline unit's piece scores are read off by probing
the layer with one-hot inputs (a single nonzero term per output, so the float probe is the weight itself), and
the network along the line ``x0 + t * u`` is then propagated in exact rational (dyadic) arithmetic. For a code
``c`` this gives the exact interval of ``t`` where ``c`` is the network's code (ties to the lowest piece, as
:meth:`maso.Network.codes` breaks them); a walk is exact iff its pieces' intervals tile ``[lo, hi]`` with no gap.

Probing is exact for the test architectures (zero padding; no reflect or circular padding that folds one input
into a window twice, and no average pooling whose float coefficient 1/k differs from the exact one).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from maso.core._program import params
from maso.core.network import Network
from maso.layers import Elementwise, SplineLayer, _pieces_per_unit


def _scale_of(values: np.ndarray) -> int:
    """The smallest ``S`` such that every float in ``values`` times ``2**S`` is an integer."""
    S = 0
    for v in np.unique(np.abs(values[np.isfinite(values)])).tolist():
        if v:
            d = float(v).as_integer_ratio()[1]
            S = max(S, d.bit_length() - 1)
    return S


def _ints(values: Any, S: int) -> list[int]:
    """Floats as exact integers at scale ``2**S``."""
    out = []
    for v in np.asarray(values, dtype=np.float64).ravel().tolist():
        n, d = float(v).as_integer_ratio()
        out.append(n * ((1 << S) // d))
    return out


def _sparse(M: np.ndarray, S: int) -> list[list[tuple[int, int]]]:
    """Rows of a dense float matrix as lists of (column, exact integer coefficient at scale 2**S)."""
    out = []
    for row in M:
        nz = np.flatnonzero(row)
        out.append(list(zip(nz.tolist(), _ints(row[nz], S))))
    return out


@dataclass
class _Affine:
    inputs: tuple[int, ...]
    maps: list[list[list[tuple[int, int]]]]  # per input: rows of (index, integer coef at scale 2**S)
    S: int
    bias: np.ndarray  # floats


@dataclass
class _Spline:
    src: int
    columns: slice
    slopes: list[list[list[tuple[int, int]] | None]]  # [unit][piece] -> sparse row; None if the piece is missing
    S: int
    offsets: np.ndarray  # (U, R) floats, -inf for missing
    sign: list[int]  # per unit: the output is sign * (best score); -1 for concave units (min of pieces)


class ExactLine:
    """The network along ``x0 + t * u`` in exact arithmetic.

    Every value ``a + b t`` is a pair of Python integers at a power-of-two scale fixed per node (floats are
    dyadic rationals, and so are their sums and products): exact, and much faster than fractions.
    """

    def __init__(self, net: Network, x0: np.ndarray, u: np.ndarray) -> None:
        self.net = net
        x0 = np.asarray(x0, dtype=np.float64).ravel()
        u = np.asarray(u, dtype=np.float64).ravel()
        S0 = max(_scale_of(x0), _scale_of(u))
        self.E = {0: S0}
        self.start = list(zip(_ints(x0, S0), _ints(u, S0)))
        p = params(net.program, "cpu", torch.float64)
        self.ops: dict[int, Any] = {}
        groups = {g.node: g for g in net.units}
        with torch.no_grad():
            for i, node in enumerate(net.nodes[1:], 1):
                layer = node.layer
                if isinstance(layer, SplineLayer):
                    src = node.inputs[0]
                    shape = net.nodes[src].shape
                    D = int(np.prod(shape))
                    G = torch.eye(D, dtype=torch.float64).reshape(1, D, *shape)
                    P, Q = layer.scores(G, torch.zeros((1, *shape), dtype=torch.float64), shape)
                    P, Q = P[0].numpy(), Q[0].numpy()  # (U, R, D), (U, R)
                    S = max(_scale_of(P), _scale_of(Q))
                    slopes = [[(_sparse(P[k, r][None], S)[0] if np.isfinite(Q[k, r]) else None)
                               for r in range(P.shape[1])] for k in range(P.shape[0])]
                    sign = [1] * P.shape[0]
                    if isinstance(layer, Elementwise):
                        sign = [int(v) for v in _pieces_per_unit(layer.sign[None], shape)[0].tolist()]
                    self.ops[i] = _Spline(src, groups[i].columns, slopes, S, Q, sign)
                    self.E[i] = self.E[src] + S
                else:
                    shapes = [net.nodes[j].shape for j in node.inputs]
                    zeros = [torch.zeros((1, *s), dtype=torch.float64) for s in shapes]
                    bias = layer.forward(zeros, p[i]).reshape(-1).numpy()
                    cols_all = []
                    for k, s in enumerate(shapes):
                        D = int(np.prod(s))
                        ins = [torch.zeros((D, *s2), dtype=torch.float64) for s2 in shapes]
                        ins[k] = torch.eye(D, dtype=torch.float64).reshape(D, *s)
                        cols_all.append(layer.linear(ins, p[i]).reshape(D, -1).numpy().T)  # (out, D)
                    S = max([_scale_of(c) for c in cols_all] + [_scale_of(bias)])
                    E = max(self.E[j] for j in node.inputs) + S
                    # each input's contribution is brought to the node's scale E by its own left shift
                    maps = [_sparse(c, S) for c in cols_all]
                    self.ops[i] = _Affine(tuple(node.inputs), maps, S, bias)
                    self.E[i] = E

    def _run(self, code: np.ndarray | None, t: Fraction | None = None):
        """Propagate along the line; with ``code`` frozen (returns the constraints on t), else at the point ``t``
        (returns the exact code)."""
        net = self.net
        vals: dict[int, list[tuple[int, int]]] = {0: self.start}
        found = np.zeros(net.n_units, dtype=np.int64)
        cons: list[tuple[int, int, bool]] = []  # alpha + beta t > 0 (strict) or >= 0
        tp, tq = (t.numerator, t.denominator) if t is not None else (0, 1)
        for i in range(1, len(net.nodes)):
            op = self.ops[i]
            E = self.E[i]
            if isinstance(op, _Affine):
                out_a = _ints(op.bias, E)
                out_b = [0] * len(out_a)
                for j, rows in zip(op.inputs, op.maps):
                    src = vals[j]
                    shift = E - self.E[j] - op.S
                    for o, row in enumerate(rows):
                        if row:
                            a = b = 0
                            for col, w in row:
                                sa, sb = src[col]
                                a += w * sa
                                b += w * sb
                            out_a[o] += a << shift
                            out_b[o] += b << shift
                vals[i] = list(zip(out_a, out_b))
                continue
            src = vals[op.src]
            out = []
            offs = op.offsets
            for k, pieces in enumerate(op.slopes):
                scores: list[tuple[int, int] | None] = []
                for r, row in enumerate(pieces):
                    if row is None:
                        scores.append(None)
                        continue
                    a = _ints([offs[k, r]], E)[0]
                    b = 0
                    for col, w in row:
                        sa, sb = src[col]
                        a += w * sa
                        b += w * sb
                    scores.append((a, b))
                unit = op.columns.start + k
                if code is None:  # evaluate at t = tp / tq: argmax, lowest piece on ties
                    best, best_v = None, None
                    for r, sc in enumerate(scores):
                        if sc is None:
                            continue
                        v = sc[0] * tq + sc[1] * tp
                        if best is None or v > best_v:
                            best, best_v = r, v
                    found[unit] = best
                    chosen = scores[best]
                else:
                    c = int(code[unit])
                    mine = scores[c] if c < len(scores) else None
                    if mine is None:
                        return None  # the code picks a piece the unit lacks
                    for r, sc in enumerate(scores):
                        if sc is None or r == c:
                            continue
                        cons.append((mine[0] - sc[0], mine[1] - sc[1], r < c))  # lower pieces win ties
                    chosen = mine
                out.append(chosen if op.sign[k] == 1 else (-chosen[0], -chosen[1]))
            vals[i] = out
        return found if code is None else cons

    def code(self, t: Any) -> np.ndarray:
        """Exact code at ``x0 + t u``."""
        return self._run(None, Fraction(t))

    def interval(self, code: np.ndarray) -> tuple[Fraction | None, Fraction | None] | None:
        """The exact set of ``t`` where the network's code is ``code``: ``(lo, hi)`` (None for unbounded), or None
        if empty. Endpoints are where the code stops; whether they belong to the piece does not matter here."""
        cons = self._run(np.asarray(code))
        if cons is None:
            return None
        lo = hi = None
        lo_strict = hi_strict = False
        for alpha, beta, strict in cons:
            if beta == 0:
                if alpha < 0 or (strict and alpha == 0):
                    return None
                continue
            r = Fraction(-alpha, beta)
            if beta > 0:  # t > r (or >=)
                if lo is None or r > lo or (r == lo and strict):
                    lo, lo_strict = r, strict
            elif hi is None or r < hi or (r == hi and strict):
                hi, hi_strict = r, strict
        if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_strict or hi_strict))):
            return None
        return lo, hi


def check_path(line: ExactLine, ts: np.ndarray, codes: np.ndarray, lo: float, hi: float,
               atol: float = 1e-9) -> list[str]:
    """Problems with a walk's answer (empty list: exact): every piece's exact interval must be non-empty, the
    intervals must abut exactly and cover ``[lo, hi]``, and the float crossings must lie within ``atol`` of the
    exact ones."""
    problems = []
    ivs = [line.interval(c) for c in codes]
    for j, iv in enumerate(ivs):
        if iv is None:
            problems.append(f"piece {j}: its code is the network's code nowhere on the line")
    if problems:
        return problems
    first_lo, last_hi = ivs[0][0], ivs[-1][1]
    if first_lo is not None and first_lo > Fraction(lo):
        problems.append(f"the first piece starts at {float(first_lo)} > lo = {lo}")
    if last_hi is not None and last_hi < Fraction(hi):
        problems.append(f"the last piece ends at {float(last_hi)} < hi = {hi}")
    for j in range(len(ivs) - 1):
        end, start = ivs[j][1], ivs[j + 1][0]
        if end is None or start is None or end != start:
            problems.append(f"pieces {j} and {j + 1} do not meet: {end} vs {start} (a piece missing between them?)")
            continue
        if abs(float(end) - float(ts[j])) > atol:
            problems.append(f"crossing {j} at t = {ts[j]!r}, exactly {float(end)!r}")
    return problems
