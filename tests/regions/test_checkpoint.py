"""Checkpoints that never lose or duplicate regions, workers that die with their parent, guards and parameter
checks of enumerate_regions (the rows of bad_inputs.md they pin are named in each test)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import maso
from maso.errors import CheckpointWarning, ParameterError, ResourceError
from maso.regions import _checkpoint as C
from maso.regions._parallel import _pack_regions, _pack_slivers, _unpack_regions, _unpack_slivers

BOX3 = maso.Box(-np.ones(3), np.ones(3))
BOX2 = maso.Box([-1, -1], [1, 1])


def _net3():
    return maso.mlp([3, 10, 10, 1], seed=5)  # 136 regions in 16 checkpointed tasks, ~1 s


def _net2(seed=0):
    return maso.mlp([2, 6, 6, 1], seed=seed)


def _codes(regions):
    return [r.code.tobytes() for r in regions]


def _assert_identical(a, b):
    """Bit for bit: every field of every region, in order, and the slivers."""
    assert len(a) == len(b)
    for r, s in zip(a, b):
        for x, y in ((r.code, s.code), (r.polytope.A, s.polytope.A), (r.polytope.b, s.polytope.b),
                     (r.polytope.units, s.polytope.units), (r.interior_point, s.interior_point),
                     (r.affine.A, s.affine.A), (r.affine.b, s.affine.b)):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        assert r.facet_units == s.facet_units and r.inradius == s.inradius
    assert len(a.slivers) == len(b.slivers)


def _records(path):
    """(kind, task, start, end) of every valid record, and the damaged spans."""
    data = Path(path).read_bytes()
    end = C._record_at(data, 0)[0]
    recs, bad, _ = C._scan(data, end)
    return [("header", None, 0, end)] + [(m["kind"], m.get("task"), a, b) for a, b, m, _ in recs], bad


def _n_tasks_in(path):
    try:
        return sum(kind == "task" for kind, *_ in _records(path)[0])
    except (OSError, C._Bad):
        return 0


def _alive_in_session(sid):
    """Processes of a session that are not zombies: a killed run's workers, fork server and resource tracker."""
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                out[int(p)] = fields[0]
    return out


_SCRIPT = """
import sys, time, numpy as np, maso
from maso.regions import _checkpoint, _parallel

save = _checkpoint._Checkpoint.save
def slow_save(self, *args):  # records arrive slowly, so that a kill lands in the middle of the run
    time.sleep({delay})
    save(self, *args)
_checkpoint._Checkpoint.save = slow_save

run, done = _parallel._run_task, [0]
def stuck(payload, **kw):  # workers import this module too: after {fast} task(s), each one hangs
    done[0] += 1
    if done[0] > {fast}:
        time.sleep(300)
    return run(payload, **kw)
_parallel._run_task = stuck

if __name__ == "__main__":
    net = maso.mlp([3, 10, 10, 1], seed=5)
    regions = maso.enumerate_regions(net, maso.Box(-np.ones(3), np.ones(3)), workers={workers},
                                     checkpoint={ck!r})
    print("DONE", len(regions), flush=True)
"""


def _start(tmp_path, ck, workers, delay=0.3, fast=10**6, **kw):
    script = tmp_path / f"run_{workers}.py"
    script.write_text(_SCRIPT.format(delay=delay, fast=fast, workers=workers, ck=str(ck)))
    return subprocess.Popen([sys.executable, str(script)], start_new_session=True, cwd=tmp_path, **kw)


def _wait_for(proc, ready, timeout=120):
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() < deadline, "the run did not get there in time"
        time.sleep(0.05)


def _wait_for_tasks(proc, ck, n):
    _wait_for(proc, lambda: _n_tasks_in(ck) >= n)


def _has_plan(ck):
    try:
        return any(kind == "plan" for kind, *_ in _records(ck)[0])
    except (OSError, C._Bad):
        return False


