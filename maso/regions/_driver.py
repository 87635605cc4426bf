"""The public drivers: :func:`enumerate_regions` and :func:`iter_regions`."""

from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterable, Iterator

from maso._lp import LPStats
from maso.domain import as_domain
from maso.errors import NumericalWarning, ShapeError, WorkerError
from maso.network import Network
from maso.polytope import Polytope
from maso.regions._checkpoint import _Checkpoint, _fingerprint
from maso.regions._engine import _EPS, _VERTEX_MAX_DIM, DEFAULT_TOL, _Cell, _Engine
from maso.regions._parallel import (
    _chunks,
    _pool_context,
    _run_task,
    _run_task_packed,
    _unpack_regions,
    _worker_init,
)
from maso.regions._records import Region, RegionSet, Sliver

__all__ = ["enumerate_regions", "iter_regions"]


def _prepare(net: Network, domain: Any, tol: float, caller: str, method: str = "auto") -> tuple[_Engine, Polytope]:
    if not isinstance(net, Network):
        raise ShapeError(f"{caller} needs a maso.Network. Got {type(net).__name__}.")
    net._require_piecewise_linear(caller)
    if not (isinstance(tol, (int, float)) and _EPS <= tol < 1):
        raise ShapeError(f"The 'tol' parameter of {caller} must be a float in [{_EPS:g}, 1): distances below "
                         f"{_EPS:g} are numerical zero in float64. Got {tol!r}.")
    if method not in ("auto", "vertices", "lp"):
        raise ShapeError(f"The 'method' parameter of {caller} must be 'auto', 'vertices' or 'lp'. Got {method!r}.")
    dom = as_domain(domain, net.input_dim, caller=caller)
    if method == "auto":
        method = "vertices" if net.input_dim <= _VERTEX_MAX_DIM else "lp"
    return _Engine(net, dom, tol, method), dom


def _plan(eng: _Engine, min_tasks: int) -> tuple[list[_Cell], int]:
    """Split the domain through the first stages until there are enough independent tasks."""
    cells = [eng.root()]
    stage = 0
    while stage < len(eng.groups) and len(cells) < min_tasks:
        cells = eng.expand(cells, stage, stage + 1)
        stage += 1
    return cells, stage


def iter_regions(net: Network, domain: Any, *, tol: float = DEFAULT_TOL, method: str = "auto",
                 slivers: list | None = None) -> Iterator[Region]:
    """Stream the regions of ``net`` in ``domain``, one task at a time (memory: one task's cells).

    Parameters
    ----------
    net : Network
    domain : Box or Polytope
    tol : float, default=DEFAULT_TOL
    slivers : list, optional
        If given, slivers found are appended to it.

    Yields
    ------
    Region

    Examples
    --------
    >>> net = maso.mlp([2, 4, 1], seed=0)
    >>> sum(1 for _ in maso.iter_regions(net, maso.Box([-1, -1], [1, 1])))
    8
    """
    eng, dom = _prepare(net, domain, tol, "iter_regions", method)
    cells, stage = _plan(eng, 64)
    if slivers is not None:
        slivers.extend(eng.slivers)
    for chunk in _chunks(cells, 16):
        regions, sl, _ = _run_task((net, dom, tol, chunk, stage, eng.method))
        if slivers is not None:
            slivers.extend(sl)
        yield from regions


