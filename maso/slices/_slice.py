"""Exact 2-D slices: a plane through the input space and the network's regions on it, as polygons."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from maso import kernels as _kernels
from maso._validation import (
    check_bool,
    check_checkpoint_path,
    check_device,
    check_int,
    memory_budget,
    outside_maso,
    readonly,
    real_vector,
    sealed,
)
from maso.core._program import affine_nodes, chunks, evaluate, params, require_piecewise_linear
from maso.core.affine import Affine
from maso.core.network import Network
from maso.errors import (
    CheckpointError,
    DomainError,
    MemoryBudgetWarning,
    NumericalWarning,
    ParameterError,
    ParameterShapeError,
    ShapeError,
)
from maso.regions._checkpoint import _cells_digest, _Checkpoint
from maso.slices._anchored import Anchored, DenseChain, _two_piece, batch_limit, piece_gap, piece_scores
from maso.slices._mesh import Mesh, MeshDegeneracy
from maso.slices._resume import pack_tile, tile_header, unpack_tile
from maso.slices._tiles import join_cells, join_tiles, join_tolerance, row_ids, tile_grid

__all__ = ["DEFAULT_SLICE_TOL", "Plane", "SliceCells", "SliceRegion", "SliceRegions", "slice_regions"]

DEFAULT_SLICE_TOL = 1e-12
"""Default relative snapping tolerance of the mesh path (see [`slice_regions`][maso.slice_regions]), and of
the ties between outputs in `SliceRegions.argmax_cells`."""


@dataclass(frozen=True, eq=False)
class Plane:
    """The affine plane ``(s, t) -> origin + s * u + t * v`` in a network's input space.

    Parameters
    ----------
    origin, u, v : array, all of one shape (the network's input shape, or flattened)
        ``u`` and ``v`` must be linearly independent.

    Examples
    --------
    >>> import numpy as np, maso
    >>> plane = maso.Plane.through_points(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 2.0, 0]))
    >>> plane(np.array([0.5, 0.5]))
    array([0.5, 1. , 0. ])
    >>> plane.coordinates(np.array([0.5, 1.0, 0.0]))
    array([0.5, 0.5])
    """

    origin: Any
    u: Any
    v: Any

    def __post_init__(self) -> None:
        o, u, v = (readonly(real_vector(a, name, "Plane"), dtype=np.float64)
                   for a, name in ((self.origin, "origin"), (self.u, "u"), (self.v, "v")))
        if not (o.shape == u.shape == v.shape) or o.size == 0:
            raise ShapeError(f"Plane needs origin, u and v of one non-empty shape. Got {o.shape}, {u.shape}, {v.shape}.")
        su, sv = float(np.abs(u).max()), float(np.abs(v).max())
        if su == 0 or sv == 0:
            raise DomainError(f"Plane needs linearly independent directions u and v; {'u' if su == 0 else 'v'} is zero.")
        # Judge independence on the directions scaled to unit max-norm: the test is then scale-free (1e-200 and
        # 1e200 directions are as independent as unit ones) and the Gram determinant cannot overflow.
        a, c = u.ravel() / su, v.ravel() / sv
        aa, cc, ac = float(a @ a), float(c @ c), float(a @ c)
        if aa * cc - ac * ac <= 1e-12 * aa * cc:
            raise DomainError("Plane needs linearly independent directions u and v (they are parallel: the sine of "
                              f"their angle is {math.sqrt(max(0.0, 1 - ac * ac / (aa * cc))):.1e}).")
        object.__setattr__(self, "origin", o)
        object.__setattr__(self, "u", u)
        object.__setattr__(self, "v", v)

    @classmethod
    def through_points(cls, a: Any, b: Any, c: Any) -> Plane:
        """The plane through three inputs, with ``a``, ``b``, ``c`` at ``(0, 0)``, ``(1, 0)`` and ``(0, 1)``.

        Examples
        --------
        >>> plane = maso.Plane.through_points(np.zeros(2), np.array([2.0, 0]), np.array([0, 3.0]))
        >>> plane(np.array([[1.0, 0.0], [0.0, 1.0]]))
        array([[2., 0.],
               [0., 3.]])
        """
        a, b, c = (real_vector(x, name, "Plane.through_points") for x, name in ((a, "a"), (b, "b"), (c, "c")))
        if not (a.shape == b.shape == c.shape):
            raise ShapeError(f"through_points needs three points of one shape. Got {a.shape}, {b.shape}, {c.shape}.")
        return cls(a, b - a, c - a)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of a point of the plane (the network's input shape)."""
        return tuple(self.origin.shape)

    @property
    def directions(self) -> np.ndarray:
        """``(2, D)``: ``u`` and ``v`` flattened."""
        return np.stack([self.u.ravel(), self.v.ravel()])

    def __call__(self, coords: Any) -> np.ndarray:
        """Points of the plane: ``coords`` of shape ``(..., 2)`` to ``(..., *shape)``."""
        st = real_vector(coords, "coords", "Plane.__call__")
        if st.shape[-1:] != (2,):
            raise ShapeError(f"Plane coordinates need a last axis of length 2. Got shape {st.shape}.")
        flat = self.origin.ravel() + st @ self.directions
        return flat.reshape(*st.shape[:-1], *self.shape)

    def coordinates(self, x: Any) -> np.ndarray:
        """Plane coordinates of the orthogonal projections of points ``x`` (``(*shape)`` or ``(n, *shape)``)."""
        x = real_vector(x, "x", "Plane.coordinates")
        single = x.shape == self.shape
        if not single and x.shape[1:] != self.shape:
            raise ShapeError(f"coordinates needs points of shape {self.shape} or (n, *{self.shape}). Got {x.shape}.")
        flat = x.reshape(1 if single else len(x), self.origin.size)
        # normal equations on the directions scaled to unit max-norm (no overflow for huge or tiny directions)
        scale = np.abs(self.directions).max(axis=1)
        U = self.directions / scale[:, None]
        st = np.linalg.solve(U @ U.T, U @ (flat - self.origin.ravel()).T).T / scale
        return st[0] if single else st


@dataclass(frozen=True, eq=False)
class SliceRegion:
    """One region of a slice.

    Attributes
    ----------
    index : int
    code : ndarray of shape (n_units,)
    polygon : ndarray of shape (k, 2)
        Vertices in plane coordinates, counter-clockwise.
    area : float
    interior_point : ndarray of shape (2,)
    affine : Affine
        The network on the region as a map of the plane coordinates: ``A`` ``(output_dim, 2)``, ``b``.
    neighbours : tuple of int
        Regions sharing an edge with this one.
    """

    index: int
    code: np.ndarray
    polygon: np.ndarray
    area: float
    interior_point: np.ndarray
    affine: Affine
    neighbours: tuple[int, ...]

    def __repr__(self) -> str:
        # one line: the arrays (a code of thousands of units, the polygon) are a print(region.code) away
        return (f"SliceRegion(index={self.index}, {len(self.polygon)} vertices, area={self.area:.4g}, "
                f"{len(self.code)} units, {self.affine.A.shape[0]} outputs, {len(self.neighbours)} neighbours)")