def _reap(proc):
    """Whatever is left of a run: its session's processes killed, its pipes closed."""
    for pid in _alive_in_session(proc.pid):
        os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted checkpointed run (one process) and the plain run."""
    ck = tmp_path_factory.mktemp("ref") / "ref.ckpt"
    return maso.enumerate_regions(_net3(), BOX3, checkpoint=ck), maso.enumerate_regions(_net3(), BOX3)


# --------------------------------------------------------------------------------- kill, resume, orphans
def test_killed_run_resumes_exactly_with_any_worker_count(tmp_path, reference):
    """Rows 63-66: kill -9 a checkpointed run of 2 workers; every worker, the fork server and the resource tracker
    exit within seconds; resuming with more (3) or fewer (1) workers gives the uninterrupted regions bit for bit,
    and so does re-running the finished checkpoint with another min_tasks (row 67). While the run goes on, a
    second process is refused the checkpoint (row 81)."""
    ck = tmp_path / "run.ckpt"
    proc = _start(tmp_path, ck, 2)
    try:
        _wait_for_tasks(proc, ck, 3)
        with pytest.raises(maso.errors.CheckpointError, match="in use by another process"):
            maso.enumerate_regions(_net3(), BOX3, checkpoint=ck)
        assert len(_alive_in_session(proc.pid)) >= 3  # the run, its workers, the fork server...
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        t = time.time()
        while _alive_in_session(proc.pid) and time.time() - t < 10:
            time.sleep(0.05)
        left = _alive_in_session(proc.pid)
        assert not left, f"processes of the killed run still alive after 10 s: {left}"
    finally:
        _reap(proc)
    n_done = _n_tasks_in(ck)
    copy = tmp_path / "copy.ckpt"
    copy.write_bytes(ck.read_bytes())
    for path, workers in ((ck, 3), (copy, 1)):
        resumed = maso.enumerate_regions(_net3(), BOX3, checkpoint=path, workers=workers)
        assert 0 < n_done < resumed.stats["tasks"] == 16
        assert resumed.stats["tasks_resumed"] == n_done
        _assert_identical(resumed, reference[0])
        assert _codes(resumed) == _codes(reference[1])  # the one-task run too, in the same order
    # A finished checkpoint, re-run with another min_tasks (row 67): the stored regions.
    again = maso.enumerate_regions(_net3(), BOX3, checkpoint=ck, min_tasks=128)
    assert again.stats["tasks_resumed"] == 16
    _assert_identical(again, reference[0])


def test_ctrl_c_stops_the_pool_and_keeps_the_checkpoint(tmp_path, reference):
    """Row 94 (library side): SIGINT to the process group of a pooled run whose workers are busy with long tasks:
    KeyboardInterrupt from the library within seconds (running tasks are killed, not awaited), one traceback (the
    workers ignore SIGINT), no process left, and the checkpoint resumes."""
    ck = tmp_path / "int.ckpt"
    proc = _start(tmp_path, ck, 2, delay=0, fast=1, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_tasks(proc, ck, 2)
        os.killpg(proc.pid, signal.SIGINT)
        t = time.time()
        _, err = proc.communicate(timeout=30)
        took = time.time() - t
        time.sleep(0.5)
        left = _alive_in_session(proc.pid)
    finally:
        _reap(proc)
    assert proc.returncode != 0 and took < 15
    assert err.count("Traceback") == 1 and err.strip().splitlines()[-1] == "KeyboardInterrupt", err
    assert "maso/regions/_driver.py" in err
    assert not left, left
    resumed = maso.enumerate_regions(_net3(), BOX3, checkpoint=ck)
    assert resumed.stats["tasks_resumed"] >= 2
    _assert_identical(resumed, reference[0])


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/cmdline")
def test_ctrl_c_while_the_workers_start(tmp_path):
    """Row 94: Ctrl-C while the fork server still imports torch (made slow here by a sitecustomize): the fork
    server and the workers start with SIGINT ignored, so the only traceback is the caller's KeyboardInterrupt."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import time\nif b'multiprocessing.forkserver' in open('/proc/self/cmdline', 'rb').read():\n"
        "    time.sleep(1.5)\n")
    ck = tmp_path / "early.ckpt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    proc = _start(tmp_path, ck, 2, delay=0, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for(proc, lambda: _has_plan(ck))
        time.sleep(0.5)  # the pool is starting: the fork server sleeps in its sitecustomize
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        _reap(proc)
    assert proc.returncode != 0
    assert err.count("Traceback") == 1 and err.count("KeyboardInterrupt") == 1, err
    assert err.strip().splitlines()[-1] == "KeyboardInterrupt", err


