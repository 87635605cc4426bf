"""A planar mesh of convex faces, refined by the zero sets of vertex functions (the fast 2-D slice path).

Vertices carry plane coordinates and the values of the functions still to be cut along (``Z``, one column per
unit of the current layer), both interpolated onto new vertices. Each new vertex also records where it came from
(the two ends of the edge it splits and the weight), so that values carried elsewhere (activations that later
layers read, kept on a torch device by the slice) can be interpolated onto it in the same way, in batches. Faces are not stored as vertex cycles: an edge knows its two endpoints and its two faces
(``-1`` outside), which is all that splitting and merging need, and keeps every step a few array passes.

Splitting a face by a function ``d`` that is affine on it: edges whose endpoint signs are opposite get a new
vertex at the interpolated zero; a face with a positive and a negative vertex then has exactly two vertices on
``d = 0`` (it is convex), which become the ends of a new edge; its edges on the negative side go to a new face.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from maso import kernels as _kernels


class MeshDegeneracy(Exception):
    """A face met the zero set in other than two points: float rounding broke convexity."""


def _grow(a: np.ndarray, n: int) -> np.ndarray:
    if n <= len(a):
        return a
    out = np.empty((max(n, 2 * len(a)), *a.shape[1:]), dtype=a.dtype)
    out[:len(a)] = a
    return out


def _with_room(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` at the top of a C-contiguous array of at least ``rows`` rows (the rest uninitialised)."""
    out = np.empty((max(rows, len(a)), *a.shape[1:]), dtype=a.dtype)
    out[:len(a)] = a
    return out


