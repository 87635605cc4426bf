"""maso against itself: the same workloads on two checkouts (a git revision and this working tree).

Run:  python benchmarks/bench_revisions.py --before 03695e7           (about 3 minutes on 2 cores)

For refactors, which must not make anything slower. Each workload runs in a fresh subprocess per checkout
(``PYTHONPATH`` points at that checkout's ``maso``), the two alternating ``--repeats`` times; the table gives the
best time of each and the ratio after / before (above 1: slower now). Only the public functions both revisions
have are used, and the results of both sides are compared (a count or a checksum), so a faster wrong answer
cannot pass. The ``--before`` revision is checked out with ``git worktree`` into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Each workload: setup code, then a timed statement whose value (a number) both sides must agree on.
WORKLOADS: dict[str, tuple[str, str]] = {
    "codes, MLP 784-256-256-10, 20k inputs": (
        "net = maso.mlp([784, 256, 256, 10], seed=0); x = np.random.default_rng(0).normal(size=(20000, 784))",
        "int(net.codes(x).sum())"),
    "affine_at, MLP 64-64-64-10, 2k inputs": (
        "net = maso.mlp([64, 64, 64, 10], seed=0); x = np.random.default_rng(0).normal(size=(2000, 64))",
        "round(float(np.abs(net.affine_at(x).A).sum()), 6)"),
    "region_at, MLP 16-32-32-1, 200 inputs": (
        "net = maso.mlp([16, 32, 32, 1], seed=0); x = np.random.default_rng(0).normal(size=(200, 16))",
        "sum(net.region_at(v).A.shape[0] for v in x)"),
    "enumerate_regions, 2-D MLP 2-16-16-1": (
        "net = maso.mlp([2, 16, 16, 1], seed=0)",
        "len(maso.enumerate_regions(net, maso.Box([-2, -2], [2, 2])))"),
    "enumerate_regions, 4-D MLP 4-8-8-1 (vertices)": (
        "net = maso.mlp([4, 8, 8, 1], seed=1)",
        "len(maso.enumerate_regions(net, maso.Box(-np.ones(4), np.ones(4)), method='vertices'))"),
    "enumerate_regions, 4-D MLP 4-8-8-1 (lp)": (
        "net = maso.mlp([4, 8, 8, 1], seed=1)",
        "len(maso.enumerate_regions(net, maso.Box(-np.ones(4), np.ones(4)), method='lp'))"),
    "slice_regions, MLP 32-64-64-64-10": (
        ("net = maso.mlp([32, 64, 64, 64, 10], seed=0); rng = np.random.default_rng(0); "
        "pts = rng.normal(size=(3, 32))"),
        "len(maso.slice_regions(net, maso.Plane.through_points(pts[0], pts[1], pts[2])))"),
    "slice_regions, small CNN (1,12,12)": (
        ("import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), "
        "torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(36, 3)).double()\n"
        "net = maso.from_torch(m, torch.zeros(1, 1, 12, 12, dtype=torch.float64))\n"
        "pts = np.random.default_rng(0).normal(size=(3, 1, 12, 12))"),
        "len(maso.slice_regions(net, maso.Plane.through_points(pts[0], pts[1], pts[2])))"),
    "segment_crossings, MLP 64-128-128-128-10, 50 segments": (
        "net = maso.mlp([64, 128, 128, 128, 10], seed=0); pts = np.random.default_rng(0).normal(size=(51, 64))",
        "sum(len(maso.segment_crossings(net, pts[i], pts[i + 1]).t) for i in range(50))"),
    "soft_codes + expected_affine_at, SiLU MLP 64-128-128-10, 2k inputs": (
        ("net = maso.soft.soften(maso.mlp([64, 128, 128, 10], seed=0), beta=0.5); "
        "x = np.random.default_rng(0).normal(size=(2000, 64))"),
        "round(float(net.soft_codes(x).sum() + np.abs(net.expected_affine_at(x).A).sum()), 4)"),
    "slice_regions, CNN (3,16,16) conv-relu-pool x2 (anchored evaluate)": (
        ("import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), "
        "torch.nn.Conv2d(6, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(200, 4)).double()\n"
        "net = maso.from_torch(m, torch.zeros(1, 3, 16, 16, dtype=torch.float64))\n"
        "pts = np.random.default_rng(0).normal(size=(3, 3, 16, 16))"),
        "len(maso.slice_regions(net, maso.Plane.through_points(pts[0], pts[1], pts[2]), lo=(0, 0), hi=(0.08, 0.08)))"),
    "segment_crossings, same CNN, 4 segments": (
        ("import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), "
        "torch.nn.Conv2d(6, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(200, 4)).double()\n"
        "net = maso.from_torch(m, torch.zeros(1, 3, 16, 16, dtype=torch.float64))\n"
        "pts = np.random.default_rng(0).normal(size=(21, 3, 16, 16))"),
        "sum(len(maso.segment_crossings(net, pts[i], pts[i + 1]).t) for i in range(4))"),
    "inception_toy w8: codes + activations + affine_at(dense=False).b, 64 images": (
        ("import torch\n"
        "net = maso.from_torch(maso.nn.inception_toy(seed=0, width=8), torch.zeros(2, 3, 32, 32))\n"
        "x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))"),
        ("round(float(net.codes(x).sum()) + float(sum(v.sum() for v in net.activations(x).values())) "
        "+ float(net.affine_at(x, dense=False).b.sum()), 2)")),
    "inception_toy w4 (3,16,16): region_at, 2 images": (
        ("import torch\n"
        "net = maso.from_torch(maso.nn.inception_toy(seed=0, width=4), torch.zeros(2, 3, 16, 16))\n"
        "x = np.random.default_rng(0).normal(size=(2, 3, 16, 16))"),
        "sum(P.n_constraints for P in net.region_at(x))"),
}

RUNNER = """
import json, sys, time
import numpy as np
import maso
assert maso.__file__.startswith(sys.argv[1]), (maso.__file__, sys.argv[1])
{setup}
best, value = float("inf"), None
for _ in range({inner}):
    t = time.perf_counter()
    value = {stmt}
    best = min(best, time.perf_counter() - t)