def test_finished_checkpoint_ignores_min_tasks_and_workers(tmp_path):
    """Row 67: the task split is stored in the checkpoint, so another min_tasks cannot duplicate regions."""
    ck = tmp_path / "mt.ckpt"
    first = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck, min_tasks=64)
    size = ck.stat().st_size
    second = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck, min_tasks=128)
    assert second.stats["tasks_resumed"] == second.stats["tasks"] == first.stats["tasks"]
    _assert_identical(first, second)
    assert ck.stat().st_size == size
    assert len(set(_codes(second))) == len(second)


# ------------------------------------------------------------------------------------- record format
def test_records_are_plain_data_and_round_trip_bit_for_bit():
    """Regions and slivers come back from a record with every dtype, every bit, and read-only."""
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(5, 2)), rng.normal(size=5) * 0.5
    W, b = np.vstack([W, W[:2]]), np.concatenate([b, b[:2]])  # duplicated units: facets listing two units
    net = maso.Network.sequential((2,), [maso.layers.Dense(W, b), maso.layers.relu(),
                                         maso.layers.Dense(rng.normal(size=(2, 7)), np.zeros(2))])
    regions = list(maso.enumerate_regions(net, maso.Box([-2, -2], [2, 2])))
    slivers = [maso.regions.Sliver(3, 1, 1e-10, np.array([0.5, -0.25]), np.array([1, -1, 0], dtype=np.int16)),
               maso.regions.Sliver(-1, -1, 0.0, np.array([0.1, 0.2]), np.array([0, 1, 1], dtype=np.int16))]
    odd = [maso.regions.Sliver(0, 0, 2e-10, np.array([1.0, 2.0], dtype=np.float32), np.array([7], dtype=np.int32)),
           maso.regions.Sliver(1, 1, 3e-10, np.array([1.0, 2.0, 3.0]), np.array([7, 8], dtype=np.uint8))]
    pk = _pack_regions(regions)
    n = pk.pop("n")
    record = C._encode({"kind": "task", "n_regions": n}, {**pk, **_pack_slivers(slivers + odd)})
    assert b"pickle" not in record and len(record) % 8 == 0
    end, meta, arrays = C._record_at(record, 0)
    assert end == len(record) and meta == {"kind": "task", "n_regions": n}
    back = _unpack_regions({"n": n, **{k: arrays[k] for k in pk}})
    assert any(len(f) == 2 for r in regions for f in r.facet_units)
    for r, s in zip(regions, back, strict=True):
        for x, y in ((r.code, s.code), (r.polytope.A, s.polytope.A), (r.polytope.units, s.polytope.units),
                     (r.polytope.b, s.polytope.b), (r.interior_point, s.interior_point), (r.affine.A, s.affine.A),
                     (r.affine.b, s.affine.b)):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes() and not y.flags.writeable
        assert r.facet_units == s.facet_units and r.inradius == s.inradius
    assert back[0].code.dtype == np.uint8
    for s, t in zip(slivers + odd, _unpack_slivers(arrays), strict=True):
        assert (s.unit, s.piece, s.thickness) == (t.unit, t.piece, t.thickness)
        for x, y in ((s.point, t.point), (s.code_prefix, t.code_prefix)):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes() and not y.flags.writeable
    assert _unpack_slivers(_pack_slivers([])) == [] and _unpack_regions(_pack_regions([])) == []
    # int32 codes (max-pools of more than 255 pieces) keep their dtype too
    codes = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert C._record_at(C._encode({"kind": "x"}, {"code": codes}), 0)[2]["code"].dtype == np.int32


