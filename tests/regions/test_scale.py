"""Scale features of enumeration: process pools, any executor, and checkpoints that survive a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import maso


def _codes(regions):
    return sorted(r.code.tobytes() for r in regions)


def test_workers_and_executors_give_the_same_regions():
    net = maso.mlp([3, 8, 8, 1], seed=1)
    box = maso.Box(-np.ones(3), np.ones(3))
    serial = maso.enumerate_regions(net, box)
    pooled = maso.enumerate_regions(net, box, workers=2)
    with ThreadPoolExecutor(2) as ex:
        threaded = maso.enumerate_regions(net, box, executor=ex)
    assert _codes(serial) == _codes(pooled) == _codes(threaded)
    assert len(set(_codes(serial))) == len(serial)  # no duplicates


def test_checkpoint_resume_after_kill(tmp_path):
    """Kill a run mid-way (SIGKILL), restart with the same checkpoint: nothing lost, nothing duplicated."""
    from maso.regions._checkpoint import _record_at, _scan

    ck = tmp_path / "run.ckpt"
    script = textwrap.dedent(f"""
        import numpy as np, maso, time
        import maso.regions._driver as R
        slow = R._run_task
        def run(payload, **kw):
            time.sleep(0.05)   # make the run long enough to be killed in the middle
            return slow(payload, **kw)
        R._run_task = run
        net = maso.mlp([3, 10, 10, 1], seed=5)
        maso.enumerate_regions(net, maso.Box(-np.ones(3), np.ones(3)), checkpoint={str(ck)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until some tasks are on disk, then kill without warning
        if ck.exists() and ck.stat().st_size > 20_000:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = ck.read_bytes()
    records, _, _ = _scan(data, _record_at(data, 0)[0])
    n_done = sum(meta["kind"] == "task" for _, _, meta, _ in records)
    net = maso.mlp([3, 10, 10, 1], seed=5)
    box = maso.Box(-np.ones(3), np.ones(3))
    resumed = maso.enumerate_regions(net, box, checkpoint=ck)
    fresh = maso.enumerate_regions(net, box)
    assert 0 < n_done < resumed.stats["tasks"], "the kill should land in the middle of the run"
    assert resumed.stats["tasks_resumed"] == n_done
    assert _codes(resumed) == _codes(fresh)
    # Re-running a finished checkpoint recomputes nothing and gives the same answer.
    again = maso.enumerate_regions(net, box, checkpoint=ck)
    assert _codes(again) == _codes(fresh) and again.stats["tasks_resumed"] == again.stats["tasks"]


def test_checkpoint_of_another_run_is_refused(tmp_path):
    ck = tmp_path / "a.ckpt"
    maso.enumerate_regions(maso.mlp([2, 4, 1], seed=0), maso.Box([-1, -1], [1, 1]), checkpoint=ck)
    with pytest.raises(maso.errors.CheckpointError, match="another run"):
        maso.enumerate_regions(maso.mlp([2, 4, 1], seed=1), maso.Box([-1, -1], [1, 1]), checkpoint=ck)


def test_truncated_checkpoint_tail_is_dropped(tmp_path):
    ck = tmp_path / "t.ckpt"
    net = maso.mlp([2, 6, 6, 1], seed=0)
    box = maso.Box([-1, -1], [1, 1])
    full = maso.enumerate_regions(net, box, checkpoint=ck)
    with open(ck, "r+b") as fh:
        fh.truncate(os.path.getsize(ck) - 7)  # the last record cut short by a crash
    again = maso.enumerate_regions(net, box, checkpoint=ck)
    assert _codes(again) == _codes(full)
    assert again.stats["tasks_resumed"] == again.stats["tasks"] - 1


class _ListOnlyExecutor(ThreadPoolExecutor):
    """Like dask.distributed's executor: map refuses iterators (a generator argument raised TypeError there)."""

    def map(self, fn, *iterables, **kwargs):
        if any(not isinstance(it, (list, tuple)) for it in iterables):
            raise TypeError("map over iterators is not supported")
        return super().map(fn, *iterables, **kwargs)


def test_executor_that_refuses_iterators():
    net = maso.mlp([2, 6, 6, 1], seed=2)
    box = maso.Box([-1, -1], [1, 1])
    with _ListOnlyExecutor(2) as ex:
        got = maso.enumerate_regions(net, box, executor=ex)
    assert _codes(got) == _codes(maso.enumerate_regions(net, box))


def test_regions_cross_processes_packed_and_unchanged():
    """Workers and checkpoints move regions as a few concatenated arrays; every field comes back equal and
    read-only, including multi-unit facets of duplicated units and an empty task."""
    import pickle

    from maso.regions._parallel import _pack_regions, _unpack_regions

    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(5, 2)), rng.normal(size=5) * 0.5
    W, b = np.vstack([W, W[:2]]), np.concatenate([b, b[:2]])  # duplicated units: facets listing two units
    net = maso.Network.sequential((2,), [maso.layers.Dense(W, b), maso.layers.relu(),
                                         maso.layers.Dense(rng.normal(size=(2, 7)), np.zeros(2))])
    regions = list(maso.enumerate_regions(net, maso.Box([-2, -2], [2, 2]), progress=False))
    back = _unpack_regions(pickle.loads(pickle.dumps(_pack_regions(regions))))
    assert any(len(f) == 2 for r in regions for f in r.facet_units)
    assert len(back) == len(regions)
    for r, s in zip(regions, back):
        assert r.code.dtype == s.code.dtype and np.array_equal(r.code, s.code)
        for x, y in ((r.polytope.A, s.polytope.A), (r.polytope.b, s.polytope.b), (r.polytope.units, s.polytope.units),
                     (r.interior_point, s.interior_point), (r.affine.A, s.affine.A), (r.affine.b, s.affine.b)):
            assert np.array_equal(x, y) and not y.flags.writeable
        assert r.facet_units == s.facet_units and r.inradius == s.inradius
    assert _unpack_regions(_pack_regions([])) == []


def test_script_without_main_guard_gets_a_worker_error(tmp_path):
    """Workers import the main module; without the guard they die, and the caller learns why (no raw pool error)."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, maso
        net = maso.mlp([3, 8, 8, 1], seed=1)
        try:
            maso.enumerate_regions(net, maso.Box(-np.ones(3), np.ones(3)), workers=2)
        except maso.errors.WorkerError as e:
            print("WORKER_ERROR", e)
    """))
    out = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert "WORKER_ERROR" in out.stdout, out.stdout + out.stderr
    assert "__main__" in out.stdout
