"""Region enumeration throughput: maso against relucent (PyPI) on the same weights, in the same run.

Run: ``python benchmarks/bench_enumerate.py [--dims 3 4 6] [--widths 8 16] [--seeds 0 1 2] [--relucent-timeout 120]``
(``pip install -e ".[anchors]"`` for relucent; without it only maso runs).

Networks: ``[d, w, w, w, 1]`` ReLU MLPs with torch's default initialisation after ``torch.manual_seed(seed)``
(``maso.nn.mlp_module``), domain ``[-1, 1]^d``. For each net the script prints maso's region count and
regions/s with 1 and 2 worker processes, relucent's count and time (BFS restricted to the cube, one worker,
run in a subprocess under a time limit), whether the counts agree, and the ratios. nnenum is not on PyPI; its
numbers measured on this machine class (../shared/reference/anchors.md) are printed for reference.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import textwrap
import time

import numpy as np
import torch

import maso

#: nnenum, measured on a 2-core CPU box (anchors.md): (d, width) -> (regions, seconds) for seed 0.
NNENUM = {(3, 8): (141, 0.062), (3, 16): (1373, 0.465), (4, 8): (404, 0.181), (4, 16): (12836, 4.41)}


def build(d: int, w: int, seed: int) -> tuple[torch.nn.Module, maso.Network]:
    module = maso.nn.mlp_module([d, w, w, w, 1], seed=seed)
    net = maso.from_torch(module.double(), torch.zeros(1, d, dtype=torch.float64))
    return module, net


def run_relucent(d: int, w: int, seed: int, timeout: float) -> tuple[int | None, float | None, str]:
    code = textwrap.dedent(f"""
        import json, time, maso, relucent
        module = maso.nn.mlp_module([{d}, {w}, {w}, {w}, 1], seed={seed})
        cplx = relucent.Complex(relucent.convert(module))
        t = time.perf_counter()
        cplx.bfs(cube_radius=1.0, cube_mode="intersect", nworkers=1, verbose=0)
        print(json.dumps({{"regions": len(cplx), "seconds": time.perf_counter() - t}}))
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                             check=False)  # the return code is inspected below
    except subprocess.TimeoutExpired:
        return None, None, f"timeout>{timeout:.0f}s"
    if out.returncode != 0:
        return None, None, "failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:80]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["regions"], res["seconds"], "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 4, 6])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--relucent-timeout", type=float, default=120.0)
    parser.add_argument("--no-relucent", action="store_true")
    parser.add_argument("--min-regions-for-workers", type=int, default=5000,
                        help="time 2 worker processes only on nets with at least this many regions")
    args = parser.parse_args()
    try:
        import relucent  # noqa: F401

        have_relucent = not args.no_relucent
    except ImportError:
        have_relucent = False
        print("relucent not installed (pip install -e '.[anchors]'): maso only")
    _, warm = build(2, 4, 0)  # warm-up: imports, LP solver, torch kernels
    maso.enumerate_regions(warm, maso.Box(-np.ones(2), np.ones(2)), progress=False)
    t = time.perf_counter()  # the first pooled call of a session starts the fork server (imports maso, torch)
    maso.enumerate_regions(warm, maso.Box(-np.ones(2), np.ones(2)), progress=False, workers=2)
    print(f"worker pool start-up (first pooled call of a session, not in the times below): "
          f"{time.perf_counter() - t:.2f} s")
    print(f"{'net':<16s} {'seed':>4s} {'maso':>8s} {'s':>8s} {'reg/s':>8s} {'2 workers s':>11s} {'speed-up':>8s} "
          f"{'relucent':>9s} {'s':>8s} {'maso/rel':>8s} {'agree':>5s}  nnenum (anchors, seed 0)")
    for d in args.dims:
        for w in args.widths:
            for seed in args.seeds:
                _, net = build(d, w, seed)
                box = maso.Box(-np.ones(d), np.ones(d))
                t1 = float("inf")
                for _ in range(3):  # best of 3 for short runs: this machine's timing noise is +-30%
                    t = time.perf_counter()
                    regions = maso.enumerate_regions(net, box, progress=False)
                    t1 = min(t1, time.perf_counter() - t)
                    if t1 > 1.0:
                        break
                n = len(regions)
                t2 = float("nan")
                if n >= args.min_regions_for_workers:
                    t = time.perf_counter()
                    r2 = maso.enumerate_regions(net, box, workers=2, progress=False)
                    t2 = time.perf_counter() - t
                    assert len(r2) == n
                rel_n, rel_t, status = run_relucent(d, w, seed, args.relucent_timeout) if have_relucent \
                    else (None, None, "skipped")
                agree = "-" if rel_n is None else ("yes" if rel_n == n else "NO")
                ratio = f"{rel_t / t1:8.1f}x" if rel_t else f"{status:>9s}"
                nn = NNENUM.get((d, w)) if seed == 0 else None
                nn_s = (f"{nn[0]} in {nn[1]:.3g}s = {nn[0] / nn[1]:.0f} reg/s; maso {n / t1 / (nn[0] / nn[1]):.2f}x"
                        if nn else "")
                sp = f"{t1 / t2:>7.2f}x" if not math.isnan(t2) else f"{'-':>8s}"
                print(f"{f'{d}-[{w}]x3-1':<16s} {seed:>4d} {n:>8d} {t1:>8.2f} {n / t1:>8.0f} {t2:>11.2f} "
                      f"{sp} {rel_n if rel_n is not None else '-':>9} "
                      f"{rel_t if rel_t is not None else float('nan'):>8.2f} {ratio} {agree:>5s}  {nn_s}", flush=True)


if __name__ == "__main__":
    main()