class Mesh:
    """Mutable planar mesh over the rectangle ``[lo[0], hi[0]] x [lo[1], hi[1]]``."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self._P = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]], dtype=np.float64)
        self._E = np.array([[0, 1], [1, 2], [2, 3], [3, 0]], dtype=np.int64)
        self._EF = np.array([[0, -1]] * 4, dtype=np.int64)
        self.nV, self.nE, self.nF = 4, 4, 1
        self._Z = np.zeros((4, 0))
        self._src = np.full((4, 2), -1, dtype=np.int64)  # per vertex: the edge ends it was interpolated between
        self._tt = np.zeros(4)  # ... and the weight: P = P[a] + t * (P[b] - P[a])
        self._gen = np.zeros(4, dtype=np.int64)  # 0: an original (or already carried) vertex; else 1 + its ends'
        self.on_compact: Callable[[np.ndarray], None] | None = None  # told which vertices stay, before renumbering
        self._parent = np.zeros(1, dtype=np.int64)
        self._codes = np.zeros((1, 0), dtype=np.uint8)  # per face: the code columns known so far
        self.snapped = 0
        self._reserve(256)  # room for ~500 faces: small slices never stop to grow their arrays

    # views ---------------------------------------------------------------------------------------------
    @property
    def P(self) -> np.ndarray:
        return self._P[:self.nV]

    @property
    def E(self) -> np.ndarray:
        return self._E[:self.nE]

    @property
    def EF(self) -> np.ndarray:
        return self._EF[:self.nE]

    @property
    def Z(self) -> np.ndarray:
        return self._Z[:self.nV]

    @property
    def sources(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per vertex: the two vertices it was interpolated between ``(nV, 2)`` (-1: an original corner), the
        weight ``t`` ``(nV,)`` and its generation ``(nV,)``: 0 once `settle` marked it, else one more than the
        larger generation of its two ends (vertices of one generation depend only on earlier ones)."""
        return self._src[:self.nV], self._tt[:self.nV], self._gen[:self.nV]

    def settle(self) -> None:
        """Mark every vertex as generation 0 (its carried values are known)."""
        self._gen[:self.nV] = 0

    @property
    def parent(self) -> np.ndarray:
        """Per face: the face it was cut from (set by the caller before a round of cuts)."""
        return self._parent[:self.nF]

    @parent.setter
    def parent(self, value: np.ndarray) -> None:
        self._parent = _with_room(np.asarray(value, dtype=np.int64), len(self._parent))

    @property
    def codes(self) -> np.ndarray:
        return self._codes[:self.nF]

    @codes.setter
    def codes(self, value: np.ndarray) -> None:
        self._codes = _with_room(np.asarray(value), len(self._codes))

    def set_values(self, Z: np.ndarray) -> None:
        """Replace the vertex values (one row per vertex), with room for as many vertices as ``P`` has."""
        self._Z = _with_room(np.asarray(Z, dtype=np.float64).reshape(self.nV, -1), len(self._P))

    def value_room(self, width: int) -> np.ndarray:
        """Make room for new vertex values of ``width`` columns and return the rows of the mesh's vertices
        ``(nV, width)`` (uninitialised), for the caller to fill in place: `set_values` without the copy."""
        self._Z = np.empty((len(self._P), width))
        return self.Z

    @classmethod
    def from_arrays(cls, P: np.ndarray, E: np.ndarray, EF: np.ndarray, n_faces: int, snapped: int = 0) -> Mesh:
        """A finished mesh from its vertices ``(nV, 2)``, edges ``(nE, 2)`` and their faces ``(nE, 2)`` (as a
        checkpoint keeps it): no values, no codes, every vertex settled, each face its own parent."""
        m = Mesh.__new__(Mesh)
        m.nV, m.nE, m.nF = len(P), len(E), int(n_faces)
        m._P = np.array(P, dtype=np.float64)
        m._E, m._EF = np.array(E, dtype=np.int64), np.array(EF, dtype=np.int64)
        m._Z = np.zeros((m.nV, 0))
        m._src, m._tt, m._gen = np.full((m.nV, 2), -1, dtype=np.int64), np.zeros(m.nV), np.zeros(m.nV, dtype=np.int64)
        m.on_compact = None
        m._parent, m._codes = np.arange(m.nF, dtype=np.int64), np.zeros((m.nF, 0), dtype=np.uint8)
        m.snapped = int(snapped)
        return m

    def copy(self) -> Mesh:
        m = Mesh.__new__(Mesh)
        m._P, m._E, m._EF, m._Z = self.P.copy(), self.E.copy(), self.EF.copy(), self.Z.copy()
        m._src, m._tt, m._gen = self._src[:self.nV].copy(), self._tt[:self.nV].copy(), self._gen[:self.nV].copy()
        m.on_compact = None
        m.nV, m.nE, m.nF = self.nV, self.nE, self.nF
        m._parent, m.snapped, m._codes = self.parent.copy(), self.snapped, self.codes.copy()
        return m

    # refinement ----------------------------------------------------------------------------------------
    def snap(self, d: np.ndarray, tol: float) -> np.ndarray:
        """Values within ``tol`` times the largest ``|d|`` of zero become exactly zero (counted in ``snapped``)."""
        finite = np.isfinite(d)
        scale = float(np.max(np.abs(d[finite]))) if finite.any() else 0.0
        small = np.abs(d) <= tol * scale
        self.snapped += int(np.count_nonzero(small & (d != 0)))
        return np.where(small, 0.0, d)

    def split(self, d: np.ndarray) -> int:
        """Cut every face on which ``d`` (vertex values, affine on each face, zeros exact) changes sign.

        Returns the number of faces cut. The vertex values ``Z`` are interpolated onto new vertices.
        """
        if _kernels.mesh_split is not None:  # compiled: the same arithmetic without ~40 NumPy calls per cut
            d = np.ascontiguousarray(d, dtype=np.float64)
            args = (self.nV, self.nE, self.nF, d)
            arrays = (self._P, self._Z, self._src, self._tt, self._gen, self._E, self._EF, self._parent, self._codes)
            n_new, k = _kernels.mesh_split(*arrays, *args)
            if k == -2:
                self._reserve()
                arrays = (self._P, self._Z, self._src, self._tt, self._gen, self._E, self._EF, self._parent,
                          self._codes)
                n_new, k = _kernels.mesh_split(*arrays, *args)
            if k >= 0:
                self.nV += n_new
                self.nE += n_new + k
                self.nF += k
                return k
            # a face met the cut line in other than two points: the NumPy path below raises with details
        return self._split_numpy(d)

    def cut_columns(self, tol: float, max_faces: int | None = None) -> tuple[int, bool]:
        """Snap (`snap`) and split (`split`) by each column of ``Z`` in turn.

        Returns the number of faces cut and whether the mesh outgrew ``max_faces`` (it stops there).
        """
        limit = np.iinfo(np.int64).max if max_faces is None else int(max_faces)
        total, c, n = 0, 0, self._Z.shape[1]
        if _kernels.mesh_cut_columns is not None:  # compiled: one call per layer instead of a few per unit
            while c < n:
                status, c, self.nV, self.nE, self.nF, snapped, cut = _kernels.mesh_cut_columns(
                    self._P, self._Z, self._src, self._tt, self._gen, self._E, self._EF, self._parent, self._codes,
                    self.nV, self.nE, self.nF, c, n, float(tol), limit)
                self.snapped += snapped
                total += cut
                if status == 0:
                    break
                if status == 3:
                    return total, True
                if status == 1:
                    # small meshes: room for several cuts (a return to Python costs more than the memory)
                    self._reserve(4 if self.nE < 4096 else 1)
                    continue
                # status 2: a degenerate cut; the NumPy path does this column (and raises MeshDegeneracy)
                total += self._cut_column(c, tol)
                c += 1
                if self.nF > limit:
                    return total, True
            return total, False
        for c in range(n):
            total += self._cut_column(c, tol)
            if self.nF > limit:
                return total, True
        return total, False

    def cut_pieces(self, R: int, valid: np.ndarray, tol: float, max_faces: int | None = None) -> tuple[int, bool]:
        """Cut by units of ``R`` pieces: unit ``u``'s piece scores are the columns ``u * R`` to ``u * R + R - 1`` of
        ``Z``, its pieces those where ``valid[u]`` ``(units, R)``. For each unit, cut where each piece overtakes
        the best of the pieces before it (snapped as in `snap`); after a unit's cuts its best piece is one affine
        function on every face, so the next piece's difference is affine there too.

        Returns the number of faces cut and whether the mesh outgrew ``max_faces`` (it stops there).
        """
        limit = np.iinfo(np.int64).max if max_faces is None else int(max_faces)
        valid = np.ascontiguousarray(valid, dtype=np.bool_)
        total, unit, piece = 0, 0, 1
        if _kernels.mesh_cut_pieces is not None:  # compiled: one call per layer instead of ~6 NumPy calls a piece
            while True:
                status, unit, piece, self.nV, self.nE, self.nF, snapped, cut = _kernels.mesh_cut_pieces(
                    self._P, self._Z, self._src, self._tt, self._gen, self._E, self._EF, self._parent, self._codes,
                    self.nV, self.nE, self.nF, R, valid, unit, piece, float(tol), limit)
                self.snapped += snapped
                total += cut
                if status == 0:
                    return total, False
                if status == 3:
                    return total, True
                if status == 1:
                    self._reserve(4 if self.nE < 4096 else 1)
                    continue
                # status 2: a degenerate cut; the NumPy path makes it (and raises MeshDegeneracy)
                total += self._cut_pieces_numpy(R, valid, tol, unit, piece, piece + 1)
                if self.nF > limit:
                    return total, True
                piece += 1
        for u in range(len(valid)):
            total += self._cut_pieces_numpy(R, valid, tol, u, 1, R, limit)
            if self.nF > limit:
                return total, True
        return total, False

    def _cut_pieces_numpy(self, R: int, valid: np.ndarray, tol: float, u: int, first: int, stop: int,
                          limit: int | None = None) -> int:
        """The pieces ``first`` to ``stop - 1`` (among unit ``u``'s valid ones) of `cut_pieces`, in NumPy."""
        pieces = u * R + np.flatnonzero(valid[u])
        total, best = 0, None  # the best of the pieces before i at every vertex (kept up to date while no cut)
        for i in range(first, min(stop, len(pieces))):
            Z = self.Z
            # a max is exact, so the running max equals the max over the pieces before i
            best = Z[:, pieces[:i]].max(axis=1) if best is None else np.maximum(best, Z[:, pieces[i - 1]])
            d = Z[:, pieces[i]] - best
            if not ((d < 0).any() and (d > 0).any()):
                continue  # one sign: snapping (which only zeroes values) cannot make it cut
            d = self.snap(d, tol)
            if (d < 0).any() and (d > 0).any():
                total += self.split(d)
                best = None  # new vertices
                if limit is not None and self.nF > limit:
                    break
        return total

    def piece_codes(self, R: int, valid: np.ndarray, tol: float) -> np.ndarray:
        """Per face, the winning piece of each unit of `cut_pieces` ``(faces, units)``: the lowest valid piece
        whose score at the face's vertex centroid is within ``tol`` times the layer's largest ``|Z|`` of the best.

        Rounding at vertices on earlier boundaries turns exact ties (a pooling window of zeros) into 1e-17
        differences, hence the tolerance; it is the layer's (rounding comes from the inputs' size): a window that
        is zero over the whole slice but for rounding would otherwise be scaled by its own noise.
        """
        valid = np.ascontiguousarray(valid, dtype=np.bool_)
        Z = self.Z  # (invalid pieces hold finite values here); max |Z| without an |Z| temporary
        scale = max(float(Z.max(initial=0.0)), -float(Z.min(initial=0.0)))
        if not math.isfinite(scale):
            scale = float(np.abs(Z[np.isfinite(Z)]).max(initial=0.0))
        if _kernels.face_winners is not None:  # compiled: face means a face at a time, no (faces, columns) array
            return _kernels.face_winners(self.E, self.EF, self.nF, Z, R, valid, tol * scale)
        means = self.face_means(Z).reshape(self.nF, len(valid), R)
        means[:, ~valid] = -np.inf
        top = means.max(axis=2, keepdims=True)
        return (means >= top - tol * scale).argmax(axis=2)

    def _cut_column(self, c: int, tol: float) -> int:
        d = self.snap(self.Z[:, c], tol)
        if (d < 0).any() and (d > 0).any():
            return self.split(d)
        return 0

    def _reserve(self, factor: int = 1) -> None:
        """Room for ``factor`` of the largest possible cut: a vertex per edge, an edge per edge and face, a face
        per face."""
        V, E, F = self.nV, factor * self.nE, factor * self.nF
        self._P, self._Z = _grow(self._P, V + E), _grow(self._Z, V + E)
        self._src, self._tt, self._gen = _grow(self._src, V + E), _grow(self._tt, V + E), _grow(self._gen, V + E)
        self._E, self._EF = _grow(self._E, 2 * E + F), _grow(self._EF, 2 * E + F)
        self._parent, self._codes = _grow(self._parent, 2 * F), _grow(self._codes, 2 * F)

    def _split_numpy(self, d: np.ndarray) -> int:
        s = np.sign(d).astype(np.int8)
        E, EF, F = self.E, self.EF, self.nF
        s0, s1 = s[E[:, 0]], s[E[:, 1]]
        cand = np.flatnonzero(s0 != s1)
        if not cand.size:
            return 0
        c0, c1 = s0[cand], s1[cand]
        ef = EF[cand]
        has_pos = np.zeros(F + 1, dtype=bool)  # slot F collects the outside (-1)
        has_neg = np.zeros(F + 1, dtype=bool)
        has_pos[ef[(c0 > 0) | (c1 > 0)].ravel()] = True
        has_neg[ef[(c0 < 0) | (c1 < 0)].ravel()] = True
        cut = has_pos & has_neg
        cut[F] = False
        cut_faces = np.flatnonzero(cut)
        if not cut_faces.size:
            return 0
        # new vertices where edges cross zero
        cross = cand[c0.astype(np.int16) * c1 < 0]
        a, b = E[cross, 0].copy(), E[cross, 1].copy()
        da, db = d[a], d[b]
        t = (da / (da - db))[:, None]
        n_new, V, nE = len(cross), self.nV, self.nE
        self._P = _grow(self._P, V + n_new)
        self._Z = _grow(self._Z, V + n_new)
        self._src, self._tt, self._gen = (_grow(self._src, V + n_new), _grow(self._tt, V + n_new),
                                          _grow(self._gen, V + n_new))
        self._P[V:V + n_new] = self._P[a] + t * (self._P[b] - self._P[a])
        self._Z[V:V + n_new] = self._Z[a] + t * (self._Z[b] - self._Z[a])
        self._src[V:V + n_new, 0], self._src[V:V + n_new, 1], self._tt[V:V + n_new] = a, b, t[:, 0]
        self._gen[V:V + n_new] = 1 + np.maximum(self._gen[a], self._gen[b])
        new_v = np.arange(V, V + n_new)
        self.nV = V + n_new
        s = np.concatenate([s, np.zeros(n_new, dtype=np.int8)])
        # each crossing edge (a, b) becomes (a, new) and (new, b), both with the old faces
        self._E = _grow(self._E, nE + n_new + len(cut_faces))
        self._EF = _grow(self._EF, nE + n_new + len(cut_faces))
        self._E[cross, 1] = new_v
        self._E[nE:nE + n_new, 0] = new_v
        self._E[nE:nE + n_new, 1] = b
        self._EF[nE:nE + n_new] = self._EF[cross]
        self.nE = nE + n_new
        # the two zero vertices of every cut face
        idx = np.concatenate([cand, np.arange(nE, nE + n_new)])
        ee, ff = self._E[idx], self._EF[idx]
        parts = []
        Vt = self.nV
        for j in (0, 1):
            fj = ff[:, j]
            inside = cut[fj]
            for k in (0, 1):
                m = inside & (s[ee[:, k]] == 0)
                parts.append(fj[m] * Vt + ee[m, k])
        keys = np.unique(np.concatenate(parts))
        zf, zv = keys // Vt, keys % Vt
        if len(zf) != 2 * len(cut_faces) or np.any(zf[0::2] != cut_faces) or np.any(zf[1::2] != cut_faces):
            counts = np.bincount(zf, minlength=F)[cut_faces]
            raise MeshDegeneracy(f"faces {cut_faces[counts != 2][:5].tolist()} meet a cut line in "
                                 f"{counts[counts != 2][:5].tolist()} points instead of 2")
        new_f = np.full(F + 1, -1, dtype=np.int64)
        new_f[cut_faces] = F + np.arange(len(cut_faces))
        # edges of cut faces on the negative side move to the new face
        E, EF = self.E, self.EF
        neg = (s[E[:, 0]] < 0) | (s[E[:, 1]] < 0)
        for j in (0, 1):
            m = neg & cut[EF[:, j]]
            EF[m, j] = new_f[EF[m, j]]
        k = len(cut_faces)
        self._E[self.nE:self.nE + k, 0] = zv[0::2]
        self._E[self.nE:self.nE + k, 1] = zv[1::2]
        self._EF[self.nE:self.nE + k, 0] = cut_faces
        self._EF[self.nE:self.nE + k, 1] = new_f[cut_faces]
        self._parent = _grow(self._parent, F + k)
        self._codes = _grow(self._codes, F + k)
        self._parent[F:F + k] = self._parent[cut_faces]
        self._codes[F:F + k] = self._codes[cut_faces]
        self.nE += k
        self.nF = F + k
        return k

    # faces ---------------------------------------------------------------------------------------------
    def face_means(self, X: np.ndarray) -> np.ndarray:
        """Mean of the vertex rows ``X`` over each face's vertices: the value at its vertex centroid.

        Every vertex of a face is on two of its edges, so summing over edge ends counts each twice, which the
        mean cancels. Sums run in edge order (the compiled kernel adds in the same order: identical results).
        """
        X = np.ascontiguousarray(X, dtype=np.float64).reshape(self.nV, -1)
        E, EF = self.E, self.EF
        if _kernels.face_means is not None:
            return _kernels.face_means(E, EF, self.nF, X)
        out = np.zeros((self.nF, X.shape[1]))
        count = np.zeros(self.nF)
        for j in (0, 1):
            m = EF[:, j] >= 0
            for k in (0, 1):
                np.add.at(out, EF[m, j], X[E[m, k]])
                np.add.at(count, EF[m, j], 1.0)
        return out / count[:, None]

    def merge(self, same: np.ndarray) -> int:
        """Merge the faces joined by the edges where ``same`` is True; returns the number of faces removed."""
        E, EF = self.E, self.EF
        join = same & (EF[:, 0] >= 0) & (EF[:, 1] >= 0)
        if not join.any():
            return 0
        g = coo_matrix((np.ones(int(join.sum())), (EF[join, 0], EF[join, 1])), shape=(self.nF, self.nF))
        n, comp = connected_components(g, directed=False)
        comp = comp.astype(np.int64)  # face * vertex keys overflow int32
        keep = ~join
        self._E = E[keep].copy()
        ef = EF[keep]
        self._EF = np.where(ef >= 0, comp[np.maximum(ef, 0)], -1)
        self.nE = len(self._E)
        parent = np.zeros(n, dtype=np.int64)
        parent[comp] = self.parent
        self.parent = parent
        codes = np.empty((n, self.codes.shape[1]), dtype=self.codes.dtype)
        codes[comp] = self.codes
        self.codes = codes
        removed = self.nF - n
        self.nF = n
        return removed

    def compact(self) -> None:
        """Drop vertices that no edge uses (left inside merged faces)."""
        used = np.zeros(self.nV, dtype=bool)
        used[self.E.ravel()] = True
        if used.all():
            return
        if self.on_compact is not None:
            self.on_compact(used)  # carried values follow (their pending interpolations still valid)
        new = np.cumsum(used) - 1
        self._P = self.P[used].copy()
        self._Z = self.Z[used].copy()
        src = self._src[:self.nV][used]
        self._src = np.where(src >= 0, new[np.maximum(src, 0)], -1)  # (only pending rows are ever read)
        self._tt, self._gen = self._tt[:self.nV][used].copy(), self._gen[:self.nV][used].copy()
        self._E = new[self.E]
        self._EF = self.EF.copy()
        self.nV = int(used.sum())