@dataclass(frozen=True, eq=False)
class SliceRegions:
    """The regions of a network on a rectangle of a plane.

    ``repr`` is one line of counts (whatever the number of regions); a Jupyter notebook displays the slice as its
    default [`plot`][maso.slices.SliceRegions.plot]. Where the network's class changes, see
    [`argmax_cells`][maso.slices.SliceRegions.argmax_cells] and
    [`decision_boundary`][maso.slices.SliceRegions.decision_boundary].

    Attributes
    ----------
    plane : Plane
    lo, hi : ndarray of shape (2,)
        The rectangle, in plane coordinates.
    vertices : ndarray of shape (V, 2)
        Polygon vertices in plane coordinates (shared between neighbouring polygons in the mesh method).
    polygon_offsets : ndarray of shape (n + 1,)
    polygon_vertices : ndarray
        Region ``i``'s polygon is ``vertices[polygon_vertices[polygon_offsets[i]:polygon_offsets[i + 1]]]``,
        counter-clockwise, without collinear vertices.
    codes : ndarray of shape (n, n_units)
        Region ``i``'s spline code (as [`Network.codes`][maso.Network.codes] lays it out). Formed on first use
        from the compact form below; a wide network cut by a small window has hundreds of thousands of units of
        which a few hundred differ between regions, so ``codes`` of a big slice of it may not fit in memory (a
        `DomainError` says so): use the compact form then.
    code_columns : ndarray of int, shape (k,)
        The units (columns of ``codes``) on which some two regions differ, increasing.
    varying_codes : ndarray of shape (n, k)
        ``codes[:, code_columns]``; every other column holds one value for all regions (`shared_code`).
    shared_code : ndarray of shape (n_units,)
        The code the regions share outside ``code_columns`` (region 0's code).
    areas : ndarray of shape (n,)
    interior_points : ndarray of shape (n, 2)
    affine : Affine
        Batched: ``A`` ``(n, output_dim, 2)``, ``b`` ``(n, output_dim)``, in plane coordinates (computed on
        first use).
    adjacency : ndarray of shape (k, 2)
        Pairs ``i < j`` of regions sharing an edge (computed on first use).
    method : str
        ``"mesh"`` or ``"lp"``.
    stats : dict
        Counts and timings: ``snapped`` (vertex values set to exactly zero by the tolerance), ``merged``
        (faces merged because they had the same code: spurious max-unit cuts, or rounding), ``slivers``
        (regions thinner than 64 units in the last place of the coordinates, which float64 does not resolve;
        they come with a [`NumericalWarning`][maso.errors.NumericalWarning]), ``min_area``, ``device``,
        ``seconds`` (the whole call) and, for the mesh method, ``values_seconds``: the part of it spent computing
        the network at the mesh's vertices (on ``device``); the rest is the mesh's own work on the CPU, which
        bounds the speed a faster device can give.
    """

    plane: Plane
    lo: np.ndarray
    hi: np.ndarray
    vertices: np.ndarray
    polygon_offsets: np.ndarray
    polygon_vertices: np.ndarray
    code_columns: np.ndarray
    varying_codes: np.ndarray
    shared_code: np.ndarray
    areas: np.ndarray
    interior_points: np.ndarray
    method: str
    stats: dict = field(default_factory=dict)
    _net: Network | None = field(default=None, repr=False)
    _mesh: Mesh | None = field(default=None, repr=False)
    _tol: float = DEFAULT_SLICE_TOL
    _adjacency: np.ndarray | None = field(default=None, repr=False)
    # a tiled slice: per tile its slice and its pieces' regions in this one (see `slice_regions`'s ``tiles``)
    _tiles: tuple[tuple[SliceRegions, np.ndarray], ...] | None = field(default=None, repr=False)
    _grid: tuple[int, int] = (1, 1)
    # argmax_cells by (output, tol): plot, decision_boundary and _repr_png_ all ask for it (seconds on big slices)
    _cells: dict = field(default_factory=dict, repr=False, init=False)

    def __len__(self) -> int:
        return len(self.areas)

    @functools.cached_property
    def codes(self) -> np.ndarray:
        """Full code rows ``(n, n_units)`` (see the class docstring; a `DomainError` where they would need more
        than half the machine's memory)."""
        return sealed(_expand(self.shared_code, self.code_columns, self.varying_codes))

    def _code(self, i: int) -> np.ndarray:
        """Region ``i``'s full code row, without forming the others."""
        row = self.shared_code.copy()
        row[self.code_columns] = self.varying_codes[i]
        return row

    @functools.cached_property
    def affine(self) -> Affine:
        """The network on every region as a map of plane coordinates (batched; see the class docstring)."""
        return _maps(self.network, self.interior_points)

    @functools.cached_property
    def adjacency(self) -> np.ndarray:
        """Pairs ``(k, 2)`` of regions sharing an edge (see the class docstring)."""
        if self._adjacency is not None:
            return self._adjacency
        assert self._mesh is not None
        return sealed(_adjacency(self._mesh.EF, self._mesh.nF))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, i: int) -> SliceRegion:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"region {i} out of range ({n} regions)")
        i %= n
        nb = np.concatenate([self.adjacency[self.adjacency[:, 0] == i, 1], self.adjacency[self.adjacency[:, 1] == i, 0]])
        return SliceRegion(i, readonly(self._code(i)), self.polygon(i), float(self.areas[i]), self.interior_points[i],
                           Affine(self.affine.A[i], self.affine.b[i]), tuple(sorted(int(j) for j in nb)))

    def polygon(self, i: int) -> np.ndarray:
        """Vertices ``(k, 2)`` of region ``i``, counter-clockwise."""
        return self.vertices[self.polygon_vertices[self.polygon_offsets[i]:self.polygon_offsets[i + 1]]]

    def polygons(self) -> list[np.ndarray]:
        """All polygons (as [`polygon`][maso.slices.SliceRegions.polygon] gives them)."""
        return [self.polygon(i) for i in range(len(self))]

    def find(self, coords: Any) -> np.ndarray:
        """Index of the region holding each point (plane coordinates ``(n, 2)``), ``-1`` outside the rectangle.

        A point on an edge gets one of the regions it touches.
        """
        st = np.atleast_2d(np.asarray(coords, dtype=np.float64))
        if st.shape[-1] != 2:
            raise ShapeError(f"find needs plane coordinates of shape (n, 2). Got {np.shape(coords)}.")
        out = np.full(len(st), -1, dtype=np.int64)
        inside = np.all((st >= self.lo) & (st <= self.hi), axis=1)
        if inside.any():
            index = {c.tobytes(): i for i, c in enumerate(self.varying_codes)}
            codes = np.asarray(self.network.codes(st[inside]), dtype=self.shared_code.dtype)
            # a point matches a region only on its whole code: the shared columns too
            rest = np.ones(codes.shape[1], dtype=bool)
            rest[self.code_columns] = False
            shared = np.all(codes[:, rest] == self.shared_code[rest], axis=1)
            varying = np.ascontiguousarray(codes[:, self.code_columns])
            out[inside] = [index.get(c.tobytes(), -1) if ok else -1 for c, ok in zip(varying, shared)]
        return out

    @property
    def network(self) -> Network:
        """The network that was sliced: the codes, maps, plots and decision boundary are its."""
        if self._net is None:
            raise ParameterError("This SliceRegions was made without its network (a record built by hand): "
                                 "codes, maps and plots need the one maso.slice_regions was given.")
        return self._net

    def graph(self):
        """Regions as nodes (attributes ``code``, ``area``), adjacency as edges with the flipped code columns.

        Examples
        --------
        >>> sl = maso.slice_regions(maso.mlp([2, 4, 1], seed=0), lo=(-1, -1), hi=(1, 1))
        >>> sl.graph().number_of_nodes() == len(sl)
        True
        """
        import networkx as nx

        g = nx.Graph()
        codes, cols, varying = self.codes, self.code_columns, self.varying_codes
        for i in range(len(self)):
            g.add_node(i, code=codes[i], area=float(self.areas[i]))
        for i, j in self.adjacency:
            g.add_edge(int(i), int(j), units=cols[np.flatnonzero(varying[i] != varying[j])])
        return g

    def __repr__(self) -> str:
        # a fixed handful of numbers, whatever the number of regions (the dataclass repr printed every array)
        net = self._net
        units = f"{net.n_units} units, {net.output_dim} outputs, " if net is not None else ""
        extra = "".join(f", {k}={self.stats[k]}" for k in ("snapped", "slivers", "merged") if self.stats.get(k))
        if self._tiles is not None:
            extra += f", tiles={self._grid[0]}x{self._grid[1]}"
        return (f"SliceRegions({len(self)} regions on [{self.lo[0]:g}, {self.hi[0]:g}] x [{self.lo[1]:g}, "
                f"{self.hi[1]:g}] of a plane in {self.plane.origin.size}-D, {units}method={self.method!r}{extra})")

    def _repr_png_(self) -> bytes | None:
        """The slice as [`plot`][maso.slices.SliceRegions.plot] draws it by default, as PNG bytes: how Jupyter shows a
        `SliceRegions` inline (``repr`` stays the one-line text).

        Drawn on a figure of its own with the Agg renderer, outside pyplot: no figure is left open, and the
        notebook's own figures are not drawn again. ``None`` (IPython then shows the text) without matplotlib, or
        for slices of more than `_REPR_PNG_MAX_REGIONS` regions, whose drawing would stall the notebook.
        """
        if len(self) > _REPR_PNG_MAX_REGIONS:
            return None
        from maso.plotting import _png

        return _png(self.plot, (5.0, 5.0))

    def argmax_cells(self, output: int | None = None, *, tol: float | None = None) -> SliceCells:
        """The slice cut into pieces on which one output wins: the exact class map, region by region.

        On a region the outputs are affine in the plane coordinates, so the set where output ``k`` wins is the
        region's polygon cut by the lines ``f_k = f_j``: convex, and computed exactly here (in float64) by
        splitting the slice's mesh where each output overtakes the best of the outputs before it. Every piece
        lies in one region and has one class; the pieces tile the rectangle.

        Parameters
        ----------
        output : int, optional
            Classes by the sign of this output instead (class 1 where it is positive, 0 elsewhere). By default
            the class is the argmax of the outputs, or, for a single output, its sign (as ``output=0``).
        tol : float, optional
            The tie tolerance (default: the slice's ``tol``, `DEFAULT_SLICE_TOL`
            unless given to [`slice_regions`][maso.slice_regions]). A difference ``f_r - max_{j<r} f_j`` (or
            the output, for sign classes) whose size at a mesh vertex is at most ``tol`` times the largest
            ``|f|`` over the vertices is taken to be exactly zero: rounding neither cuts slivers along a tie nor
            flips it. Ties go to the lower index, as ``numpy.argmax`` and ``torch.argmax`` break them: a piece
            on which outputs ``j < k`` are equal (within the tolerance) is class ``j``, and for sign classes
            ``f = 0`` is class 0. With ``tol=0`` outputs that differ by less than a few units in the last place
            of their size are told apart by rounding.

        Returns
        -------
        SliceCells
            Polygons, their class (``labels``) and region, areas, and the boundary between classes: exactly the
            mesh edges with pieces of different classes on their two sides.

        Examples
        --------
        >>> net = maso.mlp([2, 8, 8, 3], seed=0)
        >>> sl = maso.slice_regions(net, lo=(-2, -2), hi=(2, 2))
        >>> cells = sl.argmax_cells()
        >>> bool(np.isclose(cells.areas.sum(), 16.0)), len(cells) >= len(sl)
        (True, True)
        >>> x = cells.polygon(0).mean(axis=0)  # a point inside piece 0
        >>> int(net(x).argmax()) == int(cells.labels[0])
        True
        """
        net = self.network
        m = net.output_dim
        if output is not None and (isinstance(output, (bool, np.bool_)) or
                                   not (isinstance(output, (int, np.integer)) and 0 <= output < m)):
            raise ParameterShapeError(f"output must be an int in [0, {m}) (the network has {m} outputs). "
                                      f"Got {output!r}.")
        if tol is None:
            tol = self._tol
        elif isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.integer, np.floating)) or not (
                0 <= float(tol) < 1e-3):
            raise ParameterError(f"The 'tol' parameter of argmax_cells must be a real number in [0, 1e-3). "
                                 f"Got {tol!r}.")
        key = (None if output is None else int(output), float(tol))
        if key in self._cells:
            return self._cells[key]
        if self._tiles is not None:  # tile by tile (each has its mesh), joined along the tile lines
            values = [t._argmax_values(output) for t, _ in self._tiles]
            # one tie floor for all tiles: a tile where the outputs tie exactly would scale it by its own noise
            floor = float(tol) * max(_finite_max_abs(Z) for _, _, Z in values)
            parts = [t._argmax_cut(*v, floor, key) for (t, _), v in zip(self._tiles, values)]
            eps = join_tolerance(self.lo, self.hi, any(t.method == "lp" for t, _ in self._tiles))
            f = join_cells(parts, [r for _, r in self._tiles], self._grid, tile_grid(self.lo, self.hi, self._grid),
                           eps)
            cells = SliceCells(readonly(f["vertices"]), sealed(f["polygon_offsets"]), sealed(f["polygon_vertices"]),
                               sealed(f["labels"]), sealed(f["regions"]), sealed(f["areas"]), readonly(f["boundary"]),
                               parts[0].n_classes, key[0], key[1])
        else:
            mesh, region, Z = self._argmax_values(output)
            # the scale of the outputs themselves, not of each difference: outputs that are equal but for rounding
            # would otherwise be compared with their own noise and cut along it
            cells = self._argmax_cut(mesh, region, Z, float(tol) * _finite_max_abs(Z), key)
        self._cells[key] = cells
        return cells

    def _argmax_values(self, output: int | None) -> tuple[Mesh, np.ndarray, np.ndarray]:
        """A copy of the slice's mesh, its faces' regions, and the outputs (or output ``output``) at its vertices."""
        net = self.network
        mesh, region = self._face_mesh()
        anch = Anchored(net, np.zeros((1, 2)), np.eye(2)[None])
        Z = np.asarray(anch.value(None, mesh.P, net.program.output), dtype=np.float64).reshape(mesh.nV, net.output_dim)
        if output is not None:
            Z = Z[:, [int(output)]]
        return mesh, region, Z

    def _argmax_cut(self, mesh: Mesh, region: np.ndarray, Z: np.ndarray, floor: float,
                    key: tuple[int | None, float]) -> SliceCells:
        """`argmax_cells` on ``mesh`` with outputs ``Z`` at its vertices; differences within ``floor`` are ties."""
        m = self.network.output_dim
        output = key[0]
        mesh.set_values(Z)
        label = np.zeros(mesh.nF, dtype=np.int64)

        def wins(d: np.ndarray) -> np.ndarray:
            """Split the faces on which ``d`` (affine on each) changes sign; True on the faces where it is > 0."""
            nonlocal label, region
            d = np.where(np.abs(d) <= floor, 0.0, d)
            if (d < 0).any() and (d > 0).any():
                mesh.parent = np.arange(mesh.nF)
                mesh.split(np.ascontiguousarray(d))
                label, region = label[mesh.parent], region[mesh.parent]
                d = np.concatenate([d, np.zeros(mesh.nV - len(d))])  # new vertices are on d = 0, exactly
            # the mean over a face's vertices is d at an interior point; no face has both signs any more
            return mesh.face_means(d)[:, 0] > 0

        if Z.shape[1] == 1:
            won = wins(mesh.Z[:, 0].copy())  # (not label[wins(...)]: wins replaces label)
            label[won] = 1
        else:
            for r in range(1, m):
                # on every face one output < r is the largest at all its vertices, so this max is affine there
                Zc = mesh.Z
                won = wins(Zc[:, r] - Zc[:, :r].max(axis=1))
                label[won] = r
        # pieces of one region with one class (cut apart by a line that a later output overtook on both sides)
        # are one convex piece again
        EF = mesh.EF
        f0, f1 = np.maximum(EF[:, 0], 0), np.maximum(EF[:, 1], 0)
        same = (EF >= 0).all(axis=1) & (region[f0] == region[f1]) & (label[f0] == label[f1])
        mesh.parent = region
        mesh.codes = label[:, None]
        mesh.merge(same)
        mesh.compact()
        region, label = mesh.parent.copy(), mesh.codes[:, 0].astype(np.int64)
        offsets, pv, areas, _ = _polygons(mesh.P, mesh.E, mesh.EF, mesh.nF)
        E, EF = mesh.E, mesh.EF
        inner = (EF >= 0).all(axis=1)
        edge = inner & (label[np.maximum(EF[:, 0], 0)] != label[np.maximum(EF[:, 1], 0)])
        cells = SliceCells(readonly(mesh.P.copy()), sealed(offsets), sealed(pv), sealed(label), sealed(region),
                           sealed(areas), readonly(mesh.P[E[edge]]), m if output is None and m > 1 else 2,
                           key[0], key[1])
        return cells

    def _face_mesh(self) -> tuple[Mesh, np.ndarray]:
        """A copy of the slice's mesh and the region of each of its faces (the LP path builds the mesh afresh and
        matches its faces to the regions by code: -1 for a face whose code no region has)."""
        if self._mesh is not None:
            return self._mesh.copy(), np.arange(self._mesh.nF)
        net = self.network
        mesh, _, base, columns = _partition(net, self.lo, self.hi, self._tol)
        codes = _expand(base, columns, mesh.codes).astype(np.int64)
        index = {c.tobytes(): i for i, c in enumerate(np.asarray(self.codes, dtype=np.int64))}
        return mesh, np.array([index.get(c.tobytes(), -1) for c in codes], dtype=np.int64)

    def decision_boundary(self, output: int | None = None) -> np.ndarray:
        """The exact decision boundary on the rectangle as segments ``(k, 2, 2)`` in plane coordinates.

        These are the edges between pieces of different classes of
        [`argmax_cells`][maso.slices.SliceRegions.argmax_cells] (its ``boundary``), split where they cross region
        edges.

        Parameters
        ----------
        output : int, optional
            Give the zero level set of this output (the boundary between where it is positive and where it is
            not). By default: where the argmax of the outputs changes, or, for a single output, its zero level
            set. Ties are broken as ``argmax_cells`` breaks them.

        Examples
        --------
        >>> net = maso.mlp([2, 8, 3], seed=1)
        >>> segs = maso.slice_regions(net, lo=(-2, -2), hi=(2, 2)).decision_boundary()
        >>> segs.shape[1:]
        (2, 2)
        """
        return self.argmax_cells(output).boundary

    def plot(self, **kwargs: Any) -> Any:
        """Draw the slice; see [`plot_slice`][maso.plotting.plot_slice] for the options. Returns the figure.

        Examples
        --------
        >>> sl = maso.slice_regions(maso.mlp([2, 8, 2], seed=0), lo=(-1, -1), hi=(1, 1))
        >>> fig = sl.plot(color="argmax")
        >>> fig.axes[0].get_title()
        '... regions'
        """
        from maso.plotting import plot_slice

        return plot_slice(self, **kwargs)


