"""Result records of an enumeration: regions, slivers, the region set and its certificate report."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from maso._lp import extreme
from maso._validation import real_vector
from maso.core.affine import Affine
from maso.core.network import Network
from maso.core.polytope import Polytope
from maso.errors import ShapeError
from maso.regions._geometry import _competing_piece, _polytope_vertices, _share_facet

if TYPE_CHECKING:
    from maso.regions._certificate import VerificationReport

__all__ = ["Region", "RegionSet", "Sliver"]


@dataclass(frozen=True, eq=False)
class Sliver:
    """A part of a cell thinner than the tolerance: not made a region, reported here instead.

    Attributes
    ----------
    unit : int
        Code column of the unit whose hyperplane cut off the sliver.
    piece : int
        The piece of that unit on the sliver.
    thickness : float
        How far the sliver reaches past the hyperplane (at most ``tol``).
    point : ndarray of shape (d,)
        A point of the sliver (an LP optimum).
    code_prefix : ndarray of shape (n_units,)
        The codes decided for the cell when it was found (-1: not yet decided).
    """

    unit: int
    piece: int
    thickness: float
    point: np.ndarray
    code_prefix: np.ndarray

    def __repr__(self) -> str:
        # one line: the point and the code prefix have the input's and the network's sizes
        return (f"Sliver(unit={self.unit}, piece={self.piece}, thickness={self.thickness:.3g}, "
                f"d={np.size(self.point)})")


@dataclass(frozen=True, eq=False)
class Region:
    """One linear region: a convex polytope on which the network is one affine map.

    Attributes
    ----------
    code : ndarray of shape (n_units,)
        The spline code (as [`Network.codes`][maso.Network.codes] gives it).
    polytope : Polytope
        Irredundant H-representation with unit-norm rows; ``polytope.units[i]`` is the (first) unit of facet
        ``i`` and its competing piece, ``(-1, -1)`` for a facet of the domain.
    facet_units : tuple of tuple of int
        All units whose hyperplane is facet ``i`` (several for duplicated units; ``(-1,)`` for the domain).
    interior_point : ndarray of shape (d,)
        The Chebyshev centre.
    inradius : float
        Radius of the largest ball inside the region.
    affine : Affine
        The network's map on the region (on the flattened input).
    """

    code: np.ndarray
    polytope: Polytope
    facet_units: tuple[tuple[int, ...], ...]
    interior_point: np.ndarray
    inradius: float
    affine: Affine

    def __repr__(self) -> str:
        # one line: the code, the facets and the affine map are arrays of the network's and the input's sizes
        return (f"Region(d={self.polytope.dim}, {len(self.polytope.b)} facets, inradius={self.inradius:.4g}, "
                f"{np.size(self.code)} units, {np.shape(self.affine.A)[0]} outputs)")

    def contains(self, y: Any, *, atol: float = 1e-9) -> Any:
        """Whether points lie in the (closed) region."""
        return self.polytope.contains(y, atol=atol)

    def vertices(self) -> np.ndarray:
        """Vertices ``(k, d)`` (qhull on the region moved to its interior point and scaled to inradius 1, so
        that tiny and huge regions are handled alike; practical for d <= 6 or so)."""
        P = self.polytope
        if P.dim == 1:  # an interval: qhull needs d >= 2
            a, b = P.A[:, 0], P.b
            return np.array([[float(np.max(b[a < 0] / a[a < 0]))], [float(np.min(b[a > 0] / a[a > 0]))]])
        return _polytope_vertices(P.A, P.b, np.asarray(self.interior_point, dtype=np.float64), float(self.inradius))

    def volume(self) -> float:
        """Lebesgue volume (area in 2-D), from the vertices' convex hull."""
        from scipy.spatial import ConvexHull

        V = self.vertices()
        if V.shape[1] == 1:
            return float(V.max() - V.min())
        c = V.mean(axis=0)
        s = float(np.abs(V - c).max())  # qhull's tolerances are absolute: hull a copy scaled to size 1
        return float(ConvexHull((V - c) / s).volume) * s ** V.shape[1]

    def distance_to_boundary(self, y: Any) -> float:
        """Distance from a point inside to the region's boundary (rows are unit-norm: the smallest slack)."""
        return float(np.min(self.polytope.slack(y)))

    def maximize(self, objective: Any, *, solver: str | None = None) -> tuple[float, np.ndarray]:
        """Maximise an objective over the region.

        Parameters
        ----------
        objective : array of shape (d_out,) or callable
            A vector ``c`` maximises ``c . f(y)`` over the region (``f`` the region's affine map), solved
            directly by LP. A callable ``objective(y, out)`` receives a cvxpy variable ``y`` and the cvxpy
            expression ``out = A y + b`` and returns a concave cvxpy expression (needs ``pip install cvxpy``).
        solver : str, optional
            cvxpy solver name, for callables.

        Returns
        -------
        value, argmax : float, ndarray of shape (d,)
        """
        return self._optimize(objective, solver, sense=1.0)

    def minimize(self, objective: Any, *, solver: str | None = None) -> tuple[float, np.ndarray]:
        """Minimise an objective over the region; see [`maximize`][maso.regions.Region.maximize] (callables must be convex)."""
        return self._optimize(objective, solver, sense=-1.0)

    def _optimize(self, objective: Any, solver: str | None, sense: float) -> tuple[float, np.ndarray]:
        A, b = np.asarray(self.affine.A, dtype=np.float64), np.asarray(self.affine.b, dtype=np.float64)
        P = self.polytope
        if not callable(objective):
            c = np.asarray(objective, dtype=np.float64).reshape(-1)
            if c.shape != (A.shape[0],):
                raise ShapeError(f"A linear objective needs shape ({A.shape[0]},) (one weight per output). "
                                 f"Got {c.shape}.")
            v, x = extreme(sense * (c @ A), P.A, P.b)
            return float(sense * v + c @ b), x
        try:
            import cvxpy as cp
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Callable objectives need cvxpy: pip install 'maso[opt]' (or cvxpy).") from e
        y = cp.Variable(P.dim)
        out = A @ y + b
        expr = objective(y, out)
        prob = cp.Problem(cp.Maximize(expr) if sense > 0 else cp.Minimize(expr), [P.A @ y <= P.b])
        prob.solve(solver=solver)
        if prob.status not in ("optimal", "optimal_inaccurate"):
            from maso.errors import SolverError

            raise SolverError(f"cvxpy returned status {prob.status!r} for the region objective.")
        return float(prob.value), np.asarray(y.value)


