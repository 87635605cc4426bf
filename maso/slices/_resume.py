"""Checkpoints of tiled slices: every finished tile recorded, so that an interrupted slice resumes where it stopped.

The file is a maso checkpoint (the record format of ``maso.regions._checkpoint``: checksummed records, no pickle,
a lock while work remains, damaged records skipped and recomputed). Its header names what the tiles' results
depend on: the restricted network (the plane is folded into its first layer), the window, the grid, the snapping
tolerance and the method; its plan is the grid (one task per tile, in `tile_grid` order); a task
record holds one tile's slice, its mesh (the argmax cells and the adjacency are cut from it) and the warnings it
raised, which a resumed run says again.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from maso import errors as _errors
from maso._version import __version__
from maso.core.network import Network
from maso.regions._checkpoint import FORMAT, _network_digest

if TYPE_CHECKING:  # (the slice module imports this one)
    from maso.slices._slice import SliceRegions

#: What the header calls a tiled slice's checkpoint (an enumeration's header has no such field).
WHAT = "tiled slice"

_FLOATS = ("vertices", "areas", "interior_points")
_INDICES = ("polygon_offsets", "polygon_vertices", "code_columns", "adjacency")
_MESH = ("mesh_P", "mesh_E", "mesh_EF")


def tile_header(flat: Network, lo: np.ndarray, hi: np.ndarray, grid: tuple[int, int], tol: float, method: str,
                device: torch.device | None) -> dict[str, Any]:
    """The header a tiled slice's checkpoint must match to be resumed (JSON values, compared as read back).

    The restricted network stands for the network and the plane (folded into its first layer). The device's
    kind is part of the run: another device's matrix products round otherwise, so vertex coordinates may differ
    in the last bits, and a resumed slice must be the uninterrupted one bit for bit. ``max_regions`` is not: it
    only stops a tile (with a DomainError), never changes one, so a run it stopped resumes with a larger one."""
    return {"kind": "header", "format": FORMAT, "maso": __version__, "what": WHAT,
            "network_plane": _network_digest(flat), "window": [float(v) for v in (*lo, *hi)],
            "tiles": [int(grid[0]), int(grid[1])], "tol": float(tol), "method": method,
            "device": "cpu" if device is None else device.type}


def pack_tile(part: SliceRegions, said: list[tuple[type[Warning], str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record of one tile's slice ``part`` (its fields as `unpack_tile` gives them back), ``said`` its
    warnings."""
    arrays = {k: np.asarray(getattr(part, k)) for k in (*_FLOATS, *_INDICES, "varying_codes", "shared_code")}
    mesh = part._mesh
    if mesh is not None:
        arrays.update(zip(_MESH, (mesh.P, mesh.E, mesh.EF)))
    stats = {k: v.item() if isinstance(v, np.generic) else v for k, v in part.stats.items()}
    meta = {"method": part.method, "tol": float(part._tol),
            "stats": {k: v for k, v in stats.items()
                      if isinstance(v, (bool, int, str)) or isinstance(v, float) and np.isfinite(v)},
            "mesh_faces": None if mesh is None else mesh.nF, "warnings": [[_category_name(c), m] for c, m in said]}
    return meta, arrays


# stats that later steps add up or read as numbers
_COUNTS = ("snapped", "splits", "merged", "slivers", "vertices", "edges", "duplicate_codes")
_AMOUNTS = ("values_seconds", "min_area", "seconds")