_REPR_PNG_MAX_REGIONS = 100_000


@dataclass(frozen=True, eq=False)
class SliceCells:
    """A slice cut into convex pieces on each of which one class wins (see
    [`SliceRegions.argmax_cells`][maso.slices.SliceRegions.argmax_cells]).

    Attributes
    ----------
    vertices : ndarray of shape (V, 2)
        Piece vertices in plane coordinates.
    polygon_offsets, polygon_vertices : ndarray
        Piece ``i`` is ``vertices[polygon_vertices[polygon_offsets[i]:polygon_offsets[i + 1]]]``,
        counter-clockwise, without collinear vertices.
    labels : ndarray of int, shape (n,)
        The class of each piece: the winning output, or 1 where the output is positive and 0 elsewhere (one
        output, or ``output`` given).
    regions : ndarray of int, shape (n,)
        The slice region that holds each piece (its affine map is the network's on the piece).
    areas : ndarray of shape (n,)
    boundary : ndarray of shape (k, 2, 2)
        The segments between pieces of different classes: the decision boundary.
    n_classes : int
        Number of classes (outputs; 2 for sign classes).
    output : int or None
        The output whose sign gives the classes, or None for the argmax.
    tol : float
        The tie tolerance used.
    """

    vertices: np.ndarray
    polygon_offsets: np.ndarray
    polygon_vertices: np.ndarray
    labels: np.ndarray
    regions: np.ndarray
    areas: np.ndarray
    boundary: np.ndarray
    n_classes: int
    output: int | None
    tol: float

    def __len__(self) -> int:
        return len(self.labels)

    def polygon(self, i: int) -> np.ndarray:
        """Vertices ``(k, 2)`` of piece ``i``, counter-clockwise."""
        return self.vertices[self.polygon_vertices[self.polygon_offsets[i]:self.polygon_offsets[i + 1]]]

    def polygons(self) -> list[np.ndarray]:
        """All pieces (as `polygon` gives them)."""
        return [self.polygon(i) for i in range(len(self))]

    def class_areas(self) -> np.ndarray:
        """Area of each class, ``(n_classes,)``."""
        return np.bincount(self.labels, weights=self.areas, minlength=self.n_classes)

    def __repr__(self) -> str:
        what = "argmax" if self.output is None else f"sign of output {self.output}"
        return (f"SliceCells({len(self)} pieces in {len(np.unique(self.regions))} regions, {self.n_classes} classes "
                f"({what}), {len(self.boundary)} boundary segments, tol={self.tol:g})")