def test_every_single_bit_flip_of_a_record_is_detected():
    record = C._encode({"kind": "task", "task": 0}, {"x": np.linspace(0, 1, 5)})
    for bit in range(0, len(record) * 8, 7):
        data = bytearray(record)
        data[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(C._Bad):
            C._record_at(bytes(data), 0)


def _flip(path, offset, bit=6):
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= 1 << bit
    Path(path).write_bytes(bytes(data))


def _array_offset(path, task, name):
    """File offset of the last byte of the first element of a task record's array."""
    data = Path(path).read_bytes()
    for kind, t, start, _ in _records(path)[0]:
        if kind == "task" and t == task:
            meta_len = C._FRAME.unpack_from(data, start)[1]
            meta = json.loads(data[start + C._HEAD:start + C._HEAD + meta_len])
            spec = next(s for s in meta["arrays"] if s[0] == name)
            return start + C._HEAD + meta_len + spec[3] + np.dtype(spec[1]).itemsize - 1
    raise AssertionError("no such record")


def test_flipped_bit_in_stored_regions_is_detected_and_recomputed(tmp_path):
    """Row 72: a flipped exponent bit of a map offset is caught by the checksum, reported, and recomputed; the
    file is rewritten clean, so the next run is quiet."""
    ck = tmp_path / "f.ckpt"
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    _flip(ck, _array_offset(ck, 5, "map_b"))
    with pytest.warns(CheckpointWarning, match=r"1 damaged record.*checksum mismatch.*1 of 16 tasks.*rewritten"):
        again = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    assert again.stats["tasks_resumed"] == 15
    _assert_identical(again, fresh)
    assert not _records(ck)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_identical(maso.enumerate_regions(_net2(), BOX2, checkpoint=ck), fresh)


def test_checkpoint_through_a_link_or_a_bytes_path(tmp_path):
    """A damaged checkpoint reached through a symbolic link is rewritten in place of its target (the link stays);
    bytes paths work as str paths."""
    target, link = tmp_path / "real.ckpt", tmp_path / "link.ckpt"
    link.symlink_to(target)
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=os.fsencode(link))
    _flip(target, _array_offset(target, 2, "A"))
    with pytest.warns(CheckpointWarning, match="rewritten"):
        again = maso.enumerate_regions(_net2(), BOX2, checkpoint=link)
    _assert_identical(again, fresh)
    assert link.is_symlink() and not _records(target)[1]


def test_damaged_record_keeps_the_valid_records_after_it(tmp_path):
    """Row 71: a damaged byte in record 3 (and a damaged length field in record 7) costs those two tasks only;
    the reader resyncs on the next record marker."""
    ck = tmp_path / "m.ckpt"
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    recs = {t: (a, b) for kind, t, a, b in _records(ck)[0] if kind == "task"}
    data = bytearray(ck.read_bytes())
    data[recs[3][0] + C._HEAD + 2] = 0xFF  # inside the JSON meta
    data[recs[7][0] + 14] ^= 0x40  # the blob length: a huge record, never trusted
    ck.write_bytes(bytes(data))
    with pytest.warns(CheckpointWarning, match="2 damaged record.*2 of 16 tasks"):
        again = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    assert again.stats["tasks_resumed"] == 14
    _assert_identical(again, fresh)


def test_damaged_complete_checkpoint_read_only(tmp_path):
    """Damaged bytes between valid records of a complete checkpoint: reported, nothing recomputed, the file
    not touched (it is only read)."""
    ck = tmp_path / "c.ckpt"
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    data = ck.read_bytes()
    header_end = _records(ck)[0][0][3]
    ck.write_bytes(data[:header_end] + b"garbage!" * 3 + data[header_end:])
    before = ck.read_bytes()
    with pytest.warns(CheckpointWarning, match="every task has a valid record, so nothing is recomputed"):
        again = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    _assert_identical(again, fresh)
    assert ck.read_bytes() == before


