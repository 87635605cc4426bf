"""Exact 2-D slices of the InceptionV1 tail: the polytope-lens article's setting, at its real size.

Run:  python benchmarks/bench_inception_slice.py [--windows 1e-4 3e-4 6e-4] [--device cuda] [--tiles N]

A plane through three (ReLU-like, non-negative) random activations in the 40,768-dimensional input of
``inception5a`` (832 x 7 x 7; ``mixed5a`` in the inception5h naming), with the boundaries of every later unit
(194,432 units: the ReLUs and 3x3 max-pools of mixed5a and 5b), random-init weights (``maso.nn.inception5_tail``,
i.e. ``maso.nn.inception_v1(seed=0).tail(after="maxpool10")``). The results file of 2026-11-22 predates that
tail: it used the GoogLeNet paper's 32-channel 5x5 bottleneck in 5a (193,648 units) and other random weights.
For each square window of the plane (side in plane units; the plane's directions are about 167 long), maso's
slice is timed as it runs (vertex values of the layers that later layers read are carried onto new mesh
vertices) against the baseline of recomputing every layer's input from the plane's anchors, in the same
process. The two must give the same regions; the script exits 1 if they do not. "mesh s" is the slice's time
outside the network's evaluation at the vertices (``stats["values_seconds"]``): the CPU's share, which bounds
the rate a faster device can reach ("mesh-bound regions/s"). With ``--device cuda`` the
slice runs on the GPU (vertex values there, in float64) and, for the windows up to 3e-4, on the CPU too in the
same process: regions per second, the ratio, and the same check that both give the same regions.

With ``--tiles N`` each window is sliced whole and as N x N tiles (``slice_regions(..., tiles=N)``) in the same
process: the two times, whether the whole window's carried values outgrew the memory budget (it then recomputes
layers from the anchors; the tiles exist for this), the pieces before joining, and the check that both give the
same regions and areas. E.g. ``--windows 2e-3 --tiles 2`` on a 24 GB machine.

With ``--tiles N --resume`` each window is sliced as N x N tiles four ways in the same process: without a
checkpoint (the baseline), with one (``checkpoint=``: the cost of recording every tile, and the file's size), read
back from the complete checkpoint, and killed: a child process slicing with a checkpoint is sent SIGKILL once half
the tiles are recorded, and the slice is resumed from what it left. Each must equal the baseline bit for bit
(polygons, codes, areas, adjacency); the script exits 1 if one does not.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import maso
from maso.slices import _slice as slices


def same_regions(a: maso.SliceRegions, b: maso.SliceRegions) -> bool:
    """The same regions by code, compared in the slices' compact form (no full code rows of 194,432 units); in
    any order (``shared_code`` holds region 0's code on the varying columns, so only the rest is compared)."""
    rest = np.ones(len(a.shared_code), dtype=bool)
    rest[a.code_columns] = False
    return (len(a) == len(b) and np.array_equal(a.code_columns, b.code_columns)
            and np.array_equal(a.shared_code[rest], b.shared_code[rest])
            and {c.tobytes() for c in a.varying_codes} == {c.tobytes() for c in b.varying_codes})


def mesh_seconds(sl: maso.SliceRegions) -> float:
    """The slice's time outside the network's evaluation at the vertices: the CPU's share, whatever the device."""
    # (a slice that fell back to the LP method has no split: all of it counts)
    return sl.stats["seconds"] - sl.stats.get("values_seconds", 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=float, nargs="+", default=[1e-4, 3e-4, 6e-4])
    ap.add_argument("--device", default="cpu", help="where vertex values are computed (cpu, cuda)")
    ap.add_argument("--cpu-windows", type=float, nargs="*", default=None,
                    help="with --device cuda: the windows also run on the CPU for the ratio (default: those <= 3e-4)")
    ap.add_argument("--tiles", type=int, default=1,
                    help="also slice each window as N x N tiles (tiles=N) and compare with the untiled slice: "
                         "times, whether the untiled one had to stop carrying values (memory), same regions")
    ap.add_argument("--tiles-only", action="store_true",
                    help="with --tiles: skip the whole window (for windows it would take hours); check instead that "
                         "the codes at 500 regions' interior points are the network's and the areas fill the window")
    ap.add_argument("--resume", action="store_true",
                    help="with --tiles: time the checkpoint (recording, reading back, a killed run resumed)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # (a checkpoint path: the run to be killed)
    args = ap.parse_args()
    net, plane = setup()
    if args.child is not None:  # the run that --resume kills: slice with a checkpoint until killed
        w = args.windows[0]
        maso.slice_regions(net, plane, lo=(0.2, 0.2), hi=(0.2 + w, 0.2 + w), tiles=args.tiles, progress=False,
                           device=args.device, checkpoint=args.child)
        sys.exit(0)
    print(f"input {net.input_dim:,}-D, {net.n_units:,} units; |u| = {np.linalg.norm(plane.u):.0f}, "
          f"|v| = {np.linalg.norm(plane.v):.0f}; torch threads {torch.get_num_threads()}; device {args.device}")
    bad = False
    if args.tiles > 1 and args.resume:
        sys.exit(compare_resume(net, plane, args.windows, args.tiles, args.device))
    if args.tiles > 1:
        sys.exit(compare_tiles(net, plane, args.windows, args.tiles, args.device, args.tiles_only))
    if args.device == "cpu":
        # baseline in the same process: every layer's input recomputed from the plane's anchors
        print(f"{'window side':>12s} {'regions':>8s} {'carried s':>10s} {'regions/s':>10s} {'mesh s':>7s} "
              f"{'mesh-bound regions/s':>21s} {'recomputed s':>13s} {'ratio':>6s}")
        carry = slices._VertexValues.advance, slices._VertexValues.prepare
        maso.slice_regions(net, plane, lo=(0.2, 0.2), hi=(0.20001, 0.20001))  # warm-up (caches, compiled kernels)
        for w in args.windows:
            box = {"lo": (0.2, 0.2), "hi": (0.2 + w, 0.2 + w), "progress": False}
            slices._VertexValues.advance, slices._VertexValues.prepare = carry
            t = time.perf_counter()
            fast = maso.slice_regions(net, plane, **box)
            t_fast = time.perf_counter() - t
            slices._VertexValues.advance = slices._VertexValues.prepare = lambda self, node: None
            t = time.perf_counter()
            base = maso.slice_regions(net, plane, **box)
            t_base = time.perf_counter() - t
            same = same_regions(fast, base)
            bad |= not same
            host = mesh_seconds(fast)
            print(f"{w:12.0e} {len(fast):8d} {t_fast:10.1f} {len(fast) / t_fast:10.0f} {host:7.2f} "
                  f"{len(fast) / host:21.0f} {t_base:13.1f} {t_fast / t_base:6.2f}"
                  f"{'' if same else '  REGIONS DIFFER'}", flush=True)
        slices._VertexValues.advance, slices._VertexValues.prepare = carry
        sys.exit(1 if bad else 0)
    # a device: the same slice on it and (for the smaller windows) on the CPU, which must agree
    cpu_windows = [w for w in args.windows if w <= 3e-4] if args.cpu_windows is None else args.cpu_windows
    maso.slice_regions(net, plane, lo=(0.2, 0.2), hi=(0.20001, 0.20001), device=args.device)  # warm-up
    print(f"{'window side':>12s} {'regions':>8s} {'device s':>9s} {'regions/s':>10s} {'vertices/s':>11s} "
          f"{'values s':>9s} {'mesh s':>7s} {'cpu s':>7s} {'cpu/device':>10s}")
    for w in args.windows:
        box = {"lo": (0.2, 0.2), "hi": (0.2 + w, 0.2 + w), "progress": False}
        t = time.perf_counter()
        dev = maso.slice_regions(net, plane, device=args.device, **box)
        t_dev = time.perf_counter() - t
        line = (f"{w:12.0e} {len(dev):8d} {t_dev:9.2f} {len(dev) / t_dev:10.0f} "
                f"{dev.stats.get('vertices', 0) / t_dev:11.0f} {dev.stats.get('values_seconds', 0.0):9.2f} "
                f"{mesh_seconds(dev):7.2f}")
        if w in cpu_windows:
            t = time.perf_counter()
            cpu = maso.slice_regions(net, plane, **box)
            t_cpu = time.perf_counter() - t
            same = same_regions(cpu, dev)
            bad |= not same
            line += f" {t_cpu:7.1f} {t_cpu / t_dev:10.1f}{'' if same else '  REGIONS DIFFER'}"
        print(line, flush=True)
    sys.exit(1 if bad else 0)


def setup() -> tuple[maso.Network, maso.Plane]:
    net = maso.from_torch(maso.nn.inception5_tail(seed=0, dtype=torch.float64),
                          torch.zeros(1, 832, 7, 7, dtype=torch.float64))
    plane = maso.Plane.through_points(*np.maximum(np.random.default_rng(0).normal(size=(3, 832, 7, 7)), 0))
    return net, plane


def identical(a: maso.SliceRegions, b: maso.SliceRegions) -> bool:
    return len(a) == len(b) and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in (
        "vertices", "polygon_offsets", "polygon_vertices", "code_columns", "varying_codes", "shared_code", "areas",
        "interior_points", "adjacency"))


def tasks_recorded(path: str) -> int:
    """Tile records in a checkpoint file (read as the run appends to it)."""
    from maso.regions._checkpoint import _scan

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return 0
    return sum(meta.get("kind") == "task" for _, _, meta, _ in _scan(data, 0)[0])


def compare_resume(net: maso.Network, plane: maso.Plane, windows: list[float], tiles: int, device: str) -> int:
    """Each window as ``tiles`` x ``tiles`` tiles: without a checkpoint, with one, read back, and killed half way
    (SIGKILL to a child process) then resumed; 1 if any differs from the first."""
    maso.slice_regions(net, plane, lo=(0.2, 0.2), hi=(0.20001, 0.20001), device=device)  # warm-up
    n = tiles * tiles
    print(f"{'window side':>12s} {'tiles':>6s} {'regions':>8s} {'plain s':>8s} {'checkpointed s':>15s} "
          f"{'ratio':>6s} {'file MB':>8s} {'read back s':>12s} {'killed at':>10s} {'killed s':>9s} "
          f"{'resume s':>9s} {'identical':>10s}")
    bad = False
    with tempfile.TemporaryDirectory() as tmp:
        for w in windows:
            box = {"lo": (0.2, 0.2), "hi": (0.2 + w, 0.2 + w), "progress": False, "device": device, "tiles": tiles}
            t = time.perf_counter()
            plain = maso.slice_regions(net, plane, **box)
            t_plain = time.perf_counter() - t
            path = os.path.join(tmp, f"{w:g}.ckpt")
            t = time.perf_counter()
            recorded = maso.slice_regions(net, plane, checkpoint=path, **box)
            t_rec = time.perf_counter() - t
            t = time.perf_counter()
            read = maso.slice_regions(net, plane, checkpoint=path, **box)
            t_read = time.perf_counter() - t
            size = os.path.getsize(path) / 2**20
            # killed half way: a child slices with a checkpoint; SIGKILL once half the tiles are recorded
            killed_path = os.path.join(tmp, f"{w:g}.killed.ckpt")
            t = time.perf_counter()
            child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--windows", str(w), "--tiles",
                                      str(tiles), "--device", device, "--child", killed_path])
            while child.poll() is None and tasks_recorded(killed_path) < n // 2:
                time.sleep(0.2)
            child.send_signal(signal.SIGKILL)
            child.wait()
            t_killed = time.perf_counter() - t
            at = tasks_recorded(killed_path)
            t = time.perf_counter()
            resumed = maso.slice_regions(net, plane, checkpoint=killed_path, **box)
            t_resume = time.perf_counter() - t
            ok = identical(plain, recorded) and identical(plain, read) and identical(plain, resumed) \
                and resumed.stats["tiles_resumed"] == at and read.stats["tiles_resumed"] == n
            bad |= not ok
            print(f"{w:12.0e} {n:6d} {len(plain):8d} {t_plain:8.1f} {t_rec:15.1f} {t_rec / t_plain:6.3f} "
                  f"{size:8.1f} {t_read:12.2f} {f'{at}/{n}':>10s} {t_killed:9.1f} {t_resume:9.1f} {ok!s:>10s}",
                  flush=True)
    return 1 if bad else 0