# ----------------------------------------------------------------------------------------------- the mesh path
def _partition(net: Network, lo: np.ndarray, hi: np.ndarray, tol: float, progress: bool = False,
               max_regions: int | None = None, device: torch.device | None = None, bar: Any = None
               ) -> tuple[Mesh, dict, np.ndarray, np.ndarray]:
    """Refine a mesh of the rectangle by every unit of ``net`` (a 2-D input network), layer by layer.

    Faces carry their codes: a new face inherits its parent's, and when a layer is done each face gets that
    layer's columns from the unit values at its vertex centroid (exact: they are affine on the face).

    Faces hold only the columns of units whose piece varies over the rectangle; the others have one code for
    all faces (a wide network cut by a small window has a few hundred such units among hundreds of thousands).
    Returns the mesh, stats, the code row shared by all faces and the columns that ``mesh.codes`` holds.
    ``bar``: a progress bar to advance by the units (a tiled slice's, over all tiles) instead of one of its own.
    """
    mesh = Mesh(lo, hi)
    vals = _VertexValues(net, mesh, device)
    mesh.codes = np.zeros((1, 0), dtype=net.program.code_dtype)
    base = np.zeros(net.n_units, dtype=net.program.code_dtype)
    held: list[np.ndarray] = []
    stats: dict[str, Any] = {"splits": 0, "merged": 0}
    own_bar = bar is None and progress
    if own_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=net.n_units, desc="slice", unit="unit")
    for g in net.units:
        if bar is not None:
            bar.set_postfix(faces=mesh.nF, refresh=False)
            bar.update(g.size)
        R = g.n_pieces
        with vals.timed():
            vals.prepare(g.node)
            missing, lo_, hi_, win0, varies, D_all = _unit_survey(vals, g.node)
        if R == 2 and not missing.any():
            active = np.flatnonzero((lo_ < 0) & (hi_ > 0))
            base[g.columns] = hi_ > 0  # units that cut nothing
            at = _hold(mesh, held, g.offset + active)
            parts = _column_chunks(active, mesh.nV, 2)  # bounded memory on wide layers
            for i, part in enumerate(parts):
                # the survey's scores are still those of the mesh's vertices before its first cut
                with vals.timed():
                    D = (_host(D_all.index_select(1, torch.from_numpy(part).to(D_all.device)))
                         if i == 0 and D_all is not None else _gaps_of(vals, g.node, part))
                mesh.set_values(D)
                cut, over = mesh.cut_columns(tol, max_regions)
                stats["splits"] += cut
                if over:
                    _check_budget(mesh, max_regions)
                # values within the snapping tolerance of 0 are ties: lowest piece
                scale = np.abs(mesh.Z).max(axis=0)
                mesh.codes[:, at:at + len(part)] = mesh.face_means(mesh.Z) > tol * scale
                at += len(part)
            with vals.timed():
                vals.advance(g.node)
            continue
        # units with more pieces: cut where piece r overtakes the best of pieces < r, then merge the faces
        # that these cuts separated but that have the same winner (the cut was not a boundary of the max)
        base[g.columns] = win0
        active = np.flatnonzero(varies)
        at = _hold(mesh, held, g.offset + active)
        for part in _column_chunks(active, mesh.nV, R):
            mesh.parent = np.arange(mesh.nF)
            Q = mesh.value_room(len(part) * R).reshape(mesh.nV, len(part), R)
            with vals.timed():
                _scores_of(vals, g.node, part, out=Q)
            valid = ~missing[part]
            Q[:, ~valid] = 0.0  # (missing pieces: never cut, never win)
            limit = 4 * max_regions if max_regions else None  # faces before merging
            cut, over = mesh.cut_pieces(R, valid, tol, limit)
            stats["splits"] += cut
            if over:
                _check_budget(mesh, limit)
            fcode = mesh.piece_codes(R, valid, tol)
            mesh.codes[:, at:at + len(part)] = fcode
            at += len(part)
            EF = mesh.EF
            f0, f1 = EF[:, 0], EF[:, 1]
            same = (mesh.parent[f0] == mesh.parent[f1]) & (fcode[f0] == fcode[f1]).all(axis=1)
            mesh.merge(same)
            mesh.compact()
        with vals.timed():
            vals.advance(g.node)
    mesh.compact()
    mesh.on_compact = None  # the carried values are done with
    stats["values_seconds"] = vals.seconds
    stats["carry_stopped"] = vals.anch is not None and not vals.carry  # (held values outgrew the memory budget)
    if own_bar:
        bar.close()
    # faces with one code on both sides of an edge: only rounding can leave them apart
    EF = mesh.EF
    same = (mesh.codes[EF[:, 0]] == mesh.codes[EF[:, 1]]).all(axis=1)
    stats["merged"] = mesh.merge(same)
    mesh.compact()
    # the last layer's values are done with: the slice keeps its mesh (for argmax_cells, which sets its own
    # values), and a tiled slice keeps one per tile, so this would be vertices x units floats held for nothing
    mesh.set_values(np.zeros((mesh.nV, 0)))
    return mesh, stats, base, (np.concatenate(held) if held else np.zeros(0, dtype=np.int64))


class _Carried:
    """Values of some nodes at every mesh vertex: per node, one float64 tensor ``(vertices, width)`` on the slice's
    device (a node's tensor is kept as it is while the held set changes around it: no copy of the others).

    The mesh's cuts only record where each new vertex comes from (`Mesh.sources`); `rows` brings the tensors up
    to date by the same interpolation, ``H[a] + t * (H[b] - H[a])`` in three separate operations (no fused
    multiply-add, so every device rounds alike), for all new vertices of one generation at once. Compaction of
    the mesh drops the rows of the vertices it drops.
    """

    def __init__(self, mesh: Mesh) -> None:
        self.mesh, self.n = mesh, mesh.nV
        self._rows: dict[int, torch.Tensor] = {}
        mesh.settle()
        mesh.on_compact = self._compact

    def __contains__(self, node: int) -> bool:
        return node in self._rows

    def nodes(self) -> list[int]:
        return list(self._rows)

    def put(self, node: int, values: torch.Tensor) -> None:
        """Hold ``node``'s values: rows ``:nV`` of ``values`` ``(rows, width)`` at the mesh's vertices as they are
        now; the rows after them are room for new vertices."""
        self.rows()
        assert len(values) >= self.n  # values at the vertices the others are up to date with
        self._rows[node] = values

    def drop(self, node: int) -> None:
        del self._rows[node]

    def rows(self) -> dict[int, torch.Tensor]:
        """Every held node's values at the mesh's vertices ``(nV, width)``, interpolated onto the vertices added
        since."""
        mesh, V = self.mesh, self.mesh.nV
        if V > self.n:
            src, tt, gen = mesh.sources
            new = np.arange(self.n, V)
            g = gen[self.n:V]
            for j, H in self._rows.items():
                if V > len(H):
                    grown = torch.empty((_room(V), H.shape[1]), dtype=H.dtype, device=H.device)
                    grown[:self.n] = H[:self.n]
                    self._rows[j] = grown
            steps = []  # the index and weight tensors, moved to the device once for all held nodes
            dev = next(iter(self._rows.values())).device if self._rows else torch.device("cpu")
            for level in np.unique(g):  # a generation reads only vertices of earlier ones
                w = new[g == level]
                steps.append(tuple(torch.from_numpy(np.ascontiguousarray(v)).to(dev)
                                   for v in (src[w, 0], src[w, 1], tt[w][:, None], w)))
            for H in self._rows.values():
                for a, b, t, w_t in steps:
                    start = H.index_select(0, a)
                    H[w_t] = H.index_select(0, b).sub_(start).mul_(t).add_(start)
            self.n = V
            mesh.settle()
        return {j: H[:V] for j, H in self._rows.items()}

    def _compact(self, used: np.ndarray) -> None:
        rows = self.rows()
        kept = torch.from_numpy(np.flatnonzero(used))
        for j, H in rows.items():
            self._rows[j] = H[kept.to(H.device)]
        self.n = int(np.count_nonzero(used))


class _VertexValues:
    """Node values at the mesh's vertices, by rows.

    MLPs on the CPU: NumPy from the vertex coordinates (`DenseChain`). Other graphs, and every graph on a GPU:
    torch on the slice's device, in float64, from seeds: the affine head from the plane's anchors, and the later
    nodes that are still read, held at every vertex (`_Carried`, on the device) and interpolated onto new
    vertices as the mesh's cuts make them. Carrying is exact: a node is held only once every spline layer before
    it has cut the mesh, so it is affine on every face. Each layer is then computed once per vertex, instead of
    from the head again for every later layer. Holding stops, and values are recomputed from the head, when the
    held values (with room to grow) would outgrow the device's memory budget.

    `value` gives NumPy arrays on the DenseChain path and tensors on the device otherwise.
    """

    def __init__(self, net: Network, mesh: Mesh, device: torch.device | None = None) -> None:
        self.net, self.mesh = net, mesh
        self.device = torch.device("cpu") if device is None else device
        self.chain = DenseChain.of(net) if self.device.type == "cpu" and _DENSE_CHAIN else None
        self.anch = None if self.chain is not None else Anchored(net, np.zeros((1, 2)), np.eye(2)[None],
                                                                  self.device)
        self.carried: _Carried | None = None  # the held nodes' values
        self.seconds = 0.0  # spent computing vertex values (see `timed`)
        self._timing = False
        self.carry = self.anch is not None
        if not self.carry:
            return
        self._affine = affine_nodes(net.program)  # the anchors give these
        self._size = [math.prod(n.shape) for n in net.nodes]
        # per node: the last node that reads it on the way to a spline layer (the output is never needed here)
        useful = {g.node for g in net.units}
        for i in range(len(net.nodes) - 1, -1, -1):
            if i in useful:
                useful.update(net.nodes[i].inputs)
        self._last_need = [-1] * len(net.nodes)
        for i in sorted(useful):
            for j in net.nodes[i].inputs:
                self._last_need[j] = max(self._last_need[j], i)

    @contextlib.contextmanager
    def timed(self):
        """Add the time of the block to `seconds`, with the device's queued work finished (a GPU runs
        asynchronously: without the wait its work would be counted where it is next read)."""
        if self._timing:  # nested (a compaction inside a timed block): counted once, by the outer block
            yield
            return
        start, self._timing = time.perf_counter(), True
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds += time.perf_counter() - start
            self._timing = False

    def value(self, rows: slice, node: int) -> Any:
        """Values ``(n, *shape)`` of ``node`` at the vertices ``rows`` (NumPy, or a tensor on the device)."""
        P = self.mesh.P[rows]
        if self.chain is not None:
            return self.chain.value(None, P, node)
        assert self.anch is not None  # the anchors stand in for a missing chain
        if self.carried is None:
            return self.anch.tensor(None, P, node)
        return self._many(rows, (node,))[node]

    def scores(self, rows: slice, node: int) -> Any:
        """Piece scores ``(n, U, R)`` of spline node ``node`` at the vertices ``rows``."""
        return piece_scores(self.net, node, self.value(rows, self.net.nodes[node].inputs[0]))

    def _many(self, rows: slice, nodes: tuple[int, ...], into: dict[int, torch.Tensor] | None = None
              ) -> dict[int, torch.Tensor]:
        """Values of ``nodes`` at the vertices ``rows``, from the held nodes and the anchors; written block by
        block into the flat tensors ``into`` (``(n, width)`` each) where given, else concatenated."""
        net, anch = self.net, self.anch
        assert anch is not None  # values are held only when carrying, which needs the anchors
        out: dict[int, list[torch.Tensor]] = {j: [] for j in nodes}
        P = self.mesh.P[rows]
        H = {j: h[rows] for j, h in self.carried.rows().items()} if self.carried is not None else {}
        need = set(nodes)  # the head nodes to form from the anchors: only those the held ones do not cut off
        for i in range(max(nodes), -1, -1):
            if i in need and i not in H and i not in anch.base:
                need.update(net.nodes[i].inputs)
        with torch.no_grad():
            for sl in chunks(len(P), anch.per_sample, batch_limit(self.device)):
                seeds = anch.seeds(None, P[sl], [j for j in anch.base if j in need])
                for j, h in H.items():
                    block = h[sl]
                    seeds[j] = block.reshape(len(block), *net.nodes[j].shape)
                for j, y in evaluate(net.program, seeds, nodes).items():
                    if into is not None:
                        into[j][sl] = y.reshape(len(y), -1)
                    else:
                        out[j].append(y)
        if into is not None:
            return into
        empty = {j: torch.zeros((0, *net.nodes[j].shape), dtype=torch.float64, device=self.device) for j in nodes}
        return {j: (v[0] if len(v) == 1 else torch.cat(v)) if v else empty[j] for j, v in out.items()}

    def prepare(self, node: int) -> None:
        """The spline layer ``node`` is about to cut the mesh: hold its input too, so that the survey and the cuts
        read it, and `advance` forms the layer's output from it, without evaluating the layers before it again.
        Exact: the input is affine on every face until this layer cuts them."""
        src = self.net.nodes[node].inputs[0]
        held = self.carried.nodes() if self.carried is not None else []
        if self.carry and src not in held and src not in self._affine:
            self._hold(sorted([*held, src]), optional=True)

    def advance(self, node: int) -> None:
        """The spline layer ``node`` has cut the mesh: hold the non-affine nodes up to it that later nodes read."""
        if not self.carry:
            return
        self._hold([j for j in range(node + 1) if j not in self._affine and self._last_need[j] > node])

    def _hold(self, keep: list[int], optional: bool = False) -> None:
        """Hold the values of the nodes ``keep`` at every vertex (those held already stay as they are, the others
        are evaluated, the rest dropped); where they would not fit in the memory budget, do nothing if
        ``optional`` (a spline layer's input: it is evaluated from the held nodes instead), else stop carrying."""
        held = self.carried.nodes() if self.carried is not None else []
        if sorted(keep) == sorted(held):
            return
        width = sum(self._size[j] for j in set(keep) | set(held))
        rows = _room(self.mesh.nV)
        # the held values, old and new at once while the new are formed (the width is of both), with room to grow
        budget = memory_budget(self.device) if self.device.type == "cuda" else _memory_budget()
        need = rows * width * 8
        if need > (float("inf") if budget is None else budget):
            if optional:
                return
            self.carry, self.carried = False, None  # from here on: from the head at every layer
            assert budget is not None
            tiles = math.ceil(math.sqrt(need / budget)) + 1  # (a tile's mesh grows about with its area)
            warnings.warn(f"The values carried at the slice's {self.mesh.nV:,} mesh vertices would need "
                          f"{need / 2**30:.1f} GiB, more than the memory budget ({budget / 2**30:.1f} GiB on "
                          f"{self.device}): the rest of this slice recomputes every layer from the plane's anchors, "
                          f"which is slower (same result). slice_regions(..., tiles={tiles}) would bound the memory "
                          "by one tile's mesh.", MemoryBudgetWarning, stacklevel=outside_maso())
            self.mesh.on_compact = None
            return
        if self.carried is None:
            self.carried = _Carried(self.mesh)
            self.mesh.on_compact = self._compact
        new = tuple(j for j in keep if j not in held)
        if new:
            V = self.mesh.nV
            room = {j: torch.empty((rows, self._size[j]), dtype=torch.float64, device=self.device) for j in new}
            self._many(slice(None), new, {j: r[:V] for j, r in room.items()})
            for j in new:
                self.carried.put(j, room[j])
        for j in held:  # (after the new values: they may be computed from these)
            if j not in keep:
                self.carried.drop(j)


    def _compact(self, used: np.ndarray) -> None:
        """The mesh drops vertices: so do the held values (device work, timed as such)."""
        assert self.carried is not None  # the hook is set with them
        with self.timed():
            self.carried._compact(used)


