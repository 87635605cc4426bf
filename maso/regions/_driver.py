"""The public drivers: [`enumerate_regions`][maso.enumerate_regions] and
[`iter_regions`][maso.iter_regions]."""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from maso._lp import LPStats
from maso._validation import check_checkpoint_path
from maso.core.domain import as_domain
from maso.core.network import Network
from maso.core.polytope import Polytope
from maso.errors import (
    CheckpointError,
    DomainError,
    NumericalWarning,
    ParameterError,
    ParameterShapeError,
    ResourceError,
    ShapeError,
    WorkerError,
)
from maso.regions._checkpoint import _cells_digest, _Checkpoint, _run_header
from maso.regions._engine import _VERTEX_MAX_DIM, Engine, _Cell, require_piecewise_linear
from maso.regions._engines import make_engine
from maso.regions._parallel import (
    _bounds,
    _Budget,
    _bytes_of,
    _chunks,
    _gib,
    _memory_budget,
    _pool,
    _run_task,
    _run_task_packed,
    _spawning,
    _stop_pool,
    _unpack_regions,
)
from maso.regions._records import Region, RegionSet, Sliver
from maso.regions._tolerances import _EPS, DEFAULT_TOL

__all__ = ["enumerate_regions", "iter_regions"]


# ------------------------------------------------------------------------------------------- parameters
def _integer(value: Any, name: str, caller: str, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"The {name!r} parameter of {caller} must be an integer >= {minimum}"
                             f"{' or None' if allow_none else ''}. Got {value!r} ({type(value).__name__}).")
    if int(value) < minimum:
        raise ParameterError(f"The {name!r} parameter of {caller} must be an integer >= {minimum}. Got {int(value)}.")
    return int(value)


def _tolerance(tol: Any, caller: str) -> float:
    ok = isinstance(tol, numbers.Real) and not isinstance(tol, (bool, np.bool_))
    if not (ok and _EPS <= float(tol) < 1):  # NaN fails the comparison
        raise ParameterShapeError(
            f"The 'tol' parameter of {caller} must be a real number in [{_EPS:g}, 1): distances below {_EPS:g} are "
            f"numerical zero in float64. Got {tol!r}{'' if ok else f' ({type(tol).__name__})'}.")
    return float(tol)


def _method(method: Any, caller: str) -> str:
    if not isinstance(method, str) or method not in ("auto", "vertices", "lp"):
        raise ParameterShapeError(f"The 'method' parameter of {caller} must be 'auto', 'vertices' or 'lp'. "
                                  f"Got {method!r}.")
    return method


def _max_memory(value: Any, caller: str) -> float:
    if isinstance(value, str) and value == "auto":
        return _memory_budget()
    if value is None:
        return math.inf
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not float(value) > 0:
        raise ParameterError(f"The 'max_memory' parameter of {caller} must be a number of bytes > 0, 'auto' or None "
                             f"(no limit). Got {value!r}.")
    return float(value)


def _check_parameters(caller: str, *, workers: Any, executor: Any, checkpoint: Any, progress: Any, min_tasks: Any,
                      max_regions: Any) -> tuple[int, int, int | None]:
    workers = _integer(workers, "workers", caller, 1)
    min_tasks = _integer(min_tasks, "min_tasks", caller, 1)
    max_regions = _integer(max_regions, "max_regions", caller, 1, allow_none=True)
    if executor is not None and (isinstance(executor, type) or not (
            isinstance(executor, Executor) or callable(getattr(executor, "map", None)))):
        raise ParameterError(f"The 'executor' parameter of {caller} must be a concurrent.futures.Executor instance "
                             f"(or an object with a map method, as Dask's and Ray's executors have). Got {executor!r}.")
    check_checkpoint_path(checkpoint, caller)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise ParameterError(f"The 'progress' parameter of {caller} must be True, False or None (show it when stderr "
                             f"is a terminal). Got {progress!r} ({type(progress).__name__}).")
    return workers, min_tasks, max_regions


def _prepare(net: Network, domain: Any, tol: Any, caller: str, method: Any = "auto"
             ) -> tuple[Engine[Any], Polytope]:
    """The engine of a run (its ``tol``: the checked tolerance as a float) and the domain."""
    if not isinstance(net, Network):
        raise ShapeError(f"{caller} needs a maso.Network. Got {type(net).__name__}.")
    require_piecewise_linear(net, caller)
    tol = _tolerance(tol, caller)
    method = _method(method, caller)
    dom = as_domain(domain, net.input_dim, caller=caller)
    if method == "auto":
        method = "vertices" if net.input_dim <= _VERTEX_MAX_DIM else "lp"
    return make_engine(net, dom, tol, method), dom