def test_truncated_tail_is_dropped_quietly(tmp_path):
    """Row 69: a record cut short by a kill is dropped without a word (nothing was damaged) and recomputed."""
    ck = tmp_path / "t.ckpt"
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    for cut in (100, 3):  # inside the last record's data; inside its frame
        data = ck.read_bytes()
        last = _records(ck)[0][-1]
        ck.write_bytes(data[:last[3] - cut] if cut > 10 else data[:last[2] + cut])
        again = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
        assert again.stats["tasks_resumed"] == 15
        _assert_identical(again, fresh)
        assert ck.read_bytes() == data


def test_crafted_record_with_a_valid_checksum_cannot_make_regions(tmp_path):
    """A record that passes its checksum but whose arrays do not fit together is skipped as damaged."""
    ck = tmp_path / "x.ckpt"
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    recs = _records(ck)[0]
    plan_id = None
    data = ck.read_bytes()
    for kind, _, a, b in recs:
        if kind == "plan":
            plan_id = C._record_at(data, a)[1]["id"]
    _, task, a, _ = recs[-1]
    bad = C._encode({"kind": "task", "task": task, "plan": plan_id, "n_regions": 1},
                    {k: np.zeros(2) for k in C._REGION_KEYS} | _pack_slivers([]))
    ck.write_bytes(data[:a] + bad)
    with pytest.warns(CheckpointWarning, match="malformed task record"):
        again = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    _assert_identical(again, fresh)


# --------------------------------------------------------------------------- files that are not ours
def _untouched(path):
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns, st.st_ino


def test_foreign_files_are_refused_before_any_work_and_left_untouched(tmp_path, monkeypatch):
    """Rows 74-76: a text file, another tool's pickle, a crafted pickle (whose payload must not run), random
    bytes: a CheckpointError saying what the file is, before planning, and the file unchanged."""
    import maso.regions._driver as D

    monkeypatch.setattr(D, "_plan", lambda *a, **k: pytest.fail("work started"))
    notes = tmp_path / "notes.txt"
    notes.write_text("my precious notes, do not overwrite\n" * 10)
    listed = tmp_path / "list.ckpt"
    d = pickle.dumps([1, 2, 3])
    listed.write_bytes(struct.pack("<Q", len(d)) + d)

    class Evil:
        def __reduce__(self):
            return (os.makedirs, (str(tmp_path / "PWNED"),))

    evil = tmp_path / "evil.ckpt"
    d = pickle.dumps(Evil())
    evil.write_bytes(struct.pack("<Q", len(d)) + d)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    cases = [(notes, "not a maso checkpoint"), (listed, "is a pickle"), (evil, "is a pickle.*can run any code"),
             (noise, "not a maso checkpoint")]
    for path, match in cases:
        before = _untouched(path)
        with pytest.raises(maso.errors.CheckpointError, match=match):
            maso.enumerate_regions(maso.mlp([2, 4, 1], seed=0), BOX2, checkpoint=path)
        assert _untouched(path) == before
    assert not (tmp_path / "PWNED").exists()


def test_truncated_or_damaged_header_is_named_as_such(tmp_path):
    """Row 70: a header cut short is 'truncated', a header failing its checksum 'damaged', not 'another run'."""
    ck = tmp_path / "h.ckpt"
    maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    data = ck.read_bytes()
    flipped = data[:8] + bytes([data[8] ^ 1]) + data[9:]  # a bit of the header's length
    for content, match in ((data[:5], "truncated"), (data[:40], "truncated"), (flipped, "damaged.*header")):
        ck.write_bytes(content)
        before = _untouched(ck)
        with pytest.raises(maso.errors.CheckpointError, match=match):
            maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
        assert _untouched(ck) == before


def test_checkpoint_of_another_run_says_what_differs(tmp_path):
    """Row 73: network, domain, tolerance, method, maso version, record format: each refused by name."""
    ck = tmp_path / "o.ckpt"
    maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    before = _untouched(ck)
    for kw, match in (({"net": _net2(seed=1)}, "its network differs"),
                      ({"domain": maso.Box([-1, -1], [1, 2])}, "its domain differs"),
                      ({"tol": 1e-8}, "its tolerance differs"), ({"method": "lp"}, "its method differs")):
        args = {"net": _net2(), "domain": BOX2} | kw
        with pytest.raises(maso.errors.CheckpointError, match=match):
            maso.enumerate_regions(args.pop("net"), args.pop("domain"), checkpoint=ck, **args)
        assert _untouched(ck) == before
    header = C._run_header(_net2(), maso.core.domain.as_domain(BOX2, 2, caller="t"), maso.regions.DEFAULT_TOL, "vertices")
    for change, match in (({"maso": "0.0.1"}, "written by maso 0.0.1"), ({"format": 99}, "format 99")):
        ck.write_bytes(C._encode(header | change))
        with pytest.raises(maso.errors.CheckpointError, match=match):
            maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)


