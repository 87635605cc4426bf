"""Tiled slices: a rectangle sliced as a grid of smaller ones, whose pieces are joined into the regions.

A slice's memory grows with its mesh (the values carried at every vertex, hundreds of thousands of numbers each on
a wide network), so a window too big to carry is cut into tiles, each sliced on its own, and the pieces of a region
that tile lines cut apart are joined again. Pieces are joined when they have the same code and share a stretch of
a tile line; a region is convex, so its polygon is the convex hull of its pieces, and its area is the sum of
theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError

if TYPE_CHECKING:  # (the slice module imports this one when it joins tiles)
    from maso.slices._slice import SliceCells, SliceRegions

_JOIN_ULPS = 64  # the join tolerance, in units in the last place of the rectangle's coordinates
_LP_JOIN_TOL = 1e-9  # tiles that fell back to the LP method: their vertices are LP solutions, not exact


def tile_grid(lo: np.ndarray, hi: np.ndarray, tiles: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The rectangles ``(lo, hi)`` of a ``tiles[0]`` by ``tiles[1]`` grid over ``[lo, hi]``, row by row (x fastest).

    Neighbouring tiles share their edge coordinates exactly (one array of cut points per axis)."""
    xs = np.linspace(lo[0], hi[0], tiles[0] + 1)
    ys = np.linspace(lo[1], hi[1], tiles[1] + 1)
    xs[0], xs[-1], ys[0], ys[-1] = lo[0], hi[0], lo[1], hi[1]
    return [(np.array([xs[i], ys[j]]), np.array([xs[i + 1], ys[j + 1]]))
            for j in range(tiles[1]) for i in range(tiles[0])]


def join_tolerance(lo: np.ndarray, hi: np.ndarray, any_lp: bool) -> float:
    """Absolute distance below which two points of different tiles are one (plane units): `_JOIN_ULPS` units in
    the last place of the rectangle's coordinates (mesh vertices on a tile line lie on it exactly, and its cut
    points are computed alike in both tiles), `_LP_JOIN_TOL` times the coordinate scale where a tile fell back to
    LP vertices. Not the snapping ``tol``: that is relative to unit values, and pieces that meet along a stretch
    that short must still be joined."""
    scale = float(np.max(np.abs(np.concatenate([lo, hi, hi - lo]))))
    rel = _LP_JOIN_TOL if any_lp else _JOIN_ULPS * np.finfo(np.float64).eps
    return rel * scale