# -------------------------------------------------------------------------------------------------- plan
def _plan(eng: Engine[Any], budget: _Budget, min_tasks: int = 1, stage: int | None = None
          ) -> tuple[list[_Cell], int]:
    """Split the domain through the first stages: until there are ``min_tasks`` independent cells (when the
    network allows), or through ``stage`` stages (a resumed run plans what its checkpoint planned)."""
    cells = [eng.root()]
    s = 0
    while s < len(eng.groups) and (len(cells) < min_tasks if stage is None else s < stage):
        cells = eng.expand(cells, s, s + 1, budget=budget)
        s += 1
    return cells, s


def _n_tasks(n_par: int, min_tasks: int, checkpointed: bool, serial: bool) -> int:
    """Tasks: one when a single process works without a checkpoint (least overhead); a checkpointed run's do not
    depend on the number of workers (any worker count resumes it); else enough to balance the workers."""
    if checkpointed:
        return max(16, min_tasks // 4)
    return 1 if serial else max(4 * n_par, min_tasks // 4)


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

    Raises
    ------
    ResourceError
        The cells of a task would take more than half the memory (see ``max_memory`` of
        [`enumerate_regions`][maso.enumerate_regions]).

    Examples
    --------
    >>> net = maso.mlp([2, 4, 1], seed=0)
    >>> sum(1 for _ in maso.iter_regions(net, maso.Box([-1, -1], [1, 1])))
    8
    """
    eng, dom = _prepare(net, domain, tol, "iter_regions", method)
    tol = eng.tol
    limit = _memory_budget()
    cells, stage = _plan(eng, _Budget(None, limit), 64)
    if slivers is not None:
        slivers.extend(eng.slivers)
    for chunk in _chunks(cells, _bounds(len(cells), 16)):
        regions, sl, _ = _run_task((net, dom, tol, chunk, stage, eng.method, (None, limit)))
        if slivers is not None:
            slivers.extend(sl)
        yield from regions


# ------------------------------------------------------------------------------------------------- run
class _Progress:
    """The progress bar of a run: shown before planning (planning a large domain takes long), then over tasks,
    with the stage and cells of the task at hand when tasks run in this process."""

    def __init__(self, show: bool) -> None:
        self.bar = None
        self.regions = 0
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=None, desc="regions: planning", unit="task", dynamic_ncols=True,
                            bar_format="{desc} [{elapsed}{postfix}]")

    def planning(self, stage: int, n_stages: int, live: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"stage {stage + 1}/{n_stages}, {live:,} cells")

    def tasks(self, total: int, done: int) -> None:
        if self.bar is not None:
            self.bar.set_description_str("regions", refresh=False)
            self.bar.bar_format = None
            self.bar.reset(total=total)
            self.bar.update(done)
            self.bar.set_postfix_str(f"{self.regions:,} regions")

    def inside(self, stage: int, n_stages: int, live: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.regions:,} regions; task at stage {stage + 1}/{n_stages}, {live:,} cells")

    def task_done(self, n_regions: int) -> None:
        self.regions += n_regions
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.regions:,} regions")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    max_regions: int | None = None,
    max_memory: float | str | None = "auto",
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
        region. See the exactness policy in the module docs. Any real number in [1e-12, 1) (NumPy floats too).
    workers : int, default=1
        Processes to run tasks in (a ``ProcessPoolExecutor`` whose workers ignore Ctrl-C and exit when this
        process dies); ignored if ``executor`` is given.
    executor : concurrent.futures.Executor, optional
        Any executor (e.g. ``dask.distributed.Client.get_executor()`` or a Ray executor).
    checkpoint : path, optional
        Append each finished task to this file (typed arrays with checksums, never pickles); a run restarted with
        the same path, with any number of workers, skips finished tasks. A complete checkpoint is only read (it
        may be read-only). See the docs' "Scale" section.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal), from the start: planning, then tasks, with the
        regions found so far.
    min_tasks : int, default=64
        The domain is first split into at least this many independent cells (when the network allows), grouped
        into tasks: one task in a single process without a checkpoint, ``max(4 * workers, min_tasks // 4)`` with
        workers or an executor, and ``max(16, min_tasks // 4)`` with a checkpoint, whatever the workers (a task is
        the unit of work of a worker and of a checkpoint record). A checkpoint keeps the split it was started
        with, so resuming it ignores ``min_tasks``.
    method : {"auto", "vertices", "lp"}, default="auto"
        How cells are cut. ``"vertices"`` carries each cell's vertices and their incidences (double description):
        cuts and facets are decided exactly from vertices, with one LP per region (its Chebyshev centre); fast in
        low dimension. ``"lp"`` decides every cut and facet by LPs; its cost grows gently with the dimension.
        ``"auto"``: vertices up to d = 6.
    max_regions : int or None, default=None
        Stop with a [`DomainError`][maso.errors.DomainError] once more regions than this are found, or more
        cells are alive in one task (each cell becomes at least one region); ``None`` for no limit.
    max_memory : float, "auto" or None, default="auto"
        Bytes the cells of the tasks and the regions found may take (estimated); past it a
        [`ResourceError`][maso.errors.ResourceError] (a ``MemoryError``) stops the run, instead of the
        operating system. ``"auto"``: half of the memory the process can have (the machine's, a cgroup's or
        ``ulimit -v``); ``None``: no limit. With ``workers``, each running task gets its share.

    Returns
    -------
    RegionSet
        ``stats`` holds the LPs solved, ``tasks`` and ``tasks_resumed`` (read from the checkpoint).

    Raises
    ------
    DomainError
        Empty, unbounded or wrong-dimensional domain; more than ``max_regions`` regions.
    ResourceError
        The run outgrew ``max_memory``.
    ParameterError
        A parameter of the wrong type or out of range (``tol`` and ``method`` errors are also ``ShapeError``).
    CheckpointError
        The checkpoint file cannot be used (another run's, not a checkpoint, damaged header, unreadable or
        read-only while work remains, a directory, in use by another process), or could not be written (disk
        full): raised before any work, or with the finished tasks kept.
    WorkerError
        A worker process died.
    SolverError
        Both LP solvers failed on a problem.

    Warns
    -----
    CheckpointWarning
        Damaged records of the checkpoint were skipped (their tasks are computed again).
    NumericalWarning
        Parts thinner than ``tol`` were not made regions.

    Examples
    --------
    >>> net = maso.mlp([2, 8, 8, 1], seed=0)
    >>> regions = maso.enumerate_regions(net, maso.Box([-1, -1], [1, 1]))
    >>> len(regions), regions.verify().ok
    (33, True)
    >>> try:
    ...     maso.enumerate_regions(net, maso.Box([-1, -1], [1, 1]), max_regions=10)
    ... except maso.errors.DomainError as e:
    ...     print(str(e).split(" (")[0])
    enumerate_regions stopped at stage 1 of 2: 11 cells
    """
    caller = "enumerate_regions"
    workers, min_tasks, max_regions = _check_parameters(
        caller, workers=workers, executor=executor, checkpoint=checkpoint, progress=progress, min_tasks=min_tasks,
        max_regions=max_regions)
    eng, dom = _prepare(net, domain, tol, caller, method)
    eng.check_domain()  # a thin or unresolvable domain is refused before a checkpoint file is made
    tol = eng.tol
    max_bytes = _max_memory(max_memory, caller)
    serial = executor is None and workers <= 1
    n_par = workers if executor is None else max(workers, 4)
    show = progress if progress is not None else sys.stderr.isatty()
    bar = _Progress(bool(show))
    ck = None
    try:
        if checkpoint is not None:
            ck = _Checkpoint(os.fspath(checkpoint), _run_header(net, dom, tol, eng.method), net)
        return _run(net, dom, tol, eng, ck, executor, workers, serial, n_par, min_tasks, max_regions, max_bytes, bar)
    finally:
        bar.close()
        if ck is not None:
            ck.close()


def _run(net: Network, dom: Polytope, tol: float, eng: Engine[Any], ck: _Checkpoint | None, executor: Any,
         workers: int, serial: bool, n_par: int, min_tasks: int, max_regions: int | None, max_bytes: float,
         bar: _Progress) -> RegionSet:
    planner = _Budget(max_regions, max_bytes, report=bar.planning)
    cells: list[_Cell] | None = None
    if ck is not None and ck.plan is not None:  # resume: the checkpoint's plan and tasks
        stage, bounds = ck.plan["stage"], ck.plan["bounds"]
        if not ck.complete:
            cells, _ = _plan(eng, planner, stage=stage)
            if len(cells) != ck.plan["n_cells"] or ck.plan["cells"] != _cells_digest([c.code for c in cells]):
                raise CheckpointError(
                    f"Checkpoint {ck.name!r} was planned differently: its {ck.plan['n_cells']} cells at stage {stage} "
                    f"are not the {len(cells)} this maso plans (a change in the enumeration code?). Delete it to "
                    "start over.")
        plan_slivers = list(ck.plan_slivers)
    else:
        cells, stage = _plan(eng, planner, min_tasks)
        bounds = _bounds(len(cells), _n_tasks(n_par, min_tasks, ck is not None, serial))
        plan_slivers = list(eng.slivers)
        if ck is not None:
            ck.write_plan(stage, [c.code for c in cells], bounds, min_tasks, plan_slivers)
    n_tasks = len(bounds) - 1
    results: dict[int, tuple[list[Region], list[Sliver]]] = dict(ck.done) if ck is not None else {}
    resumed = len(results)
    todo = [i for i in range(n_tasks) if i not in results]
    # (cells is None only for a complete checkpoint, which leaves nothing to do)
    tasks = _chunks(cells, bounds) if todo and cells is not None else []
    stats = LPStats()
    stats.merge(eng.stats)
    bar.regions = sum(len(r) for r, _ in results.values())
    bar.tasks(n_tasks, n_tasks - len(todo))
    held = sum(_bytes_of(r) for regions, _ in results.values() for r in regions)
    share = max_bytes if serial else max_bytes / max(1, min(n_par, len(todo)))  # each running task's part

    def payload(i: int) -> tuple:
        return (net, dom, tol, tasks[i], stage, eng.method, (max_regions, share))

    def finished(i: int, regions: list[Region], sl: list[Sliver], st: LPStats) -> None:
        nonlocal held
        results[i] = (regions, sl)
        stats.merge(st)
        if ck is not None:
            ck.save(i, regions, sl)
        bar.task_done(len(regions))
        held += sum(_bytes_of(r) for r in regions)
        if max_regions is not None and bar.regions > max_regions:
            raise DomainError(f"enumerate_regions stopped after {len(results)} of {n_tasks} tasks: {bar.regions:,} "
                              f"regions are more than max_regions={max_regions:,}. Use a smaller domain, or raise "
                              "max_regions (None: no limit).")
        if held > max_bytes:
            raise ResourceError(f"enumerate_regions stopped after {len(results)} of {n_tasks} tasks: the "
                                f"{bar.regions:,} regions found take about {_gib(held)}, over its memory budget of "
                                f"{_gib(max_bytes)}. Use a smaller domain, or raise max_memory (in bytes; None: no "
                                "limit) if the machine has the memory.")

    if serial:
        for i in todo:
            regions, sl, st = _run_task(payload(i), report=bar.inside)
            finished(i, regions, sl, st)
    elif executor is not None:  # any executor: map over a list (Dask refuses iterators)
        for i, (packed, sl, st) in zip(todo, executor.map(_run_task_packed, [payload(i) for i in todo])):
            finished(i, _unpack_regions(packed), sl, st)
    elif todo:
        _run_pool(todo, payload, finished, workers, ck)
    regions_all: list[Region] = []
    slivers_all = plan_slivers
    for i in range(n_tasks):
        regions, sl = results[i]
        regions_all.extend(regions)
        slivers_all.extend(sl)
    if slivers_all:
        warnings.warn(f"{len(slivers_all)} part(s) thinner than tol={tol:g} were not made regions; see "
                      "RegionSet.slivers.", NumericalWarning, stacklevel=3)
    info = {"method": eng.method, "lp_daqp": stats.daqp, "lp_highs": stats.highs, "lp_fallbacks": stats.fallbacks,
            "tasks": n_tasks, "tasks_resumed": resumed}
    return RegionSet(net, dom, regions_all, slivers_all, tol, info)


def _run_pool(todo: list[int], payload: Any, finished: Any, workers: int, ck: _Checkpoint | None) -> None:
    """Tasks in a pool of our own, each result taken (and checkpointed) as soon as it is done. On any error or
    Ctrl-C the pool is stopped at once (running tasks are killed, not awaited), and the checkpoint keeps what
    finished."""
    pool = _pool(min(workers, len(todo)))
    try:
        with _spawning(pool):
            pending: dict[Future, int] = {pool.submit(_run_task_packed, payload(i)): i for i in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=pending.__getitem__):
                i = pending.pop(fut)
                packed, sl, st = fut.result()
                finished(i, _unpack_regions(packed), sl, st)
    except BrokenProcessPool as exc:
        _stop_pool(pool)
        kept = f"; the {len(ck.done)} finished task(s) are kept in {ck.name!r}" if ck is not None else ""
        raise WorkerError(
            f"a worker process of enumerate_regions(workers={workers}) died before returning its task{kept}. Workers "
            "start by importing the main module, so a script must call enumerate_regions under "
            "'if __name__ == \"__main__\":'; otherwise a worker may have run out of memory (try fewer workers, or a "
            "lower max_memory)."
        ) from exc
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown()
