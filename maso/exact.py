"""Exact rational arithmetic for toy networks (sympy): exact maps, regions, symbolic and piecewise forms.

Every float is a rational number, so a float network has an exact rational twin:
[`from_network`][maso.exact.from_network] converts its canonical chain ([`maso.Network.maso_layers`][]) entry
by entry without rounding, or with ``max_denominator`` to readable fractions (then it is a *nearby* network;
[`ExactNetwork.to_network`][maso.exact.ExactNetwork.to_network] gives its float version).
[`from_weights`][maso.exact.from_weights] builds one from rational weights directly. Everything on an
[`ExactNetwork`][maso.exact.ExactNetwork] is computed with sympy Rationals: outputs, codes (ties go to the
lowest piece, as in maso), each region's affine map and H-representation, the network as a symbolic ``Max``
expression and as a ``Piecewise`` over enumerated regions, and
[`ExactNetwork.verify`][maso.exact.ExactNetwork.verify], which checks an enumeration in exact arithmetic.
Meant for tiny networks: cost grows with the number of units times the number of regions.

Examples
--------
>>> import maso
>>> from maso import exact
>>> en = exact.from_weights([([[1, -1], [1, 1]], [0, "-1/2"]), ([[1, 1]], [0])])   # 2-2-1 ReLU net
>>> en([1, "1/4"])
Matrix([[3/2]])
>>> en.affine_map(en.code([1, "1/4"]))
(Matrix([[2, 0]]), Matrix([[-1/2]]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from maso.errors import ParameterError, ParameterShapeError, ShapeError

if TYPE_CHECKING:  # imported where used: importing maso.exact stays free of the network module
    from maso.core.network import Network

__all__ = ["ExactNetwork", "ExactReport", "from_network", "from_weights", "rational"]


def rational(v: Any, max_denominator: int | None = None) -> sp.Rational:
    """An exact rational: floats convert exactly (or to the nearest fraction with ``max_denominator``).

    Examples
    --------
    >>> maso.exact.rational(0.1), maso.exact.rational(0.1, 100), maso.exact.rational("2/3")
    (3602879701896397/36028797018963968, 1/10, 2/3)
    """
    if isinstance(v, sp.Rational):
        r = v
    elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        r = sp.Integer(int(v))
    elif isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            raise ParameterError(f"Cannot make an exact rational from {v!r}.")
        from fractions import Fraction

        f = Fraction(float(v))
        r = sp.Rational(f.numerator, f.denominator)
    else:
        try:
            r = sp.Rational(v)
        except (TypeError, ValueError, sp.SympifyError):
            raise ParameterError(f"Cannot read {v!r} as a rational number.") from None
    if max_denominator is not None:
        from fractions import Fraction

        f = Fraction(int(r.p), int(r.q)).limit_denominator(int(max_denominator))
        r = sp.Rational(f.numerator, f.denominator)
    return r


@dataclass(frozen=True)
class _Layer:
    A: tuple[sp.ImmutableMatrix, ...]  # one (K, D) matrix per piece
    B: tuple[sp.ImmutableMatrix, ...]  # one (K, 1) column per piece
    present: np.ndarray  # (K, R) bool: pieces a unit has

    @property
    def n_units(self) -> int:
        return self.present.shape[0]


@dataclass(frozen=True, eq=False)
class ExactReport:
    """What [`ExactNetwork.verify`][maso.exact.ExactNetwork.verify] checked, in exact arithmetic.

    Attributes
    ----------
    n_regions : int
    interior_ok : int
        Regions with a point strictly inside their exact H-representation whose exact code is the region's.
    max_map_error : float
        Largest difference between a region's float affine map and its exact one.
    distinct_codes : bool
    area_sum, domain_area : sympy.Rational or None
        2-D only: exact sum of the regions' areas (each region = the domain cut by its exact inequalities) and
        the domain's area (its float inequalities read as exact rationals).
    problems : tuple of str
    """

    n_regions: int
    interior_ok: int
    max_map_error: float
    distinct_codes: bool
    area_sum: Any
    domain_area: Any
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """All checks passed (and, in 2-D, the exact areas sum to the box's: the partition is complete)."""
        covered = self.area_sum is None or self.area_sum == self.domain_area
        return not self.problems and self.interior_ok == self.n_regions and self.distinct_codes and covered


class ExactNetwork:
    """A chain of max-affine spline layers with rational weights; the last layer may be affine (one piece).

    Build with [`from_network`][maso.exact.from_network] or [`from_weights`][maso.exact.from_weights].
    """

    def __init__(self, layers: Sequence[_Layer], input_dim: int) -> None:
        self._layers = tuple(layers)
        self.input_dim = int(input_dim)

    def __repr__(self) -> str:
        widths = [self.input_dim] + [lay.n_units for lay in self._layers]
        return f"ExactNetwork(widths={widths})"

    @property
    def n_units(self) -> int:
        """Number of units with more than one piece (the code length)."""
        return sum(lay.n_units for lay in self._layers if lay.present.shape[1] > 1)

    # --------------------------------------------------------------------------------------- evaluation
    def _point(self, x: Any) -> sp.Matrix:
        vals = list(np.asarray(x, dtype=object).reshape(-1))
        if len(vals) != self.input_dim:
            raise ShapeError(f"ExactNetwork needs a point with {self.input_dim} coordinates; got {len(vals)}.")
        return sp.Matrix([rational(v) for v in vals])

    def _run(self, x: sp.Matrix) -> tuple[sp.Matrix, list[np.ndarray]]:
        codes = []
        for lay in self._layers:
            scores = [lay.A[r] * x + lay.B[r] for r in range(len(lay.A))]
            K, R = lay.present.shape
            q = np.zeros(K, dtype=np.int64)
            out = []
            for k in range(K):
                best = None
                for r in range(R):
                    if lay.present[k, r] and (best is None or scores[r][k] > scores[best][k]):
                        best = r
                assert best is not None  # every unit has a finite piece (a unit with none has no value)
                q[k] = best
                out.append(scores[best][k])
            x = sp.Matrix(out)
            if R > 1:
                codes.append(q)
        return x, codes

    def __call__(self, x: Any) -> sp.Matrix:
        """Exact output at a rational point (floats, ints, strings such as ``"1/3"`` or sympy Rationals)."""
        return self._run(self._point(x))[0]

    def code(self, x: Any) -> np.ndarray:
        """Exact hard code at a point (lowest piece on ties), laid out as [`maso.Network.codes`][]."""
        codes = self._run(self._point(x))[1]
        return np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)

    def _split_code(self, code: Any) -> list[np.ndarray]:
        c = np.asarray(code, dtype=np.int64).reshape(-1)
        if c.shape != (self.n_units,):
            raise ShapeError(f"A code of this network has {self.n_units} entries; got {c.shape}.")
        out, i = [], 0
        for lay in self._layers:
            K, R = lay.present.shape
            if R == 1:
                out.append(np.zeros(K, dtype=np.int64))
                continue
            q = c[i:i + K]
            if np.any(q < 0) or np.any(q >= R) or not np.all(lay.present[np.arange(K), q]):
                raise ParameterShapeError("The code selects a piece a unit does not have.")
            out.append(q)
            i += K
        return out

    def _walk(self, code: Any) -> tuple[sp.Matrix, sp.Matrix, list[tuple[sp.Matrix, sp.Matrix]]]:
        """Affine map of each layer's input on the region of ``code``: ``(M, m)`` with ``z = M y + m``."""
        M, m = sp.eye(self.input_dim), sp.zeros(self.input_dim, 1)
        inputs = []
        for lay, q in zip(self._layers, self._split_code(code)):
            inputs.append((M, m))
            rows_A = sp.Matrix([lay.A[q[k]].row(k) for k in range(lay.n_units)])
            rows_B = sp.Matrix([lay.B[q[k]][k] for k in range(lay.n_units)])
            M, m = rows_A * M, rows_A * m + rows_B
        return M, m, inputs

    def affine_map(self, code: Any) -> tuple[sp.Matrix, sp.Matrix]:
        """The exact affine map ``(A, b)`` of the region with this code: ``net(y) = A y + b`` there.

        Examples
        --------
        >>> en = maso.exact.from_weights([([[1, 0]], [0]), ([[2]], [1])])
        >>> en.affine_map([1]), en.affine_map([0])
        ((Matrix([[2, 0]]), Matrix([[1]])), (Matrix([[0, 0]]), Matrix([[1]])))
        """
        M, m, _ = self._walk(code)
        return M, m

    def region(self, code: Any) -> tuple[sp.Matrix, sp.Matrix]:
        """Exact inequalities ``A y <= b`` of the region with this code (one row per unit and rival piece).

        Rows are not reduced (redundant and all-zero rows are kept), as in [`maso.Network.region_at`][].
        """
        _, _, inputs = self._walk(code)
        rows, rhs = [], []
        for lay, q, (M, m) in zip(self._layers, self._split_code(code), inputs):
            K, R = lay.present.shape
            for k in range(K):
                for r in range(R):
                    if r == q[k] or not lay.present[k, r]:
                        continue
                    a = lay.A[r].row(k) - lay.A[q[k]].row(k)
                    c = lay.B[r][k] - lay.B[q[k]][k]
                    rows.append(a * M)
                    rhs.append(-(a * m)[0] - c)
        if not rows:
            return sp.zeros(0, self.input_dim), sp.zeros(0, 1)
        return sp.Matrix.vstack(*rows), sp.Matrix(rhs)

    # ----------------------------------------------------------------------------------------- symbolic
    def affine_expression(self, code: Any) -> list[sp.Expr]:
        """The region's exact affine map as expressions in [`symbols`][maso.exact.ExactNetwork.symbols], one
        per output.

        Examples
        --------
        >>> en = maso.exact.from_weights([([[1, -1]], ["1/2"]), ([[3]], [0])])
        >>> en.affine_expression([1])
        [3*x0 - 3*x1 + 3/2]
        """
        A, b = self.affine_map(code)
        v = A * sp.Matrix(self.symbols()) + b
        return [sp.expand(e) for e in v]


    def symbols(self) -> tuple[sp.Symbol, ...]:
        """The input symbols ``x0, x1, ...`` used by the symbolic forms."""
        return sp.symbols(f"x0:{self.input_dim}", real=True)

    def expression(self) -> list[sp.Expr]:
        """The network as exact symbolic expressions (nested ``Max``), one per output.

        Examples
        --------
        >>> en = maso.exact.from_weights([([[1, -1]], [0]), ([[3]], ["1/2"])])
        >>> en.expression()
        [3*Max(0, x0 - x1) + 1/2]
        """
        z = sp.Matrix(self.symbols())
        for lay in self._layers:
            K, R = lay.present.shape
            scores = [lay.A[r] * z + lay.B[r] for r in range(R)]
            z = sp.Matrix([sp.Max(*[scores[r][k] for r in range(R) if lay.present[k, r]]) for k in range(K)])
        return list(z)

    def piecewise(self, codes: Sequence[Any]) -> list[sp.Piecewise]:
        """The network as ``Piecewise`` expressions over the given regions (e.g. the codes of an enumeration).

        Each piece is a region's exact affine map, valid where its exact inequalities hold (closed regions:
        pieces agree on shared boundaries because the network is continuous).
        """
        xs = sp.Matrix(self.symbols())
        per_output: list[list[tuple[sp.Expr, Any]]] = []
        for code in codes:
            A, b = self.affine_map(code)
            H, h = self.region(code)
            cond = sp.And(*[sp.Le((H.row(i) * xs)[0], h[i]) for i in range(H.rows)
                            if any(H.row(i))]) if H.rows else sp.true
            vals = A * xs + b
            if not per_output:
                per_output = [[] for _ in range(vals.rows)]
            for j in range(vals.rows):
                per_output[j].append((sp.expand(vals[j]), cond))
        return [sp.Piecewise(*pieces) for pieces in per_output]

    # ------------------------------------------------------------------------------------- verification
    def verify(self, regions: Any, *, domain: Any = None) -> ExactReport:
        """Check an enumeration (a [`maso.regions.RegionSet`][] or a list of [`maso.regions.Region`][]) exactly.

        Per region, with its interior point converted to a rational exactly: the point satisfies every
        inequality of the code's exact H-representation strictly (else an exact LP, sympy's simplex, looks
        for a strictly interior point), its exact code is the region's code, and the float affine map is
        compared to the exact one. Codes must be distinct. For a 2-D domain, each region's exact polygon (the
        domain cut by its exact inequalities) is formed and the exact areas must sum to the domain's area: with
        distinct codes and non-empty interiors this proves the regions partition the domain. In 3-D and up,
        coverage is not checked exactly (use [`maso.regions.RegionSet.verify`][] for sampled coverage).

        Parameters
        ----------
        regions : RegionSet or sequence of Region
        domain : Box or Polytope, optional
            Defaults to ``regions.domain`` when given a RegionSet.

        Returns
        -------
        ExactReport
        """
        regs = list(regions)
        if domain is None:
            domain = getattr(regions, "domain", None)
        problems: list[str] = []
        codes = [tuple(int(c) for c in r.code) for r in regs]
        distinct = len(set(codes)) == len(codes)
        if not distinct:
            problems.append("two regions share a code")
        ok = 0
        max_err = 0.0
        area_sum = None
        box = None
        if domain is not None and self.input_dim == 2:
            box = _domain_polygon(domain)
            area_sum = sp.Integer(0)
        for i, r in enumerate(regs):
            H, h = self.region(r.code)
            p = sp.Matrix([rational(float(v)) for v in np.asarray(r.interior_point).reshape(-1)])
            if not _strictly_inside(H, h, p):
                p = _interior_point(H, h)
            if p is None:
                problems.append(f"region {i}: no point strictly inside its exact inequalities")
            elif tuple(int(c) for c in self.code(list(p))) != codes[i]:
                problems.append(f"region {i}: the exact code at a point strictly inside differs from its code")
            else:
                ok += 1
            A, b = self.affine_map(r.code)
            fa = np.asarray(r.affine.A, dtype=np.float64).reshape(A.shape)
            fb = np.asarray(r.affine.b, dtype=np.float64).reshape(-1)
            err = max(float(np.max(np.abs(fa - np.array(A.tolist(), dtype=np.float64)), initial=0.0)),
                      float(np.max(np.abs(fb - np.array(b.T.tolist()[0], dtype=np.float64)), initial=0.0)))
            max_err = max(max_err, err)
            if box is not None:
                poly = box
                for j in range(H.rows):
                    poly = _clip(poly, H.row(j), h[j])
                    if not poly:
                        break
                area_sum += _area(poly)
        dom_area = None
        if box is not None:
            dom_area = _area(box)
            if area_sum != dom_area:
                problems.append(f"exact areas sum to {area_sum}, the box has {dom_area}")
        return ExactReport(len(regs), ok, max_err, distinct, area_sum, dom_area, tuple(problems))

    # ------------------------------------------------------------------------------------------ floats
    def to_network(self) -> Network:
        """The float64 [`maso.Network`][] of these weights ([`maso.layers.MASOLayer`][maso.layers.MASOLayer] and
        ``Dense`` layers).

        Examples
        --------
        >>> en = maso.exact.from_weights([([[1, -1]], [0]), ([[2]], [1])])
        >>> net = en.to_network()
        >>> net(np.array([2.0, 0.5])), net.n_units == en.n_units
        (array([4.]), True)
        """
        from maso.core.network import Network
        from maso.layers import Dense, MASOLayer

        layers: list[Dense | MASOLayer] = []
        for lay in self._layers:
            R = lay.present.shape[1]
            A = np.stack([np.array(lay.A[r].tolist(), dtype=np.float64) for r in range(R)], axis=1)
            B = np.stack([np.array(lay.B[r].T.tolist()[0], dtype=np.float64) for r in range(R)], axis=1)
            B[~lay.present] = -np.inf
            # one-piece layers are affine: no units, as in the code layout of this network
            layers.append(Dense(A[:, 0], B[:, 0]) if R == 1 else MASOLayer(A, B))
        return Network.sequential((self.input_dim,), layers)