def test_paths_that_cannot_be_checkpoints(tmp_path):
    """Row 77: a directory, a missing directory, a device; a path of the wrong type or empty."""
    for path, match in ((tmp_path, "is a directory"), (tmp_path / "nope" / "run.ckpt", "directory .* does not exist"),
                        ("/dev/null", "not a regular file")):
        with pytest.raises(maso.errors.CheckpointError, match=match):
            maso.enumerate_regions(_net2(), BOX2, checkpoint=path)
    assert not (tmp_path / "nope").exists()
    for bad in (42, "", ["a.ckpt"]):
        with pytest.raises(ParameterError, match="checkpoint"):
            maso.enumerate_regions(_net2(), BOX2, checkpoint=bad)


def test_complete_checkpoint_is_only_read(tmp_path, monkeypatch):
    """Row 79: resuming a complete checkpoint never opens it for writing (so a read-only one works) and leaves
    it as it was; two enumerations of one process cannot write one checkpoint at a time (row 81)."""
    ck = tmp_path / "ro.ckpt"
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    before = _untouched(ck)
    opened = []
    real_open = os.open

    def spy(path, flags, *a, **k):
        opened.append((os.fspath(path), flags))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(C.os, "open", spy)
    ck.chmod(0o444)
    again = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    assert not [f for p, f in opened if p == str(ck) and f & (os.O_WRONLY | os.O_RDWR)]
    _assert_identical(again, fresh)
    assert _untouched(ck) == before
    monkeypatch.undo()
    ck.chmod(0o644)
    # An unfinished checkpoint held by this process is refused to a second enumeration of it.
    partial = tmp_path / "p.ckpt"
    header = C._run_header(_net2(), maso.core.domain.as_domain(BOX2, 2, caller="t"), maso.regions.DEFAULT_TOL, "vertices")
    held = C._Checkpoint(str(partial), header, _net2())
    try:
        with pytest.raises(maso.errors.CheckpointError, match="in use by another run"):
            maso.enumerate_regions(_net2(), BOX2, checkpoint=partial)
    finally:
        held.close()
    assert len(maso.enumerate_regions(_net2(), BOX2, checkpoint=partial)) == len(fresh)


_NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


