"""Checkpoints of tiled slices (``slice_regions(..., tiles=, checkpoint=)``): a slice interrupted after some
tiles resumes to exactly the slice that was never interrupted (every array, the class map, the warnings), a
complete checkpoint is only read, damaged or crafted records are sliced again, and checkpoints of other runs are
refused with what differs."""

from __future__ import annotations

import os
import struct
import warnings

import numpy as np
import pytest
import torch
from archs import random_inputs, random_model

import maso
from maso.regions import _checkpoint as C
from maso.slices import _slice as slices

FIELDS = ("vertices", "polygon_offsets", "polygon_vertices", "code_columns", "varying_codes", "shared_code", "areas",
          "interior_points", "adjacency")


def _cnn() -> tuple[maso.Network, maso.Plane]:
    """A pooling CNN of the Inception kind (max-pool pieces, uint8 codes) sliced through a plane of its input."""
    module, shape, _ = random_model(2, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    return net, maso.Plane.through_points(*random_inputs(2, shape, 3))


BOX = {"lo": (0.0, 0.0), "hi": (0.4, 0.4)}


def _assert_identical(a: maso.slices.SliceRegions, b: maso.slices.SliceRegions) -> None:
    """Bit for bit the same slice: arrays, dtypes, class map and decision boundary."""
    assert len(a) == len(b)
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and np.array_equal(x, y), f
        assert not y.flags.writeable, f
    ca, cb = a.argmax_cells(), b.argmax_cells()
    for f in ("vertices", "polygon_offsets", "polygon_vertices", "labels", "regions", "areas", "boundary"):
        assert np.array_equal(getattr(ca, f), getattr(cb, f)), f
    assert np.array_equal(a.decision_boundary(), b.decision_boundary())


class _Stop(Exception):
    pass


def _interrupt_after(monkeypatch, n: int, exc: type[BaseException] = KeyboardInterrupt) -> list[int]:
    """Make the n+1-th tile raise ``exc`` (as Ctrl-C would while it is sliced); returns the calls made."""
    real = slices._slice_rectangle
    calls: list[int] = []

    def tile(*args, **kwargs):
        calls.append(1)
        if len(calls) > n:
            raise exc()
        return real(*args, **kwargs)

    monkeypatch.setattr(slices, "_slice_rectangle", tile)
    return calls


@pytest.mark.parametrize("exc", [KeyboardInterrupt, _Stop])
def test_interrupted_slice_resumes_to_the_uninterrupted_one(tmp_path, monkeypatch, exc):
    net, plane = _cnn()
    path = tmp_path / "s.ckpt"
    whole = maso.slice_regions(net, plane, **BOX, tiles=(3, 2))
    _interrupt_after(monkeypatch, 4, exc)
    with pytest.raises(exc):
        maso.slice_regions(net, plane, **BOX, tiles=(3, 2), checkpoint=path)
    monkeypatch.undo()
    assert path.exists()
    calls = _interrupt_after(monkeypatch, 99)
    resumed = maso.slice_regions(net, plane, **BOX, tiles=(3, 2), checkpoint=path)
    assert resumed.stats["tiles_resumed"] == 4 and len(calls) == 2  # only the two tiles left were sliced
    _assert_identical(whole, resumed)
    np.testing.assert_array_equal(resumed.codes, net.codes(plane(resumed.interior_points)))
    pts = np.random.default_rng(0).uniform(0.0, 0.4, size=(200, 2))
    np.testing.assert_array_equal(resumed.find(pts), whole.find(pts))


def test_complete_checkpoint_is_only_read(tmp_path, monkeypatch):
    """A finished checkpoint is read back (read-only file, nothing sliced): the same slice, for one tile too."""
    net = maso.mlp([2, 12, 12, 3], seed=3)
    for tiles in (1, 2):
        path = tmp_path / f"t{tiles}.ckpt"
        first = maso.slice_regions(net, lo=(-2, -2), hi=(2, 2), tiles=tiles, checkpoint=path)
        plain = maso.slice_regions(net, lo=(-2, -2), hi=(2, 2), tiles=tiles)
        assert first.stats["tiles_resumed"] == 0
        _assert_identical(plain, first)
        path.chmod(0o444)
        calls = _interrupt_after(monkeypatch, 0, _Stop)
        again = maso.slice_regions(net, lo=(-2, -2), hi=(2, 2), tiles=tiles, checkpoint=path)
        monkeypatch.undo()
        assert not calls and again.stats["tiles_resumed"] == tiles * tiles
        _assert_identical(plain, again)
        path.chmod(0o644)


def test_max_regions_stops_a_tile_and_a_larger_one_resumes(tmp_path):
    """``max_regions`` only stops a tile (DomainError), never changes one: the tiles before it are kept, and the
    run resumes with a larger limit to the slice without one."""
    net = maso.mlp([2, 16, 16, 2], seed=1)
    box = {"lo": (-2, -2), "hi": (2, 2), "tiles": 2}
    whole = maso.slice_regions(net, **box)
    sizes = [len(p) for p, _ in whole._tiles]
    path = tmp_path / "m.ckpt"
    limit = max(sizes) - 1  # the biggest tile stops; those before it are recorded
    with pytest.raises(maso.errors.DomainError, match="max_regions"):
        maso.slice_regions(net, **box, max_regions=limit, checkpoint=path)
    resumed = maso.slice_regions(net, **box, checkpoint=path)
    assert resumed.stats["tiles_resumed"] == int(np.argmax(np.array(sizes) > limit))
    _assert_identical(whole, resumed)


def test_lp_tiles_resume(tmp_path, monkeypatch):
    net = maso.mlp([2, 6, 6, 2], seed=5)
    box = {"lo": (-1, -1), "hi": (1, 1), "tiles": 2, "method": "lp"}
    whole = maso.slice_regions(net, **box)
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        maso.slice_regions(net, **box, checkpoint=tmp_path / "lp.ckpt")
    monkeypatch.undo()
    resumed = maso.slice_regions(net, **box, checkpoint=tmp_path / "lp.ckpt")
    assert resumed.stats["tiles_resumed"] == 3 and resumed.method == "lp"
    _assert_identical(whole, resumed)


def test_warnings_of_recorded_tiles_are_said_again(tmp_path, monkeypatch):
    """A tile's warning (here one made up for tile 1) is kept in its record and said again when it is read."""
    net = maso.mlp([2, 8, 8, 1], seed=0)
    real = slices._slice_rectangle
    seen: list[int] = []

    def tile(*args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            warnings.warn("tile two was odd", maso.errors.NumericalWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(slices, "_slice_rectangle", tile)
    path = tmp_path / "w.ckpt"
    with pytest.warns(maso.errors.NumericalWarning, match="tile two was odd") as first:
        maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=path)
    with pytest.warns(maso.errors.NumericalWarning, match="tile two was odd") as again:
        maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=path)
    assert len(seen) == 4  # the second call sliced nothing
    assert [str(w.message) for w in first] == [str(w.message) for w in again]
    assert again[0].filename == __file__


def test_checkpoint_of_another_run_is_refused_untouched(tmp_path):
    net, plane = _cnn()
    path = tmp_path / "s.ckpt"
    maso.slice_regions(net, plane, lo=(0.0, 0.0), hi=(0.2, 0.2), tiles=2, checkpoint=path)
    before = path.read_bytes()
    other_net = maso.from_torch(random_model(3, "inception")[0], torch.zeros(1, *random_model(3, "inception")[1],
                                                                           dtype=torch.float64))
    other_plane = maso.Plane.through_points(*random_inputs(5, random_model(2, "inception")[1], 3))
    cases = [({"hi": (0.2, 0.3)}, "its window differs"), ({"tiles": 3}, "its tile grid differs"),
             ({"tol": 1e-10}, "its tolerance differs"), ({"method": "lp"}, "its method differs"),
             ({"plane": other_plane}, "its network or plane differs")]
    for change, match in cases:
        kw = {"plane": plane, "lo": (0.0, 0.0), "hi": (0.2, 0.2), "tiles": 2, **change}
        with pytest.raises(maso.errors.CheckpointError, match=match):
            maso.slice_regions(net, checkpoint=path, **kw)
    if other_net.input_shape == net.input_shape:
        with pytest.raises(maso.errors.CheckpointError, match="its network or plane differs"):
            maso.slice_regions(other_net, plane, lo=(0.0, 0.0), hi=(0.2, 0.2), tiles=2, checkpoint=path)
    small = maso.mlp([2, 4, 1], seed=0)
    with pytest.raises(maso.errors.CheckpointError, match="checkpoint of a tiled slice, not of an enumeration"):
        maso.enumerate_regions(small, maso.Box([-1, -1], [1, 1]), checkpoint=path)
    assert path.read_bytes() == before
    enum = tmp_path / "e.ckpt"
    maso.enumerate_regions(small, maso.Box([-1, -1], [1, 1]), checkpoint=enum)
    with pytest.raises(maso.errors.CheckpointError, match="checkpoint of an enumeration, not of a tiled slice"):
        maso.slice_regions(small, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=enum)


def _records(path) -> list[tuple[int, int, dict]]:
    records, bad, _ = C._scan(path.read_bytes(), 0)
    assert not bad
    return [(a, b, meta) for a, b, meta, _ in records]


def test_damaged_and_cut_records_are_sliced_again(tmp_path, monkeypatch):
    net = maso.mlp([2, 10, 10, 2], seed=7)
    box = {"lo": (-1, -1), "hi": (1, 1), "tiles": 2}
    path = tmp_path / "d.ckpt"
    whole = maso.slice_regions(net, **box, checkpoint=path)
    recs = _records(path)
    assert [m["kind"] for *_, m in recs] == ["header", "plan", "task", "task", "task", "task"]
    # a flipped byte inside tile 2's arrays: that record is skipped (and cut from the file), tile 2 sliced again
    data = bytearray(path.read_bytes())
    a, b, meta = recs[4]
    assert meta["task"] == 2
    data[b - 9] ^= 0xFF
    path.write_bytes(bytes(data))
    calls = _interrupt_after(monkeypatch, 99)
    with pytest.warns(maso.errors.CheckpointWarning, match="damaged record"):
        again = maso.slice_regions(net, **box, checkpoint=path)
    assert again.stats["tiles_resumed"] == 3 and len(calls) == 1
    _assert_identical(whole, again)
    # a kill while the last record was written: it is cut off without a word, and that tile sliced again
    a, b, meta = _records(path)[-1]
    path.write_bytes(path.read_bytes()[:(a + b) // 2])
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = maso.slice_regions(net, **box, checkpoint=path)
    assert again.stats["tiles_resumed"] == 3 and len(calls) == 1
    _assert_identical(whole, again)


def _shifted(a: np.ndarray, k: int) -> np.ndarray:
    return a + k


# (meta changes, array changes) of tile 0's record, each written as tile 1's: valid checksums, wrong contents
CRAFTS = {
    "polygon index past the vertices": ({}, lambda a: {"polygon_vertices": _shifted(a["polygon_vertices"], len(a["vertices"]))}),
    "one area short": ({}, lambda a: {"areas": a["areas"][:-1]}),
    "huge face count": ({"mesh_faces": 10**11}, lambda a: {}),
    "face count off by 3": ({"mesh_faces": "n+3"}, lambda a: {}),
    "faces all outside": ({}, lambda a: {"mesh_EF": np.full_like(a["mesh_EF"], -1)}),
    "snapped not a number": ({"stats": {"snapped": "x"}}, lambda a: {}),
    "splits not a number": ({"stats": {"splits": "x"}}, lambda a: {}),
    "NaN vertex": ({}, lambda a: {"vertices": np.where(np.arange(len(a["vertices"]))[:, None] == 0, np.nan,
                                                        a["vertices"])}),
    "columns out of order": ({}, lambda a: {"code_columns": a["code_columns"][::-1].copy(),
                                            "varying_codes": a["varying_codes"][:, ::-1].copy()}),
    "another tol": ({"tol": 1e-9}, lambda a: {}),
    "LP with a mesh": ({"method": "lp"}, lambda a: {}),
    "warnings not pairs": ({"warnings": [3]}, lambda a: {}),
}


@pytest.mark.parametrize("craft", sorted(CRAFTS))
def test_crafted_record_with_a_valid_checksum_is_refused(tmp_path, monkeypatch, craft):
    """A record whose checksum is right but whose contents are wrong (shapes, indices, counts, stats, non-finite
    coordinates, unsorted columns, another run's tol or method) is skipped with a warning and its tile sliced
    again: it never becomes a slice, allocates nothing absurd, and breaks nothing later."""
    net = maso.mlp([2, 10, 10, 2], seed=7)
    box = {"lo": (-1, -1), "hi": (1, 1), "tiles": 2}
    path = tmp_path / "c.ckpt"
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        maso.slice_regions(net, **box, checkpoint=path)
    monkeypatch.undo()
    recs = C._scan(path.read_bytes(), 0)[0]
    _, _, meta, arrays = recs[-1]  # tile 0's record
    plan = recs[1][2]["id"]
    change, array_change = CRAFTS[craft]
    n = len(arrays["areas"])
    change = {k: (n + 3 if v == "n+3" else {**meta["stats"], **v} if k == "stats" else v) for k, v in change.items()}
    craft_arrays = {**{k: np.array(v) for k, v in arrays.items()}, **array_change(arrays)}
    with open(path, "ab") as fh:
        fh.write(C._encode({**{k: v for k, v in meta.items() if k != "task"}, **change, "task": 1, "plan": plan},
                           craft_arrays))
    calls = _interrupt_after(monkeypatch, 99)
    with pytest.warns(maso.errors.CheckpointWarning, match="malformed task record.*3 of 4 tiles without a valid"):
        again = maso.slice_regions(net, **box, checkpoint=path)
    assert again.stats["tiles_resumed"] == 1 and len(calls) == 3
    _assert_identical(maso.slice_regions(net, **box), again)


def test_a_plan_that_is_not_the_grid_is_refused(tmp_path):
    net = maso.mlp([2, 6, 1], seed=0)
    box = {"lo": (-1, -1), "hi": (1, 1), "tiles": (3, 2)}
    path = tmp_path / "p.ckpt"
    maso.slice_regions(net, **box, checkpoint=path)
    records = C._scan(path.read_bytes(), 0)[0]
    header, (plan, slivers) = records[0][2], records[1][2:]
    crafted = C._encode(header) + C._encode({**plan, "bounds": [0, 1, 2, 3], "n_cells": 3}, dict(slivers))
    path.write_bytes(crafted)
    with pytest.raises(maso.errors.CheckpointError, match="plans 3 tiles that are not the 6 tiles"):
        maso.slice_regions(net, **box, checkpoint=path)
    assert path.read_bytes() == crafted
    # another device's checkpoint (its matrix products round otherwise) is another run
    path.write_bytes(C._encode({**header, "device": "cuda"}) + C._encode(plan, dict(slivers)))
    with pytest.raises(maso.errors.CheckpointError, match="its device differs"):
        maso.slice_regions(net, **box, checkpoint=path)


def test_checkpoint_is_released_whatever_stops_the_slice(tmp_path, monkeypatch):
    """A damaged record's warning raised as an error, or Ctrl-C while the progress bar starts: the checkpoint is
    not left held by this process (the next call with it works)."""
    net = maso.mlp([2, 8, 8, 1], seed=2)
    box = {"lo": (-1, -1), "hi": (1, 1), "tiles": 2}
    path = tmp_path / "r.ckpt"
    whole = maso.slice_regions(net, **box, checkpoint=path)
    data = bytearray(path.read_bytes())
    data[-9] ^= 0xFF  # the last tile's record
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", maso.errors.CheckpointWarning)
        with pytest.raises(maso.errors.CheckpointWarning):
            maso.slice_regions(net, **box, checkpoint=path)
    import tqdm.auto

    def no_bar(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tqdm.auto, "tqdm", no_bar)
    with pytest.raises(KeyboardInterrupt):
        maso.slice_regions(net, **box, checkpoint=path, progress=True)
    monkeypatch.undo()
    again = maso.slice_regions(net, **box, checkpoint=path)
    assert again.stats["tiles_resumed"] == 3
    _assert_identical(whole, again)
    assert not C._HELD


def test_ctrl_c_while_a_damaged_checkpoint_is_rewritten_leaves_nothing_behind(tmp_path, monkeypatch):
    net = maso.mlp([2, 8, 8, 1], seed=2)
    box = {"lo": (-1, -1), "hi": (1, 1), "tiles": 2}
    path = tmp_path / "k.ckpt"
    whole = maso.slice_regions(net, **box, checkpoint=path)
    data = bytearray(path.read_bytes())
    data[-9] ^= 0xFF
    path.write_bytes(bytes(data))

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(C.os, "fsync", interrupted)  # (the rewrite syncs its new file before renaming it)
    with pytest.raises(KeyboardInterrupt):
        maso.slice_regions(net, **box, checkpoint=path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.ckpt"] and not C._HELD
    with pytest.warns(maso.errors.CheckpointWarning, match="the 1 of 4 tiles without a valid record"):
        again = maso.slice_regions(net, **box, checkpoint=path)
    _assert_identical(whole, again)


def test_resumed_stats_time_only_this_call(tmp_path):
    net = maso.mlp([2, 8, 8, 1], seed=2)
    path = tmp_path / "s.ckpt"
    first = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), checkpoint=path)
    again = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), checkpoint=path)
    assert first.stats["values_seconds"] > 0 and again.stats["values_seconds"] == 0.0
    assert again.stats["values_seconds"] <= again.stats["seconds"]
    assert {k: v for k, v in again.stats.items() if k not in ("values_seconds", "seconds", "tiles_resumed")} == \
        {k: v for k, v in first.stats.items() if k not in ("values_seconds", "seconds", "tiles_resumed")}