def enumerate_regions(
    net: Network,
    domain: Any,
    *,
    tol: float = DEFAULT_TOL,
    workers: int = 1,
    executor: Executor | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool | None = None,
    min_tasks: int = 64,
    method: str = "auto",
) -> RegionSet:
    """Every linear region of ``net`` that meets ``domain``, each exact and certified.

    Parameters
    ----------
    net : Network
        Any maso network (ReLU, leaky ReLU, abs, max-pool, maxout; residual and concatenation graphs). For
        image inputs the domain lives in the flattened input space.
    domain : Box or Polytope
        Bounded and full-dimensional.
    tol : float, default=1e-9
        Distance (in input units) below which a part of a cell is a sliver: reported in ``slivers``, not made a
        region. See the exactness policy in the module docs.
    workers : int, default=1
        Processes to run tasks in (a ``ProcessPoolExecutor``); ignored if ``executor`` is given.
    executor : concurrent.futures.Executor, optional
        Any executor (e.g. ``dask.distributed.Client.get_executor()`` or a Ray executor).
    checkpoint : path, optional
        Append each finished task to this file; a run restarted with the same path skips finished tasks.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    method : {"auto", "vertices", "lp"}, default="auto"
        How cells are cut. ``"vertices"`` carries each cell's vertices and their incidences (double description):
        cuts and facets are decided exactly from vertices, with one LP per region (its Chebyshev centre); fast in
        low dimension. ``"lp"`` decides every cut and facet by LPs; its cost grows gently with the dimension.
        ``"auto"``: vertices up to d = 6.
    min_tasks : int, default=64
        The domain is first split into at least this many independent cells (when the network allows), grouped
        into tasks: one task in a single process without a checkpoint, and ``max(4 * workers, min_tasks // 4)``
        otherwise (a task is the unit of work of a worker and of a checkpoint record).

    Returns
    -------
    RegionSet

    Raises
    ------
    DomainError
        Empty, unbounded or wrong-dimensional domain.
    CheckpointError
        The checkpoint file belongs to another run.
    SolverError
        Both LP solvers failed on a problem.

    Examples
    --------
    >>> net = maso.mlp([2, 8, 8, 1], seed=0)
    >>> regions = maso.enumerate_regions(net, maso.Box([-1, -1], [1, 1]))
    >>> len(regions), regions.verify().ok
    (33, True)
    """
    eng, dom = _prepare(net, domain, tol, "enumerate_regions", method)
    fp = _fingerprint(net, dom, tol, eng.method)
    ck = _Checkpoint(os.fspath(checkpoint), fp) if checkpoint is not None else None
    cells, stage = _plan(eng, min_tasks)
    # Tasks: few when one process works without a checkpoint (less overhead), more otherwise.
    n_par = workers if executor is None else max(workers, 4)
    n_tasks = 1 if (checkpoint is None and executor is None and workers <= 1) else max(4 * n_par, min_tasks // 4)
    cells = _chunks(cells, n_tasks)
    slivers_all = list(eng.slivers)
    stats = LPStats()
    stats.merge(eng.stats)
    results: dict[int, tuple[list[Region], list[Sliver]]] = dict(ck.done) if ck else {}
    todo = [i for i in range(len(cells)) if i not in results]
    show = progress if progress is not None else sys.stderr.isatty()
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="regions", unit="task")
    own = None
    if executor is None and workers > 1:
        own = executor = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                                             initializer=_worker_init)
    try:
        payloads = [(net, dom, tol, cells[i], stage, eng.method) for i in todo]  # a list: Dask refuses iterators
        it: Iterable[Any] = (executor.map(_run_task_packed, payloads) if executor is not None
                             else map(_run_task, payloads))
        n_regions = sum(len(r) for r, _ in results.values())
        for i, (regions, sl, st) in zip(todo, it):
            if executor is not None:
                regions = _unpack_regions(regions)
            results[i] = (regions, sl)
            stats.merge(st)
            if ck is not None:
                ck.save(i, regions, sl)
            n_regions += len(regions)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(regions=n_regions)
    except BrokenProcessPool as exc:
        kept = f"; the {len(results)} finished task(s) are kept in {checkpoint!s}" if ck is not None else ""
        who = f"enumerate_regions(workers={workers})" if own is not None else "the executor passed in"
        raise WorkerError(
            f"a worker process of {who} died before returning its task{kept}. Workers start by importing the "
            "main module, so a script must call enumerate_regions under 'if __name__ == \"__main__\":'; "
            "otherwise a worker may have run out of memory (try fewer workers)."
        ) from exc
    finally:
        if bar is not None:
            bar.close()
        if own is not None:
            own.shutdown()
    regions_all: list[Region] = []
    for i in range(len(cells)):
        regions, sl = results[i]
        regions_all.extend(regions)
        slivers_all.extend(sl)
    if slivers_all:
        warnings.warn(f"{len(slivers_all)} part(s) thinner than tol={tol:g} were not made regions; see "
                      "RegionSet.slivers.", NumericalWarning, stacklevel=2)
    info = {"method": eng.method, "lp_daqp": stats.daqp, "lp_highs": stats.highs, "lp_fallbacks": stats.fallbacks,
            "tasks": len(cells)}
    return RegionSet(net, dom, regions_all, slivers_all, tol, info)