def _line_edges(V: np.ndarray, offsets: np.ndarray, pv: np.ndarray, axis: int, c: float, eps: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The polygon edges on the line ``x[axis] = c`` (both ends within ``eps`` of it): per edge its polygon and
    its interval ``[a, b]`` along the line, sorted by ``a``."""
    counts = np.diff(offsets)
    owner = np.repeat(np.arange(len(counts)), counts)
    pos = np.arange(len(pv))
    nxt = np.where(pos + 1 == np.repeat(offsets[1:], counts), np.repeat(offsets[:-1], counts), pos + 1)
    p, q = V[pv], V[pv[nxt]]
    on = (np.abs(p[:, axis] - c) <= eps) & (np.abs(q[:, axis] - c) <= eps)
    a = np.minimum(p[on, 1 - axis], q[on, 1 - axis])
    b = np.maximum(p[on, 1 - axis], q[on, 1 - axis])
    keep = b > a  # (an edge across the line, of no length along it, touches it at a point)
    order = np.argsort(a[keep], kind="stable")
    return owner[on][keep][order], a[keep][order], b[keep][order]


def _overlaps(first: tuple[np.ndarray, ...], second: tuple[np.ndarray, ...], eps: float
              ) -> list[tuple[int, int, float, float]]:
    """Pairs of edges of the two sides of a tile line that overlap or come within ``eps`` of each other:
    ``(polygon of the first side, polygon of the second, start, end)`` (``end - start`` is the shared length,
    negative for a gap). Edges of one side may overlap each other (a boundary within ``eps`` of the line puts a
    thin face's two edges on it), so every candidate pair is tested, not a sweep."""
    (f, fa, fb), (s, sa, sb) = first, second
    out: list[tuple[int, int, float, float]] = []
    if not len(f) or not len(s):
        return out
    longest = float(np.max(sb - sa))
    first_j = np.searchsorted(sa, fa - longest - eps, side="left")
    last_j = np.searchsorted(sa, fb + eps, side="right")
    for i in range(len(f)):
        js = np.arange(first_j[i], last_j[i])
        start, end = np.maximum(fa[i], sa[js]), np.minimum(fb[i], sb[js])
        near = end - start >= -eps
        out.extend(zip([int(f[i])] * int(near.sum()), s[js[near]].tolist(), start[near].tolist(), end[near].tolist()))
    return out


def _seams(grid: tuple[int, int], tiles: list[tuple[np.ndarray, np.ndarray]]
           ) -> list[tuple[int, int, int, float]]:
    """The tile lines between neighbouring tiles: ``(first tile, second tile, axis, coordinate)``."""
    nx, ny = grid
    out = []
    for j in range(ny):
        for i in range(nx):
            t = j * nx + i
            if i + 1 < nx:
                out.append((t, t + 1, 0, float(tiles[t][1][0])))
            if j + 1 < ny:
                out.append((t, t + nx, 1, float(tiles[t][1][1])))
    return out


def _convex_polygon(points: np.ndarray, eps: float) -> np.ndarray:
    """The convex hull of ``points`` counter-clockwise, without vertices within ``eps`` of the line through
    their neighbours (the same point from two tiles, or a point on an edge), never below a triangle."""
    try:
        hull = ConvexHull(points)
    except QhullError:  # (pieces of no area: keep them as they are)
        return points
    ring = list(points[hull.vertices])  # counter-clockwise in 2-D
    changed = True
    while changed and len(ring) > 3:
        changed = False
        for k in range(len(ring)):
            a, v, b = ring[k - 1], ring[k], ring[(k + 1) % len(ring)]
            chord = b - a
            length = float(np.hypot(*chord))
            dist = abs(chord[0] * (v - a)[1] - chord[1] * (v - a)[0]) / length if length > 0 else 0.0
            if dist <= eps:
                del ring[k]
                changed = True
                break
    return np.array(ring)


def row_ids(codes: np.ndarray) -> np.ndarray:
    """One integer per row of ``codes`` (equal rows, equal integers)."""
    codes = np.ascontiguousarray(codes)
    if codes.shape[1] == 0:
        return np.zeros(len(codes), dtype=np.int64)
    rows = codes.view(np.dtype((np.void, codes.shape[1] * codes.itemsize))).ravel()
    return np.unique(rows, return_inverse=True)[1].ravel()


def join_tiles(parts: list[SliceRegions], grid: tuple[int, int], tiles: list[tuple[np.ndarray, np.ndarray]],
               lo: np.ndarray, hi: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    """The regions of the whole rectangle from the slices ``parts`` of its ``tiles`` (`tile_grid` order).

    Pieces of different tiles with the same code that meet along a tile line are one region (joined
    transitively: a region may cross many tiles). Returns the fields of the joined `SliceRegions` (and
    ``region``: each piece's region, the tiles' pieces one after the other) and the join's stats (``joined``: pieces joined into others; ``nonconvex_joins``: joined regions whose hull's area
    differs from their pieces' total by more than the tolerance, i.e. rounding joined what is not one region).
    """
    any_lp = any(p.method == "lp" for p in parts)
    eps = join_tolerance(lo, hi, any_lp)
    # codes on the columns where any two pieces of any tiles may differ
    shared = parts[0].shared_code
    cols = np.unique(np.concatenate([np.concatenate([p.code_columns, np.flatnonzero(p.shared_code != shared)])
                                     for p in parts]).astype(np.int64))
    blocks = []
    for p in parts:
        block = np.repeat(p.shared_code[cols][None], len(p), axis=0)
        block[:, np.searchsorted(cols, p.code_columns)] = p.varying_codes
        blocks.append(block)
    codes = np.concatenate(blocks)
    code_id = row_ids(codes)
    start = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    n = int(start[-1])
    # pieces joined across tile lines, and neighbours across them
    join_a, join_b, cross = [], [], []
    for t, u, axis, c in _seams(grid, tiles):
        first = _line_edges(parts[t].vertices, parts[t].polygon_offsets, parts[t].polygon_vertices, axis, c, eps)
        second = _line_edges(parts[u].vertices, parts[u].polygon_offsets, parts[u].polygon_vertices, axis, c, eps)
        for i, j, s0, s1 in _overlaps(first, second, eps):
            a, b = start[t] + i, start[u] + j
            if code_id[a] == code_id[b]:  # (touching is enough: one code is one convex region)
                join_a.append(a)
                join_b.append(b)
            elif s1 - s0 > eps:
                cross.append((a, b))
    graph = coo_matrix((np.ones(len(join_a)), (np.array(join_a, dtype=np.int64), np.array(join_b, dtype=np.int64))),
                       shape=(n, n))
    m, label = connected_components(graph, directed=False)
    # regions numbered in the order of their first piece
    first_piece = np.full(m, n, dtype=np.int64)
    np.minimum.at(first_piece, label, np.arange(n))
    rank = np.empty(m, dtype=np.int64)
    rank[np.argsort(first_piece, kind="stable")] = np.arange(m)
    region = rank[label]
    firsts = np.sort(first_piece)  # region r's first piece
    areas_all = np.concatenate([p.areas for p in parts])
    areas = np.bincount(region, areas_all, minlength=m)
    # polygons: a piece alone keeps its own; joined pieces become their hull
    members: list[list[int]] = [[] for _ in range(m)]
    for k, r in enumerate(region.tolist()):
        members[r].append(k)
    tile_of = np.repeat(np.arange(len(parts)), np.diff(start))
    polys, nonconvex = [], 0
    for r, ks in enumerate(members):
        pieces = [parts[tile_of[k]].polygon(k - start[tile_of[k]]) for k in ks]
        if len(pieces) == 1:
            polys.append(pieces[0])
            continue
        points = np.concatenate(pieces)
        poly = _convex_polygon(points, eps)
        x, y = poly[:, 0] - poly[0, 0], poly[:, 1] - poly[0, 1]  # (relative: see `_polygons`)
        hull_area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
        # rounding: every edge moved by up to eps, and the shoelace sums' own (products of coordinate differences
        # of the size of the region, a few roundings per vertex)
        perimeter = float(sum(np.hypot(*(q - np.roll(q, -1, axis=0)).T).sum() for q in pieces))
        size = float(np.max(points.max(axis=0) - points.min(axis=0)))
        if hull_area - areas[r] > eps * perimeter + 8 * np.finfo(np.float64).eps * size ** 2 * len(points):
            nonconvex += 1
        polys.append(poly)
    counts = np.array([len(q) for q in polys], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    points = np.concatenate(polys) if polys else np.zeros((0, 2))
    vertices, pv = np.unique(points, axis=0, return_inverse=True)  # (the same point in two polygons: one vertex)
    pv = pv.ravel()
    sums = np.stack([np.bincount(np.repeat(np.arange(m), counts), points[:, d], m) for d in (0, 1)], axis=1)
    inner = sums / np.maximum(counts, 1)[:, None]  # vertex means, as the mesh's: inside the convex polygons
    # neighbours: within tiles, and across tile lines
    pairs = [region[start[t] + p.adjacency] for t, p in enumerate(parts) if len(p.adjacency)]
    if cross:
        pairs.append(region[np.array(cross, dtype=np.int64)])
    adj = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    adj = np.sort(adj[adj[:, 0] != adj[:, 1]], axis=1)
    adj = np.unique(adj, axis=0) if len(adj) else adj.reshape(0, 2)
    # the compact codes of the regions (a region's pieces have one code)
    first_code = codes[firsts]
    differ = np.any(first_code != first_code[0], axis=0) if m else np.zeros(len(cols), dtype=bool)
    shared_code = shared.copy()
    if m:
        shared_code[cols] = first_code[0]
    fields = {"vertices": vertices, "polygon_offsets": offsets, "polygon_vertices": pv, "code_columns": cols[differ],
              "varying_codes": np.ascontiguousarray(first_code[:, differ]), "shared_code": shared_code,
              "areas": areas, "interior_points": inner, "adjacency": adj, "region": region}
    duplicates = m - len(np.unique(code_id[firsts]))
    return fields, {"joined": n - m, "nonconvex_joins": nonconvex, "pieces": n, "duplicate_codes": duplicates}


def join_cells(tile_cells: list[SliceCells], regions: list[np.ndarray], grid: tuple[int, int],
               tiles: list[tuple[np.ndarray, np.ndarray]], eps: float) -> dict[str, Any]:
    """The fields of one `SliceCells` from those of the tiles: pieces as they are (their region renumbered by
    ``regions``, per tile its pieces' regions), and the class boundary within tiles and along tile lines."""
    vstart = np.concatenate([[0], np.cumsum([len(c.vertices) for c in tile_cells])])
    boundary = [c.boundary for c in tile_cells]
    for t, u, axis, c in _seams(grid, tiles):
        a, b = tile_cells[t], tile_cells[u]
        first = _line_edges(a.vertices, a.polygon_offsets, a.polygon_vertices, axis, c, eps)
        second = _line_edges(b.vertices, b.polygon_offsets, b.polygon_vertices, axis, c, eps)
        segs = [(s0, s1) for i, j, s0, s1 in _overlaps(first, second, eps)
                if a.labels[i] != b.labels[j] and s1 - s0 > eps]
        if segs:
            s = np.array(segs)
            ends = np.stack([np.full(len(s), c), s[:, 0], np.full(len(s), c), s[:, 1]], axis=1).reshape(-1, 2, 2)
            if axis == 1:
                ends = ends[:, :, ::-1]
            boundary.append(ends)
    pstart = np.concatenate([[0], np.cumsum([len(c.polygon_vertices) for c in tile_cells])])
    return {
        "vertices": np.concatenate([c.vertices for c in tile_cells]),
        "polygon_offsets": np.concatenate([[0]] + [c.polygon_offsets[1:] + pstart[t] for t, c in enumerate(tile_cells)]),
        "polygon_vertices": np.concatenate([c.polygon_vertices + vstart[t] for t, c in enumerate(tile_cells)]),
        "labels": np.concatenate([c.labels for c in tile_cells]),
        # (-1: a piece of an LP tile whose code no region has)
        "regions": np.concatenate([np.where(c.regions >= 0, r[np.maximum(c.regions, 0)], -1)
                                   for c, r in zip(tile_cells, regions)]),
        "areas": np.concatenate([c.areas for c in tile_cells]),
        "boundary": np.concatenate(boundary).reshape(-1, 2, 2),
    }
