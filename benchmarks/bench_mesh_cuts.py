"""The slice mesh's cuts alone (`Mesh.cut_columns`, `Mesh.cut_pieces`), timed and hashed, and optionally the
Inception tail's mesh share: what the compiled kernels' changes are measured with, before and after.

Run:  python benchmarks/bench_mesh_cuts.py [--lines 100 300] [--repeat 7] [--tail 6e-4 1e-3]

- ``--lines``: one layer of that many random lines over [-1, 1]^2 (a coincident one among them), cut by
  `cut_columns`; then 60 units of 3 random affine pieces each, cut by `cut_pieces`. Prints faces, edges and the
  best time of ``--repeat`` runs.
- ``--tail``: slices of the InceptionV1 tail (as ``bench_inception_slice.py``) at those window sides, with their
  mesh share (``stats["seconds"] - stats["values_seconds"]``).

The last line is a hash of every mesh array and slice field: the same hash before and after a change means the
same meshes bit for bit. Compare two commits by running this in each (e.g. a ``git worktree`` on
``PYTHONPATH``), alternating, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np

from maso.slices._mesh import Mesh


def _arrays(mesh: Mesh) -> tuple[np.ndarray, ...]:
    return (mesh.P, mesh.E, mesh.EF, mesh.Z, *mesh.sources, mesh.parent, mesh.codes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="*", default=[100, 300])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tail", type=float, nargs="*", default=[])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    digest = hashlib.sha256()
    square = (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    for n in args.lines:
        W = rng.normal(size=(n, 2))
        b = rng.uniform(-0.8, 0.8, size=n) * np.linalg.norm(W, axis=1)
        W[5], b[5] = W[4], b[4]  # a coincident line
        best = np.inf
        for _ in range(args.repeat):
            mesh = Mesh(*square)
            mesh.set_values(mesh.P @ W.T + b)
            t = time.perf_counter()
            mesh.cut_columns(1e-12)
            best = min(best, time.perf_counter() - t)
        print(f"{n} lines (cut_columns): {mesh.nF} faces, {mesh.nE} edges, best of {args.repeat}: "
              f"{best * 1e3:.1f} ms", flush=True)
        for a in _arrays(mesh):
            digest.update(np.ascontiguousarray(a).tobytes())
        R, U = 3, 60
        W3, b3 = rng.normal(size=(U * R, 2)), 0.5 * rng.normal(size=U * R)
        best = np.inf
        for _ in range(args.repeat):
            mesh = Mesh(*square)
            mesh.set_values(mesh.P @ W3.T + b3)
            t = time.perf_counter()
            mesh.cut_pieces(R, np.ones((U, R), dtype=bool), 1e-12)
            best = min(best, time.perf_counter() - t)
        print(f"  {U} units of {R} pieces (cut_pieces): {mesh.nF} faces, best of {args.repeat}: {best * 1e3:.1f} ms",
              flush=True)
        for a in _arrays(mesh):
            digest.update(np.ascontiguousarray(a).tobytes())
    if args.tail:
        from bench_inception_slice import mesh_seconds, setup

        import maso

        net, plane = setup()
        maso.slice_regions(net, plane, lo=(0.2, 0.2), hi=(0.20001, 0.20001))  # warm-up
        for w in args.tail:
            t = time.perf_counter()
            sl = maso.slice_regions(net, plane, lo=(0.2, 0.2), hi=(0.2 + w, 0.2 + w), progress=False)
            print(f"tail window {w:g}: {len(sl)} regions in {time.perf_counter() - t:.1f} s, mesh share "
                  f"{mesh_seconds(sl):.3f} s", flush=True)
            for f in ("vertices", "polygon_offsets", "polygon_vertices", "code_columns", "varying_codes",
                      "shared_code", "areas", "interior_points"):
                digest.update(np.ascontiguousarray(getattr(sl, f)).tobytes())
    print(f"hash of every mesh and slice: {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