def _room(n: int) -> int:
    """Rows to allocate for the values of ``n`` vertices: half as many again for the vertices of the next cuts
    (a tensor that outgrows them is copied into a larger one). A mesh's growth per layer is mostly far less."""
    return n + n // 2 + 64


_DENSE_CHAIN = True  # MLPs on the CPU take the NumPy chain (tests turn it off to run them through torch)


def _host(x: Any) -> np.ndarray:
    """A float64 NumPy array of ``x`` (a tensor on any device, or an array)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _hold(mesh: Mesh, held: list[np.ndarray], columns: np.ndarray) -> int:
    """Give every face room for the code columns ``columns`` (appended to ``held``); returns where they start."""
    start = mesh.codes.shape[1]
    if len(columns):
        codes = np.zeros((mesh.nF, start + len(columns)), dtype=mesh.codes.dtype)
        codes[:, :start] = mesh.codes
        mesh.codes = codes
        held.append(columns)
    return start


def _expand(base: np.ndarray, columns: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Full code rows ``(n, n_units)`` from the shared row and the columns ``held`` ``(n, len(columns))``."""
    need = len(held) * base.size * base.itemsize
    if need > _memory_budget():
        raise DomainError(f"The full codes of {len(held):,} regions of {base.size:,} units would need "
                          f"{need / 2**30:.1f} GiB. Use SliceRegions.varying_codes and code_columns (the units on "
                          "which regions differ), a smaller window (lo, hi) or a sub-network with fewer units.")
    codes = np.empty((len(held), base.size), dtype=base.dtype)
    codes[:] = base
    codes[:, columns] = held
    return codes