print(json.dumps({{"time": best, "value": value}}))
"""


def run(checkout: Path, setup: str, stmt: str, inner: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    code = RUNNER.format(setup=setup, stmt=stmt, inner=inner)
    out = subprocess.run([sys.executable, "-c", code, str(checkout)], env=env, cwd=checkout,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"workload failed in {checkout}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision to compare against (e.g. a commit or HEAD~3)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating subprocess runs per side")
    ap.add_argument("--inner", type=int, default=2, help="timed repetitions inside each run (best kept)")
    ap.add_argument("--only", nargs="*", help="substrings of workload names to run")
    args = ap.parse_args()
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(here), "worktree", "add", "-q", "--detach", str(before), args.before],
                       check=True)
        try:
            print(f"before: {args.before} ({before}); after: working tree ({here}); "
                  f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}")
            print(f"{'workload':62s} {'before s':>9s} {'after s':>9s} {'after/before':>12s}")
            worst = 0.0
            for name, (setup, stmt) in WORKLOADS.items():
                if args.only and not any(s in name for s in args.only):
                    continue
                best = {"before": float("inf"), "after": float("inf")}
                values = {}
                for _ in range(args.repeats):
                    for side, path in (("before", before), ("after", here)):
                        r = run(path, setup, stmt, args.inner)
                        best[side] = min(best[side], r["time"])
                        values[side] = r["value"]
                if values["before"] != values["after"]:
                    raise SystemExit(f"{name}: results differ: before {values['before']}, after {values['after']}")
                ratio = best["after"] / best["before"]
                worst = max(worst, ratio)
                print(f"{name:62s} {best['before']:9.3f} {best['after']:9.3f} {ratio:12.2f}", flush=True)
            print(f"worst ratio after/before: {worst:.2f}")
        finally:
            subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(before)], check=False)


if __name__ == "__main__":
    main()
