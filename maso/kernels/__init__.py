"""Compiled kernels for region enumeration's vertex method and the slice mesh (``pip install "maso[fast]"``).

With numba installed, steps that run once per cell cut, once per region or once per mesh cut, and that cost
dozens of small NumPy calls each, run as compiled loops (`maso.kernels._compiled`): the vertices and incidences
of both parts of a cut cell (``split_vertices``), facets from incidences (``facet_rows``), the Chebyshev
certificate (``certified``), a stage's units screened against a cell's vertices (``screen``), and the slice
mesh's cuts, face means, faces' winning pieces and polygons (``mesh_split``, ``mesh_cut_columns``,
``mesh_cut_pieces``, ``face_means``, ``face_winners``, ``polygons``).
They compute exactly what the NumPy code they replace computes, with the same floating-point operations in the
same order, so results are identical (tested).

The kernels load on first use, not when maso is imported (importing numba costs about 0.3 s). Each name is
the compiled function, or None when numba is missing or fails to import, or ``MASO_NO_KERNELS=1`` is set in
the environment; the callers then run their NumPy code.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["AVAILABLE", "available", "certified", "face_means", "face_winners", "facet_rows", "mesh_cut_columns",
           "mesh_cut_pieces", "mesh_split", "polygons", "screen", "split_vertices",
           "warm"]  # (the kernels are loaded by __getattr__)

_NAMES = ("certified", "face_means", "face_winners", "facet_rows", "mesh_cut_columns", "mesh_cut_pieces",
          "mesh_split", "polygons", "screen", "split_vertices")


def _load() -> None:
    impl: ModuleType | None = None
    if not os.environ.get("MASO_NO_KERNELS"):
        try:
            from maso.kernels import _compiled

            impl = _compiled
        except Exception:  # noqa: BLE001 - not installed (or broken against this NumPy): the NumPy code paths run
            impl = None
    g = globals()
    for name in _NAMES:
        g[name] = getattr(impl, name) if impl is not None else None
    g["AVAILABLE"] = impl is not None


def __getattr__(name: str) -> Any:
    if name in _NAMES or name == "AVAILABLE":
        _load()
        return globals()[name]
    raise AttributeError(f"module 'maso.kernels' has no attribute {name!r}")


def available() -> bool:
    """Whether the compiled kernels run: numba imported and ``MASO_NO_KERNELS`` is not set.

    Loads the kernels on first call (importing numba costs about 0.3 s); results are identical either way.

    Examples
    --------
    >>> isinstance(maso.kernels.available(), bool)
    True
    """
    if "AVAILABLE" not in globals():
        _load()
    return bool(globals()["AVAILABLE"])


def warm() -> None:
    """Load (or compile) the kernels for the argument types enumeration uses, so that processes forked later
    (enumeration workers come from a fork server that calls this) inherit them ready. Does nothing without
    numba.

    Examples
    --------
    >>> maso.kernels.warm()  # the first call may compile (seconds); later calls return at once
    """
    if "AVAILABLE" not in globals():
        _load()
    if not globals()["AVAILABLE"]:
        return
    from maso.kernels import _compiled as k

    V = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    words = np.array([[5], [3], [6]], dtype=np.uint64)  # triangle: rows {0, 2}, {0, 1}, {1, 2}
    fv = V @ np.array([1.0, 0.0]) - 0.5
    k.split_vertices(V, words, fv, 2, 1e-12, 3)
    k.facet_rows(words, 3, 2)
    G = np.array([[-1.0, 0.0], [0.0, -1.0], [0.70710678, 0.70710678]])
    k.certified(G, np.array([0.0, 0.0, 0.7]), np.array([0.2, 0.2]), 0.1, 1e-9)
    k.screen(np.zeros((1, 2, 2)), np.array([[0.0, 1.0]]), V, 1e-12, 1e-12)