def _compact(base: np.ndarray, columns: np.ndarray, held: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The compact codes: the columns on which some two rows differ (increasing), the rows there, and the shared
    row (the first row's code, ``base`` where nothing is held)."""
    shared = base.copy()
    if not len(held):
        return np.zeros(0, dtype=np.int64), held.reshape(0, 0), shared
    shared[columns] = held[0]
    differ = np.any(held != held[0], axis=0)
    order = np.argsort(columns[differ], kind="stable")
    return columns[differ][order], np.ascontiguousarray(held[:, differ][:, order]), shared


def _memory_budget() -> float:
    """Half the machine's physical memory (in bytes), or infinity where the platform does not say."""
    try:
        return 0.5 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return float("inf")


def _check_budget(mesh: Mesh, limit: int | None) -> None:
    if limit is not None and mesh.nF > limit:
        raise DomainError(f"The slice has more than {limit:,} faces so far; memory grows with them. Use a smaller "
                          "window (lo, hi) or raise max_regions.")


_BLOCK = 1 << 23  # floats per block of vertex values (64 MiB): keeps wide layers in bounded memory


def _row_chunks(n: int, per_row: int, device: torch.device | None = None) -> list[slice]:
    """Row blocks of ``n`` vertices holding ``per_row`` numbers each: `_BLOCK` numbers per block on the CPU, a
    GPU's batch limit (`batch_limit`) there, so that a GPU evaluates thousands of vertices per call."""
    limit = batch_limit(device) if device is not None else None
    size = max(1, max(_BLOCK, limit or 0) // max(1, per_row))
    return [slice(s, min(n, s + size)) for s in range(0, n, size)]


def _column_chunks(units: np.ndarray, n_vertices: int, R: int) -> list[np.ndarray]:
    size = max(1, _BLOCK // max(1, n_vertices * R))
    return [units[s:s + size] for s in range(0, len(units), size)]


def _tensor(x: Any) -> torch.Tensor:
    """``x`` as a tensor (a NumPy array without copying)."""
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def _scores_of(vals: _VertexValues, node: int, units: np.ndarray, out: np.ndarray) -> None:
    """Piece scores ``(V, len(units), R)`` of some units at the vertices, written into ``out``; computed in row
    blocks (on the device; only the units' columns come back)."""
    net = vals.net
    width = net.nodes[net.nodes[node].inputs[0]].shape
    per_row = math.prod(width) + len(units) * net.program.spline_layer(node).n_pieces
    src = net.nodes[node].inputs[0]
    for sl in _row_chunks(vals.mesh.nV, 3 * per_row, vals.device):
        # straight into the host array (from a GPU: one transfer, no intermediate copy)
        torch.from_numpy(out[sl]).copy_(piece_scores(net, node, _tensor(vals.value(sl, src)), units))


def _gap(net: Network, node: int, x: Any) -> torch.Tensor:
    """Two-piece units: a gap ``(V, U)`` with the sign of ``score_1 - score_0``, from the layer's input (for
    ReLU, leaky ReLU and abs the input itself; see `piece_gap`), as a tensor where ``x`` lives."""
    x = _tensor(x)
    if _two_piece(net, node):
        return piece_gap(net, node, x).contiguous()
    Q = piece_scores(net, node, x)
    return Q[:, :, 1] - Q[:, :, 0]


def _gaps_of(vals: _VertexValues, node: int, units: np.ndarray) -> np.ndarray:
    """Gaps ``score_1 - score_0`` ``(V, len(units))`` of two-piece units at the vertices, in row blocks."""
    net = vals.net
    width = net.nodes[net.nodes[node].inputs[0]].shape
    src = net.nodes[node].inputs[0]
    per_row = math.prod(width) + 2 * len(units)
    cols = torch.from_numpy(units).to(vals.device)
    return np.concatenate([_host(_gap(net, node, vals.value(sl, src)).index_select(1, cols))
                           for sl in _row_chunks(vals.mesh.nV, 3 * per_row, vals.device)])


def _unit_survey(vals: _VertexValues, node: int):
    """Per unit, over all vertices: missing pieces, range of the two-piece gap, the winner at vertex 0 and
    whether the winner varies (a unit that never changes piece over a face's vertices cuts nothing).

    Reductions run where the values are (the device); NumPy vectors of one entry per unit come back. The last
    value is, for two-piece units, their gaps at all vertices as a tensor when one block held them (else None).
    """
    net = vals.net
    V = vals.mesh.nV
    width = math.prod(net.nodes[net.nodes[node].inputs[0]].shape)
    if _two_piece(net, node):  # no piece is ever missing: gaps suffice
        src = net.nodes[node].inputs[0]
        chunks_ = _row_chunks(V, 3 * width * 2, vals.device)
        lo = hi = D = win0 = None
        for sl in chunks_:
            D = _gap(net, node, vals.value(sl, src))
            if lo is None or hi is None:  # the first block (they are set together)
                lo, hi = D.amin(dim=0), D.amax(dim=0)
                win0 = D[0] > 0  # ties go to the lower piece
            else:
                lo, hi = torch.minimum(lo, D.amin(dim=0)), torch.maximum(hi, D.amax(dim=0))
        assert lo is not None and hi is not None and win0 is not None  # a mesh has vertices: one block at least
        lo_, hi_ = _host(lo), _host(hi)
        varies = ~((hi_ <= 0) | (lo_ > 0))  # some vertex on each side of the tie-breaking rule
        return (np.zeros((len(lo_), 2), dtype=bool), lo_, hi_, _host(win0).astype(np.int64), varies,
                D if len(chunks_) == 1 else None)
    layer = net.program.spline_layer(node)
    if layer.n_pieces > 2:
        # which units change piece: from the layer's own codes (what Network.codes gives), not from a stack of
        # every unit's scores at every vertex (a 3x3 max-pool of a 40,768-wide input: 9 scores per unit)
        src = net.nodes[node].inputs[0]
        p = params(net.program, vals.device, torch.float64)[node]
        in_shape = net.nodes[src].shape
        first: torch.Tensor | None = None
        changes: torch.Tensor | None = None
        x0: torch.Tensor | None = None
        with torch.no_grad():
            for sl in _row_chunks(V, 3 * width, vals.device):
                x = _tensor(vals.value(sl, src))
                icode = layer.forward(x, p, True)[1]
                assert icode is not None  # asked for
                icode = icode.reshape(len(icode), -1)
                if first is None or changes is None:
                    first, x0 = icode[:1], x[:1]
                    changes = torch.zeros(icode.shape[1], dtype=torch.bool, device=icode.device)
                changes |= (icode != first).any(dim=0)
            assert first is not None and changes is not None and x0 is not None  # a mesh has vertices
            first_code = layer.public_code(first.reshape(1, *net.nodes[node].shape), in_shape).reshape(-1)
            absent = ~torch.isfinite(piece_scores(net, node, x0)[0])
        U = int(changes.shape[0])
        return (_host(absent), np.full(U, np.nan), np.full(U, np.nan), _host(first_code).astype(np.int64),
                _host(changes), None)
    lo_t: torch.Tensor | None = None
    hi_t: torch.Tensor | None = None
    win_t: torch.Tensor | None = None
    vary_t: torch.Tensor | None = None
    miss_t: torch.Tensor | None = None
    chunks_ = _row_chunks(V, 3 * width * max(2, layer.n_pieces), vals.device)
    Q: torch.Tensor | None = None
    for sl in chunks_:
        Q = _tensor(vals.scores(sl, node))
        if miss_t is None or lo_t is None or hi_t is None or vary_t is None or win_t is None:  # block 1
            miss_t = ~torch.isfinite(Q[0])
            win_t = torch.where(miss_t[None], -torch.inf, Q[:1]).argmax(dim=2)[0]
            U = Q.shape[1]
            lo_t = torch.full((U,), torch.inf, dtype=Q.dtype, device=Q.device)
            hi_t = torch.full((U,), -torch.inf, dtype=Q.dtype, device=Q.device)
            vary_t = torch.zeros(U, dtype=torch.bool, device=Q.device)
        if Q.shape[2] == 2:
            Dq = Q[:, :, 1] - Q[:, :, 0]
            lo_t, hi_t = torch.minimum(lo_t, Dq.amin(dim=0)), torch.maximum(hi_t, Dq.amax(dim=0))
        win = torch.where(miss_t[None], -torch.inf, Q).argmax(dim=2)
        vary_t |= (win != win_t).any(dim=0)
    assert Q is not None and miss_t is not None and lo_t is not None and hi_t is not None  # one block at least
    assert win_t is not None and vary_t is not None
    gaps = Q[:, :, 1] - Q[:, :, 0] if len(chunks_) == 1 and Q.shape[2] == 2 else None
    return _host(miss_t), _host(lo_t), _host(hi_t), _host(win_t), _host(vary_t), gaps


def _polygons(P: np.ndarray, E: np.ndarray, EF: np.ndarray, F: int):
    """Counter-clockwise vertex lists of the faces (CSR), each from its smallest vertex index, without collinear
    vertices; areas; vertex means (inside: the faces are convex)."""
    if _kernels.polygons is not None:  # compiled: walks the boundaries instead of two sorts
        return _kernels.polygons(np.ascontiguousarray(P), np.ascontiguousarray(E), np.ascontiguousarray(EF), F)
    pairs = []
    for j in (0, 1):
        m = EF[:, j] >= 0
        for k in (0, 1):
            pairs.append(EF[m, j] * len(P) + E[m, k])
    keys = np.unique(np.concatenate(pairs))
    f, v = keys // len(P), keys % len(P)
    counts = np.bincount(f, minlength=F)
    cen = np.stack([np.bincount(f, P[v, 0], F), np.bincount(f, P[v, 1], F)], axis=1) / counts[:, None]
    ang = np.arctan2(P[v, 1] - cen[f, 1], P[v, 0] - cen[f, 0])
    order = np.lexsort((ang, f))
    f, v = f[order], v[order]
    start = np.concatenate([[0], np.cumsum(counts)])[:-1]
    pos = np.arange(len(f)) - start[f]
    prev = start[f] + (pos - 1) % counts[f]
    nxt = start[f] + (pos + 1) % counts[f]
    a = P[v] - P[v[prev]]
    b = P[v[nxt]] - P[v]
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    keep = np.abs(cross) > 1e-12 * np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    kept = np.bincount(f[keep], minlength=F)
    keep |= (kept < 3)[f]  # never reduce a (numerically flat) face below a triangle
    f, v = f[keep], v[keep]
    counts = np.bincount(f, minlength=F)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    start = offsets[:-1]
    pos = np.arange(len(f)) - start[f]
    # rotate each cycle to start at its smallest vertex index (a canonical form the compiled walk shares)
    lowest = np.minimum.reduceat(v, start[counts > 0]) if len(v) else v
    low = np.zeros(F, dtype=np.int64)
    low[counts > 0] = lowest
    shift = np.zeros(F, dtype=np.int64)
    at_low = v == low[f]
    shift[f[at_low]] = pos[at_low]
    perm = np.empty(len(v), dtype=np.int64)
    perm[start[f] + (pos - shift[f]) % counts[f]] = np.arange(len(v))
    v = v[perm]
    nxt = start[f] + (pos + 1) % counts[f]
    x, y = P[v, 0], P[v, 1]
    # (relative to each face's first vertex, as the compiled walk: see there)
    rx, ry = x - x[start[f]], y - y[start[f]]
    areas = 0.5 * np.bincount(f, rx * ry[nxt] - rx[nxt] * ry, F)
    inner = np.stack([np.bincount(f, x, F), np.bincount(f, y, F)], axis=1) / counts[:, None]
    return offsets, v, areas, inner


def _check_rectangle(lo: Any, hi: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        lo = real_vector(lo, "lo", "slice_regions", error=DomainError).reshape(-1)
        hi = real_vector(hi, "hi", "slice_regions", error=DomainError).reshape(-1)
    except DomainError as e:
        raise DomainError(f"The rectangle needs finite lo < hi in both coordinates: {e}") from None
    if lo.shape != (2,) or hi.shape != (2,):
        raise DomainError(f"lo and hi must be plane coordinates (s, t). Got shapes {lo.shape} and {hi.shape}.")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))) or np.any(hi <= lo):
        raise DomainError(f"The rectangle needs finite lo < hi in both coordinates. Got lo={lo}, hi={hi}.")
    return lo, hi


def slice_regions(
    net: Network,
    plane: Plane | None = None,
    lo: Any = (-0.5, -0.5),
    hi: Any = (1.5, 1.5),
    *,
    tol: float = DEFAULT_SLICE_TOL,
    method: str = "mesh",
    progress: bool | None = None,
    max_regions: int | None = 2_000_000,
    device: Any = None,
    tiles: int | tuple[int, int] = 1,
    checkpoint: str | os.PathLike | None = None,
) -> SliceRegions:
    """The exact regions of ``net`` on the rectangle ``[lo, hi]`` of a plane, as polygons.

    The plane is folded into the network's first layer ([`Network.restrict`][maso.Network.restrict]), so a slice of a
    40,000-dimensional input costs what a 2-D network costs. With ``method="mesh"`` (default) a planar mesh is
    refined unit by unit: edges are split where a unit's pre-activation changes sign, faces between the two
    new vertices; max-pool and maxout units are cut piece by piece and the faces a non-boundary cut separated are
    merged again. No LP is solved. ``method="lp"`` runs [`maso.enumerate_regions`][] on the restricted network
    instead (slower, for cross-checks).

    Exactness: the mesh computes in float64. Vertex values within ``tol`` times the unit's largest value over
    the mesh of zero are taken to be exactly zero, so boundaries through a vertex, duplicated units and lines
    through a corner give exact counts instead of zero-area slivers; the number of values snapped is in
    ``stats["snapped"]``. Faces that end up with identical codes on both sides of an edge are merged (counted
    in ``stats["merged"]``). If rounding ever breaks a face's convexity the slice is recomputed with the LP
    method and a [`NumericalWarning`][maso.errors.NumericalWarning] says so.

    Parameters
    ----------
    net : Network
    plane : Plane, optional
        Required unless the network's input is 2-D (then the plane is the input space itself).
    lo, hi : pair of float
        The rectangle in plane coordinates. The defaults frame the three points of
        [`Plane.through_points`][maso.Plane.through_points].
    tol : float, default=1e-12
        Relative snapping tolerance of the mesh method (``tol`` of the LP enumerator for ``method="lp"``,
        then in plane units).
    method : {"mesh", "lp"}
    progress : bool, optional
        Show a progress bar over the units (default: when stderr is a terminal and the network has at least
        1,000 units).
    max_regions : int or None, default=2,000,000
        Stop with a [`DomainError`][maso.errors.DomainError] once the mesh has more faces than this (memory
        grows with them); ``None`` for no limit.
    device : str or torch.device, optional
        Where the network is evaluated at the mesh's vertices (default: the CPU), e.g. ``"cuda"``. New
        vertices are evaluated there in large batches and the values that later layers read are kept there.
        The mesh itself and every exactness decision (signs, snapping, ties) stay on the CPU in float64, and
        vertex values are float64 on every device (a float32 network is evaluated in float64), so a GPU gives
        the same regions and codes as the CPU; vertex coordinates may differ in the last bits, since the
        device's matrix products round differently. MLPs on the CPU use a NumPy evaluator instead of torch.
    tiles : int or pair of int, default=1
        Slice the rectangle as a grid of ``tiles`` by ``tiles`` (or ``tiles[0]`` by ``tiles[1]``) equal tiles,
        one after the other, and join the pieces of each region that the tile lines cut. Memory then grows with
        one tile's mesh: on a wide network the values carried at every vertex (tens of thousands of numbers
        each) outgrow a machine's memory for windows of tens of thousands of regions, and the slice then goes
        on by recomputing every layer from the plane's anchors (``stats["carry_stopped"]`` says so), which is
        many times slower. Pieces with the same code that meet along a tile line are one region: its polygon is
        their convex hull (vertices within the join tolerance, 64 units in the last place of the rectangle's
        coordinates, of their neighbours' line dropped), its area the sum of theirs. Regions, codes, areas
        and adjacency are those of the untiled slice; vertices where a region edge crosses a tile line are
        computed in both tiles and may differ in the last bits. ``max_regions`` applies to each tile.
        ``stats`` adds ``tiles``, ``pieces`` (before joining), ``joined``, ``nonconvex_joins`` (joined
        regions whose hull is larger than their pieces: rounding joined what is not one region) and
        ``duplicate_codes`` (regions that share a code after joining); a `NumericalWarning` says when either is
        not 0. The tiles' warnings are said once per kind.
    checkpoint : path, optional
        Record each finished tile in this file (created if missing), so that a slice that is interrupted
        (Ctrl-C, a kill, a crash, a full disk) loses at most the tile it was on: the same call again reads the
        finished tiles back and slices only the rest (``stats["tiles_resumed"]`` counts them), with the same
        result as a slice that was never interrupted, warnings included. A complete checkpoint is only read (it
        may be read-only); a checkpoint of another slice (another network or plane, window, ``tiles``, ``tol``,
        ``method`` or kind of ``device``: a GPU's products round otherwise than the CPU's), of an enumeration or
        of another maso version is refused with a [`CheckpointError`][maso.errors.CheckpointError] naming what
        differs, and damaged or malformed records are skipped and their tiles sliced again (a
        [`CheckpointWarning`][maso.errors.CheckpointWarning] says so). The file holds each tile's slice and
        mesh: about as much as the slice itself in memory, without the carried values. ``max_regions`` is not
        part of the run: it only stops a tile, so a run it stopped resumes with a larger one. Timings in
        ``stats`` are this call's (``values_seconds`` counts no recorded tile).

    Returns
    -------
    SliceRegions

    Examples
    --------
    >>> import numpy as np, maso
    >>> net = maso.mlp([2, 16, 16, 1], seed=0)
    >>> sl = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    >>> bool(np.isclose(sl.areas.sum(), 4.0))
    True
    >>> bool(sl.find([[0.1, 0.2]])[0] >= 0)
    True
    >>> tiled = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2)
    >>> len(tiled) == len(sl), bool(np.isclose(tiled.areas.sum(), 4.0))
    (True, True)
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "slice.ckpt")
    >>> first = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=path)
    >>> again = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=path)  # read back
    >>> again.stats["tiles_resumed"], len(again) == len(first)
    (4, True)
    """
    start = time.perf_counter()
    if not isinstance(net, Network):
        raise ShapeError(f"slice_regions needs a maso.Network; got {type(net).__name__}.")
    require_piecewise_linear(net.program, "slice_regions")
    identity = plane is None and net.input_shape == (2,)  # the input space itself: nothing to restrict
    if plane is None:
        if net.input_dim != 2:
            raise ShapeError(f"slice_regions needs a Plane for a {net.input_dim}-dimensional input.")
        plane = _input_plane(net.input_shape)
    if not isinstance(plane, Plane):
        raise ShapeError(f"plane must be a maso.Plane; got {type(plane).__name__}.")
    if plane.origin.size != net.input_dim:
        raise ShapeError(f"The plane lives in {plane.origin.size} dimensions; the network's input has {net.input_dim}.")
    lo, hi = _check_rectangle(lo, hi)
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.integer, np.floating)) or not (
            0 <= float(tol) < 1e-3):  # a ParameterError, and a ShapeError as before
        raise ParameterShapeError(f"The 'tol' parameter of slice_regions must be a real number in [0, 1e-3). "
                                  f"Got {tol!r}.")
    tol = float(tol)
    if not isinstance(method, str) or method not in ("mesh", "lp"):
        raise ParameterError(f"The 'method' parameter of slice_regions must be 'mesh' or 'lp'. Got {method!r}.")
    if progress is not None:
        progress = check_bool(progress, "progress", "slice_regions")
    max_regions = check_int(max_regions, "max_regions", "slice_regions", minimum=1, allow_none=True)
    device = check_device(device, "slice_regions")
    grid = _check_tiles(tiles)
    check_checkpoint_path(checkpoint, "slice_regions")
    flat = net if identity else net.restrict(plane.origin.ravel(), plane.directions)
    show = bool(progress if progress is not None else (sys.stderr.isatty() and net.n_units >= 1000))
    if grid == (1, 1) and checkpoint is None:
        result = _slice_rectangle(flat, plane, lo, hi, tol, method, show, max_regions, device)
    else:
        result = _tiled(flat, plane, lo, hi, tol, method, show, max_regions, device, grid, checkpoint)
    result.stats["seconds"] = time.perf_counter() - start
    return result


