"""Where an InceptionV1-tail slice spends its time on a device: the profile that a single GPU run should bring back,
so that the next optimisation needs no second run.

Run:  python benchmarks/profile_slice.py [--device cuda] [--window 6e-4] [--top 25]

Slices the tail (as ``bench_inception_slice.py`` does) once to warm up, then once under ``torch.profiler`` (CPU
and, on a GPU, CUDA activity) and once under cProfile, and prints:

- the slice's own timings (``stats``: seconds, values_seconds, vertices) and regions/s;
- torch operators by self CPU time and, on a GPU, by device time, with call counts: kernel launches, and the
  device-to-host transfers and synchronisations (``aten::_local_scalar_dense``, ``aten::_to_copy``, ``aten::copy_``,
  ``cudaStreamSynchronize``/``cudaMemcpyAsync``) that make the host wait;
- Python functions by own time (cProfile): the host's share (mesh kernels, bookkeeping).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import torch
from bench_inception_slice import setup

import maso


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--window", type=float, default=6e-4)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    net, plane = setup()
    box = {"lo": (0.2, 0.2), "hi": (0.2 + args.window, 0.2 + args.window), "progress": False, "device": args.device}
    t = time.perf_counter()
    first = maso.slice_regions(net, plane, **box)  # warm-up: caches, compiled kernels, the device's allocator
    t_first = time.perf_counter() - t
    s = first.stats
    print(f"tail slice, window {args.window:g}, device {args.device}: {len(first)} regions, {t_first:.2f} s "
          f"({len(first) / t_first:.0f} regions/s); stats seconds {s.get('seconds', 0.0):.2f}, values_seconds "
          f"{s.get('values_seconds', 0.0):.2f}, vertices {s.get('vertices', 0)}", flush=True)

    activities = [torch.profiler.ProfilerActivity.CPU]
    on_gpu = args.device.startswith("cuda")
    if on_gpu:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        t = time.perf_counter()
        again = maso.slice_regions(net, plane, **box)
        if on_gpu:
            torch.cuda.synchronize()
        t_prof = time.perf_counter() - t
    print(f"\nunder torch.profiler: {len(again)} regions in {t_prof:.2f} s (the profiler adds its own cost)")
    events = prof.key_averages()
    print(f"\ntorch operators by self CPU time (top {args.top}):")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=45))
    if on_gpu:
        print(f"\nby device time (top {args.top}):")
        print(events.table(sort_by="self_cuda_time_total", row_limit=args.top, max_name_column_width=45))
    waits = ("aten::_local_scalar_dense", "aten::_to_copy", "aten::copy_", "aten::item", "cudaStreamSynchronize",
             "cudaMemcpyAsync", "cudaDeviceSynchronize")
    counts = {e.key: e.count for e in events if e.key in waits}
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    print(f"\ncalls that may make the host wait: {counts}; kernel launches: {launches}")

    pr = cProfile.Profile()
    t = time.perf_counter()
    pr.enable()
    third = maso.slice_regions(net, plane, **box)
    pr.disable()
    t_cprof = time.perf_counter() - t
    out = io.StringIO()
    pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(args.top)
    print(f"\nunder cProfile: {len(third)} regions in {t_cprof:.2f} s; Python functions by own time:")
    print(out.getvalue())


if __name__ == "__main__":
    main()