@pytest.mark.skipif(sys.platform != "linux", reason="permission semantics of Linux")
def test_read_only_file_and_directory(tmp_path):
    """Rows 78-79 with real permissions (root runs without CAP_DAC_OVERRIDE): a new checkpoint in a read-only
    directory, an unfinished read-only checkpoint and an unreadable one are refused before any work; a complete
    read-only checkpoint is read back."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: root ignores file modes")
        prefix = _NO_DAC
    done, partial, rodir, secret = (tmp_path / "done.ckpt", tmp_path / "partial.ckpt", tmp_path / "ro",
                                    tmp_path / "secret.ckpt")
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=done)
    data = done.read_bytes()
    partial.write_bytes(data[:_records(done)[0][-2][2]])  # the last two task records missing
    rodir.mkdir()
    secret.write_bytes(data)
    secret.chmod(0o000)
    for p in (done, partial):
        p.chmod(0o444)
    rodir.chmod(0o555)
    script = textwrap.dedent(f"""
        import numpy as np, maso
        net = maso.mlp([2, 6, 6, 1], seed=0)
        box = maso.Box([-1, -1], [1, 1])
        for path in ({str(rodir / 'run.ckpt')!r}, {str(partial)!r}, {str(secret)!r}):
            try:
                maso.enumerate_regions(net, box, checkpoint=path)
            except maso.errors.CheckpointError as e:
                print("ERR", e)
        r = maso.enumerate_regions(net, box, checkpoint={str(done)!r})
        print("READ", len(r), r.stats["tasks_resumed"])
    """)
    out = subprocess.run([*prefix, sys.executable, "-c", script], check=False, capture_output=True, text=True,
                         timeout=120)
    rodir.chmod(0o755)
    lines = out.stdout.splitlines()
    assert len(lines) == 4, out.stdout + out.stderr
    assert "permission denied in directory" in lines[0]
    assert "is read-only (permission denied), and 2 of 16 tasks remain" in lines[1]
    assert "cannot be read: permission denied" in lines[2]
    assert lines[3] == f"READ {len(fresh)} 16"
    assert done.read_bytes() == data and not list(rodir.iterdir())


class _FullDisk:
    """``os`` for the checkpoint module, whose writes stop with ENOSPC past ``room`` bytes (partial writes first,
    as a disk filling up)."""

    def __init__(self, room):
        self.room = room

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if self.room <= 0:
            raise OSError(28, "No space left on device")
        n = os.write(fd, bytes(data)[:self.room])
        self.room -= n
        return n


def test_disk_full_keeps_what_was_recorded(tmp_path, monkeypatch):
    """Row 80: the disk fills up while records are appended: a CheckpointError saying what is kept, no partial
    record left, and an exact resume."""
    ck = tmp_path / "full.ckpt"
    fresh = maso.enumerate_regions(_net2(), BOX2, checkpoint=tmp_path / "ref.ckpt")
    monkeypatch.setattr(C, "os", _FullDisk(6000))
    with pytest.raises(maso.errors.CheckpointError, match="No space left on device.*cut off again.*finished task.*kept"):
        maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    monkeypatch.undo()
    recs, bad = _records(ck)
    assert not bad and recs[-1][3] == ck.stat().st_size <= 6000  # whole records only
    resumed = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    assert 0 < resumed.stats["tasks_resumed"] < resumed.stats["tasks"]
    _assert_identical(resumed, fresh)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE")
def test_file_size_limit_keeps_what_was_recorded(tmp_path):
    """Row 80 as reported: ``ulimit -f`` reached while appending, in another process."""
    import resource

    ck = tmp_path / "full.ckpt"
    fresh = maso.enumerate_regions(_net2(), BOX2)
    script = textwrap.dedent(f"""
        import numpy as np, maso
        try:
            maso.enumerate_regions(maso.mlp([2, 6, 6, 1], seed=0), maso.Box([-1, -1], [1, 1]),
                                   checkpoint={str(ck)!r})
        except maso.errors.CheckpointError as e:
            print("ERR", e)
    """)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))

    out = subprocess.run([sys.executable, "-B", "-c", script], check=False, capture_output=True, text=True, timeout=120,
                         preexec_fn=limit)
    assert out.stdout.startswith("ERR"), out.stdout + out.stderr
    assert "File too large" in out.stdout and "finished task(s) recorded before are kept" in out.stdout
    recs, bad = _records(ck)
    assert not bad and recs[-1][3] == ck.stat().st_size <= 6000  # whole records only
    resumed = maso.enumerate_regions(_net2(), BOX2, checkpoint=ck)
    assert 0 < resumed.stats["tasks_resumed"] < resumed.stats["tasks"]
    assert _codes(resumed) == _codes(fresh)


# ------------------------------------------------------------------------------------------- guards
def test_max_regions_stops_in_planning_and_after_tasks():
    net = _net3()
    with pytest.raises(maso.errors.DomainError, match=r"more than max_regions=10\b"):
        maso.enumerate_regions(net, BOX3, max_regions=10)
    with pytest.raises(maso.errors.DomainError, match="130 regions are more than max_regions=130|cells .* max_regions=130"):
        maso.enumerate_regions(net, BOX3, max_regions=130, workers=1, min_tasks=64, checkpoint=None)
    assert len(maso.enumerate_regions(net, BOX3, max_regions=136)) == 136


def test_exploding_domain_stops_in_bounded_memory_with_progress(capsys):
    """Row 62: [6, 64, 64, 64, 1] on [-1000, 1000]^6 splits its first cell into millions of parts. A memory
    budget stops it early with a ResourceError (a MemoryError) naming the cells reached; the progress bar is
    there from the start, counting cells while the domain is planned."""
    net = maso.mlp([6, 64, 64, 64, 1], seed=0)
    t = time.time()
    with pytest.raises(ResourceError, match=r"stage 1 of 3: its [\d,]+ cells .* over its memory budget of 48 MiB"):
        maso.enumerate_regions(net, maso.Box(-1000 * np.ones(6), 1000 * np.ones(6)), max_memory=50e6,
                               progress=True)
    assert time.time() - t < 30
    err = capsys.readouterr().err
    assert "planning" in err and "cells" in err
    assert issubclass(ResourceError, MemoryError)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS")
def test_exploding_domain_under_an_address_space_limit():
    """Row 62 as reported: ulimit -v 3 GB, default budget: a ResourceError, not the allocator's MemoryError."""
    script = textwrap.dedent("""
        import resource, numpy as np, maso
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        try:
            maso.enumerate_regions(maso.mlp([6, 64, 64, 64, 1], seed=0),
                                   maso.Box(-1000 * np.ones(6), 1000 * np.ones(6)))
        except maso.errors.ResourceError as e:
            print("STOPPED", e)
    """)
    out = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert out.stdout.startswith("STOPPED"), out.stdout + out.stderr[-2000:]