def _strictly_inside(H: sp.Matrix, h: sp.Matrix, p: sp.Matrix) -> bool:
    """Strictly inside every non-zero row; all-zero rows (a unit tied with a rival on the whole region, which
    keeps its lowest piece) need ``0 <= h`` only."""
    return all((H.row(j) * p)[0] < h[j] if any(H.row(j)) else h[j] >= 0 for j in range(H.rows))


def _interior_point(H: sp.Matrix, h: sp.Matrix) -> sp.Matrix | None:
    """Exact LP (sympy's simplex): a point with ``H y < h`` strictly, or None.

    Maximises ``s`` subject to ``H y + s <= h`` (rows that are not all zero), ``s <= 1``, ``y`` free.
    """
    from sympy.solvers.simplex import InfeasibleLPError, lpmax

    keep = [j for j in range(H.rows) if any(H.row(j))]
    if any(h[j] < 0 for j in range(H.rows) if j not in keep):
        return None
    d = H.cols
    if not keep:
        return sp.zeros(d, 1)
    ys = sp.symbols(f"y0:{d}", real=True)
    s = sp.Symbol("s", real=True)
    yv = sp.Matrix(ys)
    constraints = [(H.row(j) * yv)[0] + s <= h[j] for j in keep] + [s <= 1]
    try:
        value, sol = lpmax(s, constraints)
    except InfeasibleLPError:
        return None
    if not value > 0:
        return None
    return sp.Matrix([sol.get(y, 0) for y in ys])