@dataclass(frozen=True, eq=False, init=False, repr=False)
class RegionSet(Sequence[Region]):
    """The regions of a network in a domain: sized, iterable, indexable; immutable (like
    [`SliceRegions`][maso.slices.SliceRegions]: no attribute can be set, the regions are frozen records with read-only
    arrays).

    Attributes
    ----------
    network : Network
    domain : Polytope
        The domain with unit-norm rows.
    slivers : tuple of Sliver
        Parts thinner than ``tol``, counted apart (``len(slivers)``), never silently dropped.
    tol : float
    stats : dict
        LPs solved (DAQP, HiGHS), fallbacks, tasks.
    """

    network: Network
    domain: Polytope
    slivers: tuple[Sliver, ...]
    tol: float
    stats: dict[str, Any]
    _regions: tuple[Region, ...] = field(repr=False)
    # region index by code bytes, for find (a memo of _regions, built once here: O(n) and every find needs it)
    _index: dict[bytes, int] = field(repr=False, init=False)

    def __init__(self, network: Network, domain: Polytope, regions: Sequence[Region], slivers: Sequence[Sliver],
                 tol: float, stats: dict[str, Any]) -> None:
        if not isinstance(network, Network) or not isinstance(domain, Polytope):
            raise ShapeError(f"RegionSet needs a maso.Network and a maso.Polytope domain; got "
                             f"{type(network).__name__} and {type(domain).__name__}.")
        regions = tuple(regions)
        bad = [type(r).__name__ for r in regions if not isinstance(r, Region)]
        if bad:
            raise ShapeError(f"RegionSet holds maso.regions.Region objects; got {bad[0]} among them.")
        # frozen: the fields are set once, here (object.__setattr__, as dataclasses' own __init__ does)
        for name, value in (("network", network), ("domain", domain), ("_regions", regions),
                            ("slivers", tuple(slivers)), ("tol", tol), ("stats", dict(stats)),
                            ("_index", {r.code.tobytes(): i for i, r in enumerate(regions)})):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self._regions)

    def __getitem__(self, i: Any) -> Any:
        return self._regions[i]

    def __iter__(self) -> Iterator[Region]:
        return iter(self._regions)

    def __repr__(self) -> str:
        return (f"RegionSet({len(self)} regions, {len(self.slivers)} slivers thinner than tol={self.tol:g}, "
                f"d={self.domain.dim})")

    @property
    def codes(self) -> np.ndarray:
        """All codes, ``(n_regions, n_units)``."""
        return np.stack([r.code for r in self._regions]) if self._regions else np.zeros((0, self.network.n_units))

    def find(self, y: Any) -> Any:
        """Index of the region holding point ``y`` (by its code): an int, or None if no region has its code.

        ``y`` is one input (``network.input_shape``, or flattened) or a batch ``(n, ...)`` of them; a batch gives
        an int array with -1 for inputs in no region.
        """
        net = self.network
        x = real_vector(y, "y", "RegionSet.find")
        single = x.shape in (net.input_shape, (net.input_dim,))
        if not single and not (x.ndim >= 1 and x.shape[1:] in (net.input_shape, (net.input_dim,))):
            raise ShapeError(f"RegionSet.find needs a point of shape {net.input_shape} or a batch (n, "
                             f"*{net.input_shape}); got shape {x.shape}.")
        x = x.reshape(-1, *net.input_shape)
        dtype = self._regions[0].code.dtype if self._regions else np.uint8
        codes = np.asarray(net.codes(x), dtype=dtype).reshape(len(x), net.n_units)
        found = [self._index.get(c.tobytes()) for c in codes]
        if single:
            return found[0]
        return np.array([-1 if i is None else i for i in found], dtype=np.int64)

    def graph(self) -> Any:
        """Adjacency graph (networkx): regions as nodes, an edge where two regions share a facet.

        Each edge carries ``units``: the code columns that flip across the shared facet. Adjacency is decided
        exactly: candidate neighbours share the code up to the facet's layer, and the shared part of the
        facet must contain a (d-1)-dimensional ball of radius above ``tol``.
        """
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(len(self)))
        groups = self.network.units
        ends = [grp.offset + grp.size for grp in groups]
        col_group = np.zeros(self.network.n_units, dtype=np.int64)
        for gi, grp in enumerate(groups):
            col_group[grp.columns] = gi
        prefix: list[dict[bytes, list[int]]] = [{} for _ in groups]
        for i, r in enumerate(self._regions):
            for gi, end in enumerate(ends):
                prefix[gi].setdefault(r.code[:end].tobytes(), []).append(i)
        all_codes = None
        for i, r in enumerate(self._regions):
            P = r.polytope
            for f, units in enumerate(r.facet_units):
                if units[0] < 0:
                    continue
                # units of coincident boundaries can sit in several layers: every unit not listed keeps its
                # piece across the facet, so the neighbour's code is known up to the last listed layer
                gi = int(col_group[list(units)].max())
                target = r.code[: ends[gi]].copy()
                unknown = []
                for u in units:
                    piece = _competing_piece(r, f, u, groups[int(col_group[u])].n_pieces)
                    if piece is None:
                        unknown.append(u)
                    else:
                        target[u] = piece
                if unknown:  # e.g. a max-pool window of zeros whose winner changes where one input turns on
                    if all_codes is None:
                        all_codes = np.array([q.code for q in self._regions])
                    known = np.ones(ends[gi], dtype=bool)
                    known[unknown] = False
                    hits = np.all(all_codes[:, : ends[gi]][:, known] == target[known], axis=1)
                    candidates = np.flatnonzero(hits).tolist()
                else:
                    candidates = prefix[gi].get(target.tobytes(), [])
                for j in candidates:
                    if j <= i or g.has_edge(i, j):
                        continue
                    if _share_facet(P.A, P.b, f, self._regions[j].polytope, self.tol):
                        g.add_edge(i, j, units=tuple(int(u) for u in units))
        return g

    def verify(self, *, n_points: int = 1000, atol: float = 1e-8, rng: Any = None) -> VerificationReport:
        """Certify the enumeration: each region on its own, and that together they tile the domain.

        Checks (each recomputed from the network and the domain; ``checks_run`` in the report lists them):
        the code at each interior point is the region's and codes are distinct; the affine map matches the
        forward pass at points deep inside each region and at random points; every facet row is the hyperplane
        of its units (recomputed by a frozen pass at the region's code), or a row of the domain; inradii are
        the Chebyshev radii (above ``tol``); across every facet that is not the domain's lies a region
        (completeness: a missing region leaves a facet with nothing across); up to 4-D, every region's
        vertices lie in the domain and in its code's polytope, and the volumes sum to the domain's; random
        points of the domain each lie in exactly one region.

        Parameters
        ----------
        n_points : int, default=1000
            Random points of the domain (rejection-sampled from its bounding box) that must each lie in exactly
            one region (sampled coverage, an extra check).
        atol : float, default=1e-8
            Relative tolerance of the map check: ``|A y + b - net(y)| <= atol * S``, with ``S`` the network's
            output scale, the largest ``sum_j |A_ij y_j| + |b_i|`` over the points checked (so networks with
            outputs of any size pass, and a map off by 1e-7 on a unit-scale network fails). Points count as
            inside a region up to ``min(atol * M, tol / 4)``, ``M`` the domain's largest coordinate magnitude.
        rng : numpy Generator or int, optional

        Returns
        -------
        VerificationReport

        Examples
        --------
        >>> R = maso.enumerate_regions(maso.mlp([2, 4, 1], seed=0), maso.Box(-1, 1))
        >>> report = R.verify(rng=0)
        >>> report.ok, report.checks_failed
        (True, ())

        Raises
        ------
        ParameterError
            ``n_points`` not a non-negative integer, ``atol`` not a finite number in ``(0, 1)``, or ``rng`` not
            a NumPy generator or seed.
        """
        from maso._validation import check_float, check_int
        from maso.errors import ParameterError
        from maso.regions._certificate import verify

        caller = "RegionSet.verify"
        n_checked = check_int(n_points, "n_points", caller, minimum=0)
        atol_checked = check_float(atol, "atol", caller, minimum=0.0, maximum=1.0, strict=True)
        assert n_checked is not None and atol_checked is not None
        try:
            gen = np.random.default_rng(rng)
        except (TypeError, ValueError) as e:
            raise ParameterError(f"The 'rng' parameter of RegionSet.verify must be a numpy Generator, a "
                                 f"non-negative integer seed or None. Got {rng!r} ({e}).") from None
        return verify(self, n_points=n_checked, atol=atol_checked, rng=gen)