def unpack_tile(meta: dict[str, Any], arrays: dict[str, np.ndarray], *, n_units: int, code_dtype: Any, method: str,
                tol: float, lp_tol: float) -> dict[str, Any]:
    """One tile's fields from its record, after checking that they fit together and with the run (``method``,
    ``tol``; a tile that fell back to LP has method "lp" and ``lp_tol``): a crafted record with a valid checksum
    must not make a slice of the wrong shapes, with unsorted columns or non-finite coordinates, or one that
    breaks a later step. ValueError where it would."""
    kind, own_tol, stats = meta["method"], meta["tol"], meta["stats"]
    if kind not in ((method, "lp") if method == "mesh" else (method,)) or own_tol != (tol if kind == "mesh" else lp_tol):
        raise ValueError("method or tol of another run")
    if not isinstance(stats, dict) or not all(
            isinstance(v, (bool, int, str)) or isinstance(v, float) and np.isfinite(v) for v in stats.values()):
        raise ValueError("stats")
    if any(k in stats and (type(stats[k]) is not int or stats[k] < 0) for k in _COUNTS) or any(
            k in stats and (type(stats[k]) not in (int, float) or stats[k] < 0) for k in _AMOUNTS):
        raise ValueError("stats counts")
    a = {k: arrays[k] for k in (*_FLOATS, *_INDICES, "varying_codes", "shared_code")}
    n, V = len(a["areas"]), len(a["vertices"])
    off, pv, cols, adj = a["polygon_offsets"], a["polygon_vertices"], a["code_columns"], a["adjacency"]
    want = {"vertices": (V, 2), "areas": (n,), "interior_points": (n, 2), "polygon_offsets": (n + 1,),
            "polygon_vertices": (len(pv),), "code_columns": (len(cols),), "adjacency": (len(adj), 2),
            "varying_codes": (n, len(cols)), "shared_code": (n_units,)}
    wrong = [k for k, shape in want.items() if a[k].shape != shape
             or (a[k].dtype.kind != "f" if k in _FLOATS else k in _INDICES and a[k].dtype.kind not in "iu")]
    if wrong or a["varying_codes"].dtype != np.dtype(code_dtype) or a["shared_code"].dtype != np.dtype(code_dtype):
        raise ValueError(f"tile arrays of the wrong shape or dtype ({', '.join(wrong) or 'code dtype'})")
    if n < 1 or off[0] != 0 or off[-1] != len(pv) or (np.diff(off) < 3).any() or pv.min(initial=0) < 0 \
            or pv.max(initial=0) >= max(V, 1) or cols.min(initial=0) < 0 or cols.max(initial=0) >= max(n_units, 1) \
            or (np.diff(cols) <= 0).any() or adj.min(initial=0) < 0 or adj.max(initial=0) >= max(n, 1) \
            or (adj[:, 0] >= adj[:, 1]).any():
        raise ValueError("tile indices out of range or out of order")
    if not all(np.isfinite(a[k]).all() for k in _FLOATS):
        raise ValueError("non-finite coordinates or areas")
    mesh = None
    if kind == "mesh":  # its mesh: the tile's faces are its regions
        P, E, EF = (arrays[k] for k in _MESH)
        if not (meta["mesh_faces"] == n and type(meta["mesh_faces"]) is int and P.ndim == 2 and P.shape[1] == 2
                and P.dtype.kind == "f" and len(P) >= 3 and np.isfinite(P).all() and E.shape == EF.shape
                and E.ndim == 2 and E.shape[1] == 2 and E.dtype.kind in "iu" and EF.dtype.kind in "iu"
                and E.min(initial=0) >= 0 and E.max(initial=0) < len(P) and EF.min(initial=-1) >= -1
                and EF.max(initial=0) < n and len(np.unique(EF[EF >= 0])) == n):
            raise ValueError("tile mesh of the wrong shape or out of range")
        mesh = (P, E, EF)
    elif any(k in arrays for k in _MESH):
        raise ValueError("an LP tile with a mesh")
    said = [(_category(c), str(m)) for c, m in meta["warnings"]]
    return {**a, "method": kind, "tol": own_tol, "stats": stats, "mesh": mesh, "mesh_faces": meta["mesh_faces"],
            "warnings": said}


def _category_name(category: type[Warning]) -> str:
    return f"{category.__module__}.{category.__qualname__}"


def _category(name: Any) -> type[Warning]:
    """A warning class from its recorded name: maso's own and Python's (nothing else is imported); UserWarning
    for any other."""
    if not isinstance(name, str):
        raise TypeError("warning category")
    module, _, short = name.rpartition(".")
    found = getattr(_errors if module == "maso.errors" else builtins if module == "builtins" else None, short, None)
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning
