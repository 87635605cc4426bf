"""Running enumeration tasks: task payloads, packed results, the budget of a task, and worker pools whose workers
die with their parent."""

from __future__ import annotations

import contextlib
import itertools
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch

from maso._lp import LPStats
from maso._validation import sealed
from maso.core.affine import Affine
from maso.core.network import Network
from maso.core.polytope import Polytope
from maso.errors import DomainError, ResourceError
from maso.regions._engine import _Cell
from maso.regions._engines import make_engine
from maso.regions._records import Region, Sliver

#: A task: network, domain, tol, its cells, the stage they are at, the engine's ``method`` (its name, not the
#: engine: each task gathers its own LP counts and slivers, in whatever process runs it), and its limits (cells,
#: bytes).
Payload = tuple[Network, Polytope, float, list[_Cell], int, str, tuple[int | None, float]]
#: The default memory budget is this fraction of the memory the process can have (the rest: Python, torch, the
#: regions' records being built).
_MEMORY_SHARE = 0.5


def _run_task(payload: Payload, report: Callable[[int, int, int], None] | None = None
              ) -> tuple[list[Region], list[Sliver], LPStats]:
    net, domain, tol, cells, stage, method, limits = payload
    eng = make_engine(net, domain, tol, method)
    budget = _Budget(*limits, report=report)
    cells = eng.expand(list(cells), stage, budget=budget)
    return eng.finalize(cells), eng.slivers, eng.stats


def _run_task_packed(payload: Payload) -> tuple[dict[str, Any], list[Sliver], LPStats]:
    """`_run_task` for another process: the regions come back packed."""
    regions, slivers, stats = _run_task(payload)
    return _pack_regions(regions), slivers, stats


# ------------------------------------------------------------------------------------------ packed records
def _pack_regions(regions: list[Region]) -> dict[str, Any]:
    """Regions as a few concatenated arrays: pickling them costs a copy, not ~10 pickled arrays per region
    (12,836 regions: 1.3 s to pickle and unpickle as objects, which cancelled the speed-up of 2 workers).
    Checkpoint records store the same arrays."""
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


def _unpack_regions(pk: dict[str, Any]) -> list[Region]:
    """Inverse of `_pack_regions`; regions hold read-only views of the packed arrays."""
    n = pk["n"]
    if n == 0:
        return []
    for key in ("code", "A", "b", "units", "center", "map_A", "map_b"):
        if pk[key].flags.writeable:
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
        poly = Polytope.from_owned(A[a:e], b[a:e], units[a:e])
        out.append(Region(code[i], poly, tuple(fu[a:e]), center[i], radius[i], Affine.from_owned(map_A[i], map_b[i])))
    return out


def _pack_slivers(slivers: list[Sliver]) -> dict[str, np.ndarray]:
    """Slivers as arrays (for checkpoint records): points and code prefixes stacked when they share a dtype and
    shape (always, from the engine), else one array each, so that every dtype comes back as it was."""
    out = {
        "sl_unit": np.array([s.unit for s in slivers], dtype=np.int64),
        "sl_piece": np.array([s.piece for s in slivers], dtype=np.int64),
        "sl_thickness": np.array([s.thickness for s in slivers], dtype=np.float64),
    }
    for key, arrays in (("sl_point", [np.asarray(s.point) for s in slivers]),
                        ("sl_code", [np.asarray(s.code_prefix) for s in slivers])):
        if arrays and all(a.dtype == arrays[0].dtype and a.shape == arrays[0].shape for a in arrays):
            out[key] = np.stack(arrays)
        else:
            out.update({f"{key}.{i}": a for i, a in enumerate(arrays)})
    return out


def _unpack_slivers(arrays: dict[str, np.ndarray]) -> list[Sliver]:
    """Inverse of `_pack_slivers` (KeyError or ValueError on arrays that do not fit together)."""
    unit, piece, thick = (arrays[k].tolist() for k in ("sl_unit", "sl_piece", "sl_thickness"))
    if not len(unit) == len(piece) == len(thick):
        raise ValueError("sliver arrays of different lengths")
    cols = {}
    for key in ("sl_point", "sl_code"):
        cols[key] = arrays[key] if key in arrays else [arrays[f"{key}.{i}"] for i in range(len(unit))]
        if len(cols[key]) != len(unit):
            raise ValueError("sliver arrays of different lengths")
    return [Sliver(int(u), int(p), float(t), sealed(cols["sl_point"][i]), sealed(cols["sl_code"][i]))
            for i, (u, p, t) in enumerate(zip(unit, piece, thick))]


# ------------------------------------------------------------------------------------------------ budget
def _memory_budget() -> float:
    """Bytes the cells and regions of one enumeration may take by default: half of the memory this process can
    have (the machine's, or less under a cgroup limit or an address-space/data limit), as slices have."""
    limits: list[float] = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                limits.append(int(fh.read().strip()))  # "max" (no limit) is not an int
        except (OSError, ValueError):
            pass
    try:
        import resource

        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as fh:
            statm = fh.read().split()
        for limit, used in ((resource.RLIMIT_AS, int(statm[0]) * page), (resource.RLIMIT_DATA, int(statm[5]) * page)):
            soft = resource.getrlimit(limit)[0]
            if soft != resource.RLIM_INFINITY:
                limits.append(max(0, soft - used))
    except (ImportError, OSError, ValueError, IndexError, AttributeError):
        pass
    return _MEMORY_SHARE * min(limits) if limits else math.inf


def _bytes_of(obj: Any) -> float:
    """Rough size of a cell or a region in memory: its arrays plus the objects around them."""
    if isinstance(obj, Region):
        p, f = obj.polytope, obj.affine
        assert p.units is not None  # an enumerated region's rows are labelled
        arrays = (obj.code, p.A, p.b, p.units, obj.interior_point, f.A, f.b)
        return sum(a.nbytes for a in arrays) + 112 * len(arrays) + 64 * len(p.b) + 900
    total = 600.0
    for name in (n for cls in type(obj).__mro__ for n in getattr(cls, "__slots__", ())):  # a _VertexCell's too
        v = getattr(obj, name, None)
        if isinstance(v, np.ndarray):
            total += v.nbytes + 112
        elif isinstance(v, list):  # row labels: a list of lists of (unit, piece) tuples
            total += 120 * len(v) + 56
    return total


def _gib(n: float) -> str:
    if n >= 2**27:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**23 else f"{n / 2**10:.1f} KiB"


class _Budget:
    """Limits of one task (or of the planning): the cells alive in its engine, and their memory.

    The engine calls `begin` at every stage and `grew` after every split (one cell can split into
    millions of parts within a stage); past a limit it raises. Every cell alive becomes at least one region
    (unless it ends as a sliver), so ``max_cells`` is the run's ``max_regions``.
    """

    _EVERY = 64  # splits between memory checks and progress reports

    def __init__(self, max_cells: int | None, max_bytes: float,
                 report: Callable[[int, int, int], None] | None = None) -> None:
        self.max_cells = max_cells
        self.max_bytes = max_bytes
        self.report = report
        self.live = 0
        self.stage, self.n_stages = 0, 0
        self.per_cell = 0.0
        self._calls = 0
        self._last_report = 0.0

    def begin(self, stage: int, n_stages: int, cells: list[_Cell]) -> None:
        self.stage, self.n_stages, self.live = stage, n_stages, len(cells)
        if cells:
            self.per_cell = max(self.per_cell, _bytes_of(cells[-1]))
        self._check(cells[-1:])

    def grew(self, k: int, parts: list[_Cell]) -> None:
        self.live += k
        if self.max_cells is not None and self.live > self.max_cells:
            raise DomainError(
                f"enumerate_regions stopped at stage {self.stage + 1} of {self.n_stages}: {self.live:,} cells (parts "
                f"of the domain, each of them at least one region) are more than max_regions={self.max_cells:,}. "
                "Use a smaller domain, or raise max_regions (None: no limit).")
        self._calls += 1
        if self._calls % self._EVERY == 0:
            self._check(parts)

    def _check(self, parts: list[_Cell]) -> None:
        if parts:  # a running estimate: cells grow (more rows, more vertices) stage after stage
            self.per_cell = 0.9 * self.per_cell + 0.1 * _bytes_of(parts[-1]) if self.per_cell else _bytes_of(parts[-1])
        need = self.live * self.per_cell
        if need > self.max_bytes:
            raise ResourceError(
                f"enumerate_regions stopped at stage {self.stage + 1} of {self.n_stages}: its {self.live:,} cells "
                f"(parts of the domain, each of them at least one region) take about {_gib(need)}, over its memory "
                f"budget of {_gib(self.max_bytes)}. Use a smaller domain, or raise max_memory (in bytes; None: no "
                "limit) if the machine has the memory.")
        if self.report is not None:
            now = time.monotonic()
            if now - self._last_report > 0.2:
                self._last_report = now
                self.report(self.stage, self.n_stages, self.live)


# ----------------------------------------------------------------------------------------------- workers
def _pool_context() -> Any:
    """Worker processes that start fast and safely.

    Forking this process once torch's OpenMP thread pool runs can deadlock the children, so workers come from a
    fork server (a clean process that has imported maso but run no torch kernel); "spawn" where there is none.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["maso", "maso.kernels._warm"])  # workers fork with maso and its kernels loaded
        return ctx
    return multiprocessing.get_context("spawn")


def _pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers ignore Ctrl-C (the parent stops them) and exit when the parent dies.

    The fork server (and the resource tracker) start now, with SIGINT blocked, which they and the workers they
    fork inherit: a Ctrl-C while they start (seconds, importing torch) is one KeyboardInterrupt in the caller,
    not a traceback in each process. Starting it is not awaited, so Ctrl-C works all along. Without a fork
    server, workers are spawned at the first submits: make those under `_spawning`.
    """
    ctx = _pool_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        with _sigint_blocked():
            forkserver.ensure_running()
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))


def _spawning(pool: ProcessPoolExecutor) -> contextlib.AbstractContextManager:
    """Context of the first submits to `_pool`'s pool, which start its workers.

    With a fork server, each start waits until the server has forked the worker (after its imports: seconds), and
    a request sent cannot be taken back: a worker forked after its parent died fails with a traceback. So a Ctrl-C
    there is held until the workers are up, then raised (a second one is raised at once). Without a fork server
    the workers are spawned here, with SIGINT blocked, for the reason given in `_pool`.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        return _sigint_held()
    return _sigint_blocked()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """A first SIGINT is delivered again (to the handler it would have reached) when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if held:
            raise KeyboardInterrupt
        held.append(signum)

    old = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if held:
            signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread while it starts processes: they inherit the mask, so they never see a
    Ctrl-C (their parent stops them); here it is not lost, only delivered when the block ends (or at once through
    another thread)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield  # pragma: no cover - Windows
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # starting, it blocks SIGINT and then *unblocks* it: start it first
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop_pool(pool: ProcessPoolExecutor, manager_wait: float = 5.0) -> None:
    """Stop a pool now (Ctrl-C, an error): pending tasks are cancelled and running ones killed, not awaited.

    Then wait (at most `manager_wait` seconds) for the pool's manager thread, which closes the pool's wake-up
    pipe once it sees the workers gone. Python 3.11 wakes that thread at interpreter exit without its lock: a
    pipe being closed by the thread just then printed ``OSError: [Errno 9] Bad file descriptor`` with a
    traceback after the one-line Ctrl-C message.
    """
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown() forgets it too
    if hasattr(pool, "terminate_workers"):  # Python 3.14
        pool.terminate_workers()
    else:
        processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            try:
                p.terminate()
            except (OSError, ValueError, AttributeError):  # already gone
                pass
        for p in processes:
            try:
                p.join(5)
            except (OSError, ValueError, AssertionError, AttributeError):
                pass
    if manager is not None:
        try:
            manager.join(manager_wait)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, the run is being stopped anyway
            pass


def _worker_init(parent_pid: int) -> None:
    """Pool workers: one torch thread each (the pool supplies the parallelism); Ctrl-C ignored (it reaches the
    whole process group: the parent stops the pool, instead of every worker printing a traceback); and exit as
    soon as the parent is gone (after a ``kill -9`` nothing else would end them: they wait on queues whose both
    ends they hold, and keep the fork server and the resource tracker alive with them)."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid == parent_pid and parent.sentinel is not None:
        # The sentinel is a pipe whose write end only the parent holds: it reads as ready once the parent is gone.
        def watch() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(1)
    else:  # pragma: no cover - start methods without a parent sentinel
        def watch() -> None:
            while _alive(parent_pid):
                time.sleep(0.5)
            os._exit(1)
    threading.Thread(target=watch, name="maso-exit-with-parent", daemon=True).start()


def _alive(pid: int) -> bool:  # pragma: no cover - fallback of _worker_init
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _chunks(cells: list[_Cell], bounds: list[int]) -> list[list[_Cell]]:
    """The cells of each task: ``cells[bounds[i]:bounds[i + 1]]``."""
    return [cells[a:b] for a, b in itertools.pairwise(bounds)]


def _bounds(n_cells: int, n_tasks: int) -> list[int]:
    """Split ``n_cells`` cells into ``n_tasks`` contiguous, non-empty tasks (deterministic: checkpoints store it)."""
    n_tasks = max(1, min(n_tasks, n_cells))
    bounds = np.linspace(0, n_cells, n_tasks + 1).round().astype(int).tolist()
    return [b for i, b in enumerate(bounds) if i == 0 or b > bounds[i - 1]]