def compare_tiles(net: maso.Network, plane: maso.Plane, windows: list[float], tiles: int, device: str,
                  tiles_only: bool = False) -> int:
    """Each window untiled and as ``tiles`` x ``tiles`` tiles, in the same process; 1 if the regions differ."""
    import warnings

    maso.slice_regions(net, plane, lo=(0.2, 0.2), hi=(0.20001, 0.20001), device=device)  # warm-up
    if tiles_only:
        print(f"{'window side':>12s} {'tiles':>6s} {'regions':>8s} {'pieces':>7s} {'tiled s':>8s} {'regions/s':>10s} "
              f"{'codes checked':>14s} {'area / window':>14s}")
        bad = False
        for w in windows:
            box = {"lo": (0.2, 0.2), "hi": (0.2 + w, 0.2 + w), "progress": False, "device": device}
            t = time.perf_counter()
            tiled = maso.slice_regions(net, plane, tiles=tiles, **box)
            t_tiled = time.perf_counter() - t
            pick = np.random.default_rng(0).choice(len(tiled), size=min(500, len(tiled)), replace=False)
            codes = np.asarray(net.codes(plane(tiled.interior_points[pick])))
            rest = np.ones(codes.shape[1], dtype=bool)
            rest[tiled.code_columns] = False
            ok_codes = bool(np.array_equal(codes[:, tiled.code_columns], tiled.varying_codes[pick])
                            and (codes[:, rest] == tiled.shared_code[rest]).all())
            ratio = float(tiled.areas.sum()) / (w * w)
            bad |= not ok_codes or abs(ratio - 1) > 1e-9
            print(f"{w:12.0e} {tiles * tiles:6d} {len(tiled):8d} {tiled.stats['pieces']:7d} {t_tiled:8.1f} "
                  f"{len(tiled) / t_tiled:10.0f} {str(ok_codes) + ' (' + str(len(pick)) + ')':>14s} "
                  f"{ratio:14.12f}", flush=True)
        return 1 if bad else 0
    print(f"{'window side':>12s} {'regions':>8s} {'untiled s':>10s} {'carry stopped':>14s} {'tiles':>6s} "
          f"{'tiled s':>8s} {'pieces':>7s} {'untiled/tiled':>14s}")
    bad = False
    for w in windows:
        box = {"lo": (0.2, 0.2), "hi": (0.2 + w, 0.2 + w), "progress": False, "device": device}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", maso.errors.MemoryBudgetWarning)  # (reported in the table)
            t = time.perf_counter()
            whole = maso.slice_regions(net, plane, **box)
            t_whole = time.perf_counter() - t
        t = time.perf_counter()
        tiled = maso.slice_regions(net, plane, tiles=tiles, **box)
        t_tiled = time.perf_counter() - t
        # (areas round at the size of the coordinates' squares, 0.2^2 here, not of the window's)
        same = same_regions(whole, tiled) and bool(np.allclose(np.sort(whole.areas), np.sort(tiled.areas),
                                                               rtol=1e-9, atol=64 * np.finfo(float).eps * 0.2 ** 2))
        bad |= not same
        print(f"{w:12.0e} {len(whole):8d} {t_whole:10.1f} {whole.stats['carry_stopped']!s:>14s} "
              f"{tiles * tiles:6d} {t_tiled:8.1f} {tiled.stats['pieces']:7d} {t_whole / t_tiled:14.2f}"
              f"{'' if same else '  REGIONS DIFFER'}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    main()