def _check_tiles(tiles: Any) -> tuple[int, int]:
    pair = tiles if isinstance(tiles, (tuple, list)) else (tiles, tiles)
    if len(pair) != 2:
        raise ParameterError(f"The 'tiles' parameter of slice_regions must be a positive integer or a pair of "
                             f"them. Got {tiles!r}.")
    nx, ny = (check_int(t, "tiles", "slice_regions", minimum=1, maximum=10_000) for t in pair)
    return nx, ny


def _slice_rectangle(flat: Network, plane: Plane, lo: np.ndarray, hi: np.ndarray, tol: float, method: str,
                     show: bool, max_regions: int | None, device: torch.device | None, bar: Any = None,
                     warn_slivers: bool = True) -> SliceRegions:
    """One rectangle of the restricted network, by ``method``; the mesh falls back to LP where rounding breaks it.
    (A tile leaves the slivers' warning to the joined slice, which counts them again.)"""
    if method == "lp":
        return _from_lp(flat, plane, lo, hi, tol or None)
    try:
        return _from_mesh(flat, plane, lo, hi, tol, show, max_regions, device, bar, warn_slivers)
    except MeshDegeneracy:
        warnings.warn("Rounding broke a face of the slice mesh; recomputing with the LP enumerator.",
                      NumericalWarning, stacklevel=outside_maso())
        return _from_lp(flat, plane, lo, hi, None)


def _tiled(flat: Network, plane: Plane, lo: np.ndarray, hi: np.ndarray, tol: float, method: str, show: bool,
           max_regions: int | None, device: torch.device | None, grid: tuple[int, int],
           checkpoint: str | bytes | os.PathLike | None = None) -> SliceRegions:
    """`slice_regions` with ``tiles`` (or a checkpoint): each tile sliced on its own, or read back from the
    checkpoint (one progress bar over all), then joined."""
    tiles = tile_grid(lo, hi, grid)
    ck = _open_checkpoint(checkpoint, flat, tiles, lo, hi, grid, tol, method, device)
    try:  # (closed whatever happens: an open checkpoint is held, and refused to any later call in this process)
        parts, said, resumed = _slice_tiles(flat, plane, tiles, tol, method, show, max_regions, device, ck)
    finally:
        if ck is not None:
            ck.close()
    by_kind: dict[type, list[str]] = {}
    for kind, message in said:
        by_kind.setdefault(kind, []).append(message)
    for kind, told in by_kind.items():  # one warning per kind: the first tile's, and how many said so
        more = f" ({len(told)} warnings of this kind from {len(tiles)} tiles; this is the first.)" if len(told) > 1 else ""
        warnings.warn(told[0] + more, kind, stacklevel=outside_maso())
    if grid == (1, 1):  # one tile, kept in a checkpoint: the slice itself
        parts[0].stats["tiles_resumed"] = resumed
        return parts[0]

    f, joined = join_tiles(parts, grid, tiles, lo, hi)
    own = np.split(f["region"], np.cumsum([len(p) for p in parts])[:-1])  # per tile, its pieces' regions
    result = SliceRegions(plane, readonly(lo), readonly(hi), readonly(f["vertices"]), sealed(f["polygon_offsets"]),
                          sealed(f["polygon_vertices"]), sealed(f["code_columns"]), sealed(f["varying_codes"]),
                          sealed(f["shared_code"]), sealed(f["areas"]), sealed(f["interior_points"]), method, {},
                          flat, None, tol, sealed(f["adjacency"]), tuple(zip(parts, [sealed(r) for r in own])), grid)
    stats = result.stats
    for key in ("splits", "merged", "snapped", "values_seconds"):
        if any(key in p.stats for p in parts):
            stats[key] = sum(p.stats.get(key, 0) for p in parts)
    stats.update(joined, tiles=len(tiles), tiles_resumed=resumed, vertices=len(result.vertices),
                 device=str(torch.device("cpu") if device is None else device),
                 slivers=_count_slivers(result.vertices, result.polygon_offsets, result.polygon_vertices,
                                        result.areas, lo, hi),
                 min_area=float(result.areas.min()) if len(result) else 0.0)
    if method == "mesh":
        stats["carry_stopped"] = any(p.stats.get("carry_stopped", False) for p in parts)
        stats["lp_tiles"] = sum(p.method == "lp" for p in parts)
    if stats["slivers"] and method == "mesh":
        _warn_slivers(stats["slivers"])
    if joined["duplicate_codes"]:
        warnings.warn(f"{joined['duplicate_codes']} slice regions share a code with another region (rounding at a "
                      "near-degenerate vertex, or pieces of one region that the tiles' snapping set apart); compare "
                      "with tiles=1 or method='lp'.", NumericalWarning, stacklevel=outside_maso())
    if joined["nonconvex_joins"]:
        warnings.warn(f"{joined['nonconvex_joins']} regions joined across tile lines have a convex hull larger than "
                      "their pieces (rounding gave two separate faces one code); compare with tiles=1.",
                      NumericalWarning, stacklevel=outside_maso())
    return result


