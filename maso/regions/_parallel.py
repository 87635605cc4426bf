"""Running enumeration tasks in other processes: task payloads, packed results, worker pools."""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
import torch

from maso._lp import LPStats
from maso.affine import Affine
from maso.network import Network
from maso.polytope import Polytope
from maso.regions._engine import _Cell, _Engine
from maso.regions._records import Region, Sliver


def _run_task(payload: tuple[Network, Polytope, float, list[_Cell], int, str]
              ) -> tuple[list[Region], list[Sliver], LPStats]:
    net, domain, tol, cells, stage, method = payload
    eng = _Engine(net, domain, tol, method)
    cells = eng.expand(list(cells), stage)
    return eng.finalize(cells), eng.slivers, eng.stats


def _pack_regions(regions: list[Region]) -> dict[str, Any]:
    """Regions as a few concatenated arrays: pickling them costs a copy, not ~10 pickled arrays per region
    (12,836 regions: 1.3 s to pickle and unpickle as objects, which cancelled the speed-up of 2 workers)."""
    if not regions:
        return {"n": 0}
    fu = [f for r in regions for f in r.facet_units]
    return {
        "n": len(regions),
        "code": np.stack([r.code for r in regions]),
        "rows": np.array([len(r.polytope.b) for r in regions], dtype=np.int64),
        "A": np.concatenate([r.polytope.A for r in regions]),
        "b": np.concatenate([r.polytope.b for r in regions]),
        "units": np.concatenate([r.polytope.units for r in regions]),
        "fu_len": np.array([len(f) for f in fu], dtype=np.int64),
        "fu": np.array([u for f in fu for u in f], dtype=np.int64),
        "center": np.stack([r.interior_point for r in regions]),
        "radius": np.array([r.inradius for r in regions], dtype=np.float64),
        "map_A": np.stack([r.affine.A for r in regions]),
        "map_b": np.stack([r.affine.b for r in regions]),
    }


def _unpack_regions(pk: Any) -> list[Region]:
    """Inverse of :func:`_pack_regions`; regions hold read-only views of the packed arrays."""
    if isinstance(pk, list):  # a checkpoint written before regions were packed
        return pk
    n = pk["n"]
    if n == 0:
        return []
    for key in ("code", "A", "b", "units", "center", "map_A", "map_b"):
        pk[key].setflags(write=False)
    ends = np.cumsum(pk["rows"])
    starts = ends - pk["rows"]
    fu_flat = pk["fu"].tolist()
    fu_ends = np.cumsum(pk["fu_len"]).tolist()
    fu = [tuple(fu_flat[e - k:e]) for e, k in zip(fu_ends, pk["fu_len"].tolist())]
    A, b, units, code, center = pk["A"], pk["b"], pk["units"], pk["code"], pk["center"]
    map_A, map_b, radius = pk["map_A"], pk["map_b"], pk["radius"].tolist()
    out = []
    for i, (a, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        poly = Polytope._trusted(A[a:e], b[a:e], units[a:e])
        out.append(Region(code[i], poly, tuple(fu[a:e]), center[i], radius[i], Affine._trusted(map_A[i], map_b[i])))
    return out


def _run_task_packed(payload: tuple[Network, Polytope, float, list[_Cell], int, str]
                     ) -> tuple[dict[str, Any], list[Sliver], LPStats]:
    """:func:`_run_task` for another process: the regions come back packed."""
    regions, slivers, stats = _run_task(payload)
    return _pack_regions(regions), slivers, stats


def _pool_context() -> Any:
    """Worker processes that start fast and safely.

    Forking this process once torch's OpenMP thread pool runs can deadlock the children, so workers come from a
    fork server (a clean process that has imported maso but run no torch kernel); "spawn" where there is none.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["maso", "maso._warm"])  # workers fork with maso and its kernels loaded
        return ctx
    return multiprocessing.get_context("spawn")


def _worker_init() -> None:
    """Pool workers: one torch thread each (the pool supplies the parallelism)."""
    torch.set_num_threads(1)


def _chunks(cells: list[_Cell], n_tasks: int) -> list[list[_Cell]]:
    """Group cells into ``n_tasks`` contiguous tasks (deterministic: checkpoints rely on it)."""
    n_tasks = max(1, min(n_tasks, len(cells)))
    bounds = np.linspace(0, len(cells), n_tasks + 1).round().astype(int)
    return [cells[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