@pytest.mark.parametrize("bad", [3, b"", "", 1.5, "a\0b"])
def test_bad_checkpoint_parameter(bad):
    net = maso.mlp([2, 4, 1], seed=0)
    with pytest.raises(maso.errors.ParameterError, match="'checkpoint' parameter of slice_regions"):
        maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=bad)


def test_unusable_checkpoint_paths(tmp_path):
    net = maso.mlp([2, 4, 1], seed=0)
    with pytest.raises(maso.errors.CheckpointError, match="is a directory"):
        maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=tmp_path)
    with pytest.raises(maso.errors.CheckpointError, match="does not exist"):
        maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=tmp_path / "no" / "x.ckpt")
    junk = tmp_path / "junk"
    junk.write_bytes(struct.pack("<8d", *range(8)))
    with pytest.raises(maso.errors.CheckpointError, match="not a maso checkpoint"):
        maso.slice_regions(net, lo=(-1, -1), hi=(1, 1), tiles=2, checkpoint=junk)
    assert os.path.getsize(junk) == 64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_tiled_slice_resumes_on_the_gpu_only(tmp_path, monkeypatch):  # pragma: no cover - GPU machines
    """Tiles sliced on a GPU resume there to the uninterrupted GPU slice bit for bit; the CPU refuses them (its
    products round otherwise)."""
    net, plane = _cnn()
    box = {**BOX, "tiles": (3, 2), "device": "cuda"}
    whole = maso.slice_regions(net, plane, **box)
    path = tmp_path / "g.ckpt"
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        maso.slice_regions(net, plane, **box, checkpoint=path)
    monkeypatch.undo()
    with pytest.raises(maso.errors.CheckpointError, match="its device differs"):
        maso.slice_regions(net, plane, **{**box, "device": "cpu"}, checkpoint=path)
    resumed = maso.slice_regions(net, plane, **box, checkpoint=path)
    assert resumed.stats["tiles_resumed"] == 3
    _assert_identical(whole, resumed)