def _open_checkpoint(path: str | bytes | os.PathLike | None, flat: Network, tiles: list[tuple[np.ndarray, np.ndarray]],
                     lo: np.ndarray, hi: np.ndarray, grid: tuple[int, int], tol: float, method: str,
                     device: torch.device | None) -> _Checkpoint | None:
    """The checkpoint of a tiled slice, opened and its plan written (or checked) before any tile is sliced."""
    if path is None:
        return None
    ck = _Checkpoint(os.fspath(path), tile_header(flat, lo, hi, grid, tol, method, device), flat,
                     decode=functools.partial(unpack_tile, n_units=flat.n_units, code_dtype=flat.program.code_dtype,
                                              method=method, tol=tol, lp_tol=DEFAULT_SLICE_TOL))
    try:
        rects = [np.concatenate([a, b]) for a, b in tiles]
        if ck.plan is None:  # the plan: the tiles, one task each
            ck.write_plan(0, rects, list(range(len(rects) + 1)), len(rects), [])
        elif ck.n_tasks != len(rects) or ck.plan["cells"] != _cells_digest(rects):
            raise CheckpointError(f"Checkpoint {ck.name!r} plans {ck.n_tasks} tiles that are not the {len(rects)} "
                                  "tiles its header names (a damaged or crafted file); it is left untouched. Delete "
                                  "it to start over.")
    except BaseException:
        ck.close()
        raise
    return ck


def _recorded_tile(f: dict[str, Any], flat: Network, plane: Plane, lo: np.ndarray, hi: np.ndarray) -> SliceRegions:
    """A tile's slice from its checkpoint record (as `maso.slices._resume.unpack_tile` gives it)."""
    mesh = None
    if f["mesh"] is not None:
        P, E, EF = f["mesh"]
        mesh = Mesh.from_arrays(P, E, EF, f["mesh_faces"], f["stats"].get("snapped", 0))
    stats = dict(f["stats"])
    if "values_seconds" in stats:  # (a timing of the run that sliced it: none of this call's time)
        stats["values_seconds"] = 0.0
    return SliceRegions(plane, readonly(lo), readonly(hi), readonly(f["vertices"]),
                        readonly(f["polygon_offsets"], np.int64), readonly(f["polygon_vertices"], np.int64),
                        readonly(f["code_columns"], np.int64), readonly(f["varying_codes"], f["varying_codes"].dtype),
                        readonly(f["shared_code"], f["shared_code"].dtype), readonly(f["areas"]),
                        readonly(f["interior_points"]), f["method"], stats, flat, mesh, f["tol"],
                        readonly(f["adjacency"], np.int64))


def _slice_tiles(flat: Network, plane: Plane, tiles: list[tuple[np.ndarray, np.ndarray]], tol: float, method: str,
                 show: bool, max_regions: int | None, device: torch.device | None, ck: _Checkpoint | None
                 ) -> tuple[list[SliceRegions], list[tuple[type[Warning], str]], int]:
    """Each tile's slice (sliced, or read back from ``ck``, and then recorded there), the warnings the tiles
    raised (caught, to be said once per kind) and the number of tiles read back. (The caller closes ``ck``.)"""
    bar = None
    if show and method == "mesh":
        from tqdm.auto import tqdm

        bar = tqdm(total=flat.n_units * len(tiles), desc=f"slice ({len(tiles)} tiles)", unit="unit")
    parts: list[SliceRegions] = []
    said: list[tuple[type[Warning], str]] = []
    resumed = 0
    try:
        for k, (t_lo, t_hi) in enumerate(tiles):
            if ck is not None and k in ck.done:
                f = ck.done[k]
                parts.append(_recorded_tile(f, flat, plane, t_lo, t_hi))
                said += f["warnings"]
                resumed += 1
                if bar is not None:
                    bar.update(flat.n_units)
                continue
            # the tile's warnings (merged faces, LP fallbacks, memory) are said once each, at the caller; a tile
            # alone (one tile in a checkpoint) warns of its slivers itself
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                part = _slice_rectangle(flat, plane, t_lo, t_hi, tol, method, False, max_regions, device, bar,
                                        len(tiles) == 1)
            mine = [(w.category, str(w.message)) for w in caught]
            if ck is not None:
                ck.save_record(k, *pack_tile(part, mine), None)
            parts.append(part)
            said += mine
    finally:
        if bar is not None:
            bar.close()
    return parts, said, resumed


@functools.lru_cache(maxsize=8)
def _input_plane(shape: tuple[int, ...]) -> Plane:
    """The input space of a network with a 2-D input, as a plane (immutable: shared)."""
    return Plane(np.zeros(shape), np.eye(2)[0].reshape(shape), np.eye(2)[1].reshape(shape))


def _maps(net: Network, points: np.ndarray) -> Affine:
    if not len(points):
        return Affine(np.zeros((0, net.output_dim, 2)), np.zeros((0, net.output_dim)))
    return net.affine_at(points)


def _adjacency(EF: np.ndarray, F: int) -> np.ndarray:
    inner = (EF >= 0).all(axis=1) & (EF[:, 0] != EF[:, 1])
    keys = np.unique(EF[inner].min(axis=1) * F + EF[inner].max(axis=1))
    return np.stack([keys // F, keys % F], axis=1) if len(keys) else np.zeros((0, 2), dtype=np.int64)


def _finite_max_abs(Z: np.ndarray) -> float:
    return float(np.abs(Z[np.isfinite(Z)]).max(initial=0.0))


def _warn_slivers(slivers: int) -> None:
    warnings.warn(f"{slivers} slice regions are thinner than {_SLIVER_ULPS} units in the last place of the "
                  "coordinates: float64 does not resolve them (they may be rounding artefacts of "
                  "near-concurrent boundaries); see stats['slivers'] and compare with method='lp' or a "
                  "smaller window.", NumericalWarning, stacklevel=outside_maso())


def _from_mesh(net: Network, plane: Plane, lo: np.ndarray, hi: np.ndarray, tol: float,
               progress: bool = False, max_regions: int | None = None,
               device: torch.device | None = None, bar: Any = None, warn_slivers: bool = True) -> SliceRegions:
    mesh, stats, base, columns = _partition(net, lo, hi, tol, progress, max_regions, device, bar)
    stats["device"] = str(torch.device("cpu") if device is None else device)
    if stats["merged"]:
        warnings.warn(f"{stats['merged']} slice faces had the same code as a neighbour (rounding at a near-degenerate "
                      "vertex) and were merged; compare with method='lp'.", NumericalWarning, stacklevel=outside_maso())
    offsets, pv, areas, inner = _polygons(mesh.P, mesh.E, mesh.EF, mesh.nF)
    unique = len(np.unique(row_ids(mesh.codes)))  # the held columns: the other columns are the same for all faces
    cols, varying, shared = _compact(base, columns, mesh.codes)
    slivers = _count_slivers(mesh.P, offsets, pv, areas, lo, hi)
    stats.update(snapped=mesh.snapped, vertices=mesh.nV, edges=mesh.nE, slivers=slivers,
                 min_area=float(areas.min()) if len(areas) else 0.0, duplicate_codes=mesh.nF - unique)
    if slivers and warn_slivers:
        _warn_slivers(slivers)
    if unique != mesh.nF:
        warnings.warn(f"{mesh.nF - unique} slice regions share a code with another region (rounding at a "
                      "near-degenerate vertex); compare with method='lp'.", NumericalWarning, stacklevel=outside_maso())
    return SliceRegions(plane, readonly(lo), readonly(hi), readonly(mesh.P), sealed(offsets), sealed(pv),
                        sealed(cols), sealed(varying), sealed(shared), sealed(areas), sealed(inner), "mesh", stats, net, mesh, tol)


_SLIVER_ULPS = 64


def _count_slivers(P: np.ndarray, offsets: np.ndarray, pv: np.ndarray, areas: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> int:
    """Faces thinner (twice the area over the longest edge) than ``_SLIVER_ULPS`` units in the last place of the
    rectangle's coordinates: there float64 vertices no longer resolve the region (small but fat faces, such as
    the tiny triangles of near-concurrent boundaries, are resolved and not counted)."""
    if not len(areas):
        return 0
    thin = _SLIVER_ULPS * np.finfo(np.float64).eps * float(np.max(np.abs(np.concatenate([lo, hi, hi - lo]))))
    if areas.min() > 0.5 * thin * float(np.hypot(*(hi - lo))):  # no edge is longer than the diagonal
        return 0
    counts = np.diff(offsets)
    start = np.repeat(offsets[:-1], counts)
    pos = np.arange(len(pv))
    nxt = np.where(pos + 1 == np.repeat(offsets[1:], counts), start, pos + 1)
    length = np.hypot(*(P[pv[nxt]] - P[pv]).T)
    longest = np.maximum.reduceat(length, offsets[:-1])
    return int(np.count_nonzero(2 * areas <= thin * longest))


def _from_lp(net: Network, plane: Plane, lo: np.ndarray, hi: np.ndarray, tol: float | None) -> SliceRegions:
    from maso.core.domain import Box
    from maso.regions import DEFAULT_TOL, enumerate_regions

    regions = enumerate_regions(net, Box(lo, hi), tol=tol or DEFAULT_TOL, method="vertices", progress=False)
    polys, offsets = [], [0]
    for r in regions:
        V = np.asarray(r.vertices())
        c = V.mean(axis=0)
        V = V[np.argsort(np.arctan2(V[:, 1] - c[1], V[:, 0] - c[0]))]
        polys.append(V)
        offsets.append(offsets[-1] + len(V))
    verts = np.concatenate(polys) if polys else np.zeros((0, 2))
    areas = np.array([r.volume() for r in regions])
    inner = np.array([r.interior_point for r in regions]).reshape(-1, 2)
    codes = np.array([r.code for r in regions], dtype=net.program.code_dtype).reshape(len(regions), net.n_units)
    cols, varying, shared = _compact(np.zeros(net.n_units, dtype=codes.dtype), np.arange(net.n_units), codes)
    g = regions.graph()
    adj = np.array(sorted((min(i, j), max(i, j)) for i, j in g.edges()), dtype=np.int64).reshape(-1, 2)
    stats = {"slivers": len(regions.slivers), "min_area": float(areas.min()) if len(areas) else 0.0}
    return SliceRegions(plane, readonly(lo), readonly(hi), readonly(verts), sealed(np.array(offsets)),
                        sealed(np.arange(len(verts))), sealed(cols), sealed(varying), sealed(shared), sealed(areas), sealed(inner), "lp", stats,
                        net, None, DEFAULT_SLICE_TOL, sealed(adj))