def _domain_polygon(domain: Any) -> list:
    """The exact polygon of a 2-D Box or Polytope (its float inequalities read as exact rationals)."""
    if hasattr(domain, "lo") and hasattr(domain, "hi"):
        lo, hi = [rational(float(v)) for v in domain.lo], [rational(float(v)) for v in domain.hi]
        return [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
    A, b = np.asarray(domain.A, dtype=np.float64), np.asarray(domain.b, dtype=np.float64)
    big = sp.Integer(2) ** 80  # far outside any float-described bounded domain
    poly = [(-big, -big), (big, -big), (big, big), (-big, big)]
    for row, c in zip(A, b):
        poly = _clip(poly, [rational(float(v)) for v in row], rational(float(c)))
    return poly


def _clip(poly: list, a: Any, c: Any) -> list:
    """Cut a convex polygon (rational vertices) by ``a . y <= c``."""
    vals = [a[0] * x + a[1] * y - c for x, y in poly]
    out = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        vp, vq = vals[i], vals[(i + 1) % n]
        if vp <= 0:
            out.append(p)
        if (vp < 0 < vq) or (vq < 0 < vp):
            t = vp / (vp - vq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out if len(out) >= 3 else []


def _area(poly: list) -> Any:
    if not poly:
        return sp.Integer(0)
    s = sp.Integer(0)
    for i in range(len(poly)):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % len(poly)]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


def _from_dense(A: np.ndarray, B: np.ndarray, conv: Any) -> _Layer:
    K, R, D = A.shape
    present = np.isfinite(B)
    As = tuple(sp.ImmutableMatrix(K, D, [conv(v) for v in A[:, r, :].reshape(-1)]) for r in range(R))
    Bs = tuple(sp.ImmutableMatrix(K, 1, [conv(v) if np.isfinite(v) else 0 for v in B[:, r]]) for r in range(R))
    return _Layer(As, Bs, present)


def from_network(net: Any, *, max_denominator: int | None = None) -> ExactNetwork:
    """The exact rational twin of a chain network (its [`maso_layers`][maso.Network.maso_layers]).

    Parameters
    ----------
    net : Network
        A chain (no residual or concatenation), piecewise linear.
    max_denominator : int, optional
        Round every weight to the nearest fraction with at most this denominator (a nearby network). By
        default floats convert exactly.

    Examples
    --------
    >>> net = maso.mlp([2, 3, 1], seed=0)
    >>> en = maso.exact.from_network(net)
    >>> x = np.array([0.25, -0.5])
    >>> float(en(x)[0]) == float(net(x)[0]), bool((en.code(x) == net.codes(x)).all())
    (True, True)
    """
    layers = net.maso_layers()
    conv = (lambda v: rational(float(v), max_denominator))
    return ExactNetwork([_from_dense(np.asarray(lay.A), np.asarray(lay.B), conv) for lay in layers],
                        net.input_dim)


def from_weights(layers: Sequence[tuple[Any, Any]], *, activation: str = "relu",
                 negative_slope: Any = "1/100") -> ExactNetwork:
    """An exact MLP from rational weights: ``[(W_1, b_1), ..., (W_L, b_L)]``, the last layer affine.

    Entries may be ints, strings (``"3/7"``), sympy Rationals or floats (converted exactly).

    Parameters
    ----------
    layers : sequence of (W, b)
        ``W`` of shape (n_out, n_in), ``b`` of shape (n_out,).
    activation : {"relu", "leaky_relu", "abs"}
    negative_slope : rational, default="1/100"
        For ``"leaky_relu"``.

    Examples
    --------
    >>> en = maso.exact.from_weights([([[1, 1]], ["-1/3"]), ([[1]], [0])])
    >>> en([1, 0]), en.n_units
    (Matrix([[2/3]]), 1)
    """
    if activation not in ("relu", "leaky_relu", "abs"):
        raise ParameterError(f"activation must be 'relu', 'leaky_relu' or 'abs'; got {activation!r}.")
    slopes = {"relu": (0, 1), "leaky_relu": (rational(negative_slope), 1), "abs": (-1, 1)}[activation]
    if activation == "leaky_relu" and not 0 <= slopes[0] <= 1:
        raise ParameterError(f"negative_slope must be in [0, 1] (a convex unit); got {negative_slope!r}.")
    if len(layers) == 0:
        raise ShapeError("from_weights needs at least one layer.")
    out = []
    d_in = width = None
    for i, (W, b) in enumerate(layers):
        Wa = np.asarray(W, dtype=object)
        if Wa.ndim != 2:
            raise ShapeError(f"Layer {i}: W must be a 2-D array (n_out, n_in); got shape {Wa.shape}.")
        Wm = sp.Matrix([[rational(v) for v in row] for row in Wa])
        bm = sp.Matrix([rational(v) for v in np.asarray(b, dtype=object).reshape(-1)])
        if bm.rows != Wm.rows or (width is not None and Wm.cols != width):
            raise ShapeError(f"Layer {i}: W of shape {Wm.shape} does not fit b of length {bm.rows} or the "
                             f"previous layer's width {width}.")
        d_in = Wm.cols if d_in is None else d_in
        width = Wm.rows
        K = Wm.rows
        last = i == len(layers) - 1
        if last:
            out.append(_Layer((sp.ImmutableMatrix(Wm),), (sp.ImmutableMatrix(bm),), np.ones((K, 1), dtype=bool)))
        else:
            s0, s1 = (rational(s) for s in slopes)
            out.append(_Layer((sp.ImmutableMatrix(s0 * Wm), sp.ImmutableMatrix(s1 * Wm)),
                              (sp.ImmutableMatrix(s0 * bm), sp.ImmutableMatrix(s1 * bm)), np.ones((K, 2), dtype=bool)))
    assert d_in is not None  # there is at least one layer
    return ExactNetwork(out, int(d_in))