# --------------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("kw, match", [
    ({"workers": 1.5}, "'workers'.*integer >= 1"), ({"workers": "2"}, "'workers'"), ({"workers": 0}, "'workers'"),
    ({"workers": -3}, "'workers'"), ({"workers": True}, "'workers'"), ({"executor": 42}, "'executor'"),
    ({"executor": ThreadPoolExecutor}, "'executor'.*instance"),
    ({"min_tasks": 0}, "'min_tasks'"), ({"min_tasks": 2.0}, "'min_tasks'"), ({"max_regions": 0}, "'max_regions'"),
    ({"max_regions": "10"}, "'max_regions'"), ({"max_regions": True}, "'max_regions'"),
    ({"progress": "yes"}, "'progress'"), ({"progress": 1}, "'progress'"), ({"max_memory": -1}, "'max_memory'"),
    ({"max_memory": "lots"}, "'max_memory'"), ({"max_memory": 1j}, "'max_memory'"),
])
def test_parameters_are_checked_up_front(kw, match):
    """Rows 58, 59: typed errors (ParameterError, a ValueError) naming the parameter, before any work."""
    with pytest.raises(ParameterError, match=match) as info:
        maso.enumerate_regions(_net2(), BOX2, **kw)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("kw", [{"tol": 0}, {"tol": float("nan")}, {"tol": 1e-15}, {"tol": 1e-9 + 0j},
                                {"tol": "1e-9"}, {"tol": True}, {"method": "foo"}, {"method": None}])
def test_tol_and_method_errors_are_parameter_and_shape_errors(kw):
    """Row 57: out-of-range tol and method are ParameterErrors, and still ShapeErrors (as before)."""
    with pytest.raises(ParameterError) as info:
        maso.enumerate_regions(_net2(), BOX2, **kw)
    assert isinstance(info.value, maso.errors.ShapeError)
    with pytest.raises(ParameterError):
        next(maso.iter_regions(_net2(), BOX2, **kw))


def test_numpy_parameters_are_accepted():
    """Row 57: NumPy scalars are numbers like any other."""
    ref = maso.enumerate_regions(_net2(), BOX2, tol=1e-6)
    for tol in (np.float32(1e-6), np.float64(1e-6)):
        got = maso.enumerate_regions(_net2(), BOX2, tol=tol, workers=np.int64(1), min_tasks=np.int32(64),
                                     max_regions=np.int64(1000), progress=np.bool_(False))
        assert _codes(got) == _codes(ref) and type(got.tol) is float
