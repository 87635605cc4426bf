"""Command line: ``maso demo`` (codes, regions, maps and an exact enumeration of an embedded toy network) and
``maso regions`` (certified enumeration of a toy MLP in a box)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np

__all__ = ["main"]

_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@#$%&*+=?"


def _demo(args: argparse.Namespace) -> int:
    import maso

    widths = [2, *args.hidden, 2]
    net = maso.mlp(widths, seed=args.seed)
    out = sys.stdout
    print(f"maso demo: a random-init ReLU network {widths} (seed {args.seed}), torch default initialisation", file=out)
    print(net.summary(), file=out)
    rng = np.random.default_rng(args.seed)
    points = rng.uniform(-1, 1, size=(args.points, 2))
    codes = net.codes(points)
    maps = net.affine_at(points)
    regions = net.region_at(points)
    worst_map = 0.0
    worst_region = 0.0
    for i, x in enumerate(points):
        f = maps[i]
        P = regions[i]
        slack = P.slack(x)
        # Check the region: random points inside it must share x's code and map.
        inside = x + rng.normal(scale=0.05, size=(2000, 2)) * rng.uniform(0, 1, size=(2000, 1))
        inside = inside[P.contains(inside)]
        same_code = bool(np.all(net.codes(inside) == codes[i])) if len(inside) else True
        err = float(np.abs(f(inside) - net(inside)).max()) if len(inside) else 0.0
        worst_map = max(worst_map, err)
        worst_region = max(worst_region, 0.0 if same_code else 1.0)
        print(f"\ninput {i}: x = {np.array2string(x, precision=3)}", file=out)
        print(f"  code  : {''.join(map(str, codes[i]))}  ({int(codes[i].sum())} of {net.n_units} units active)",
              file=out)
        print(f"  map   : f(y) = A y + b with A = {np.array2string(f.A, precision=3).replace(chr(10), '')}, "
              f"b = {np.array2string(f.b, precision=3)}", file=out)
        print(f"  region: {P.n_constraints} inequalities, distance from x to the nearest of their hyperplanes "
              f"{float(slack.min() / np.linalg.norm(P.A[np.argmin(slack)])):.3g}", file=out)
        print(f"  check : {len(inside)} points sampled in the region share the code: {same_code}; "
              f"largest |A y + b - net(y)| = {err:.2e}", file=out)
    # A character map of the regions on the square [-1, 1]^2.
    W, H = args.width, args.width // 2
    xs = np.linspace(-1, 1, W)
    ys = np.linspace(1, -1, H)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    gcodes = net.codes(grid)
    keys = {}
    labels = np.empty(len(grid), dtype=object)
    for j, row in enumerate(gcodes):
        k = row.tobytes()
        if k not in keys:
            keys[k] = _GLYPHS[len(keys) % len(_GLYPHS)]
        labels[j] = keys[k]
    print(f"\nregions of [-1, 1]^2 seen on a {W}x{H} grid: {len(keys)} distinct codes "
          "(glyphs repeat after 72)", file=out)
    for r in range(H):
        print("  " + "".join(labels[r * W:(r + 1) * W]), file=out)
    # Exact enumeration of the same square, certified.
    regions = maso.enumerate_regions(net, maso.Box([-1.0, -1.0], [1.0, 1.0]), progress=False)
    report = regions.verify(rng=args.seed)
    area = sum(r.volume() for r in regions)
    print(f"\nexact enumeration of [-1, 1]^2: {len(regions)} regions (the grid above saw {len(keys)}), "
          f"{len(regions.slivers)} slivers, total area {area:.12f}", file=out)
    print(f"certificate: {report}", file=out)
    # The fast mesh path on the same square must find the same regions; and one exact segment.
    sl = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    same = {c.tobytes() for c in sl.codes} == {r.code.tobytes() for r in regions}
    print(f"mesh slice of the same square: {len(sl)} regions in {sl.stats['seconds'] * 1e3:.1f} ms, same codes as the "
          f"enumeration: {same}; decision boundary: {len(sl.decision_boundary())} segments", file=out)
    sc = maso.segment_crossings(net, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    print(f"diagonal (-1,-1) -> (1,1): {sc.n_pieces} linear pieces, code changes at t = "
          f"{np.array2string(sc.t, precision=3, max_line_width=100)}", file=out)
    ok = worst_map < 1e-9 and worst_region == 0.0 and report.ok and abs(area - 4.0) < 1e-9 and same
    print(f"\nall checks passed: {ok}", file=out)
    return 0 if ok else 1


def _regions(args: argparse.Namespace) -> int:
    import time

    import maso

    widths = list(args.widths)
    net = maso.mlp(widths, seed=args.seed, activation=args.activation)
    d = widths[0]
    box = maso.Box(-args.box * np.ones(d), args.box * np.ones(d))
    t = time.perf_counter()
    regions = maso.enumerate_regions(net, box, tol=args.tol, workers=args.workers, checkpoint=args.checkpoint,
                                     progress=None if args.progress else False)
    dt = time.perf_counter() - t
    print(f"{activation_name(args.activation)} network {widths} (seed {args.seed}) on [-{args.box:g}, {args.box:g}]^{d}: "
          f"{len(regions)} regions in {dt:.2f} s ({len(regions) / dt:.0f} regions/s), {len(regions.slivers)} slivers "
          f"thinner than {args.tol:g}; LPs: {regions.stats}")
    if args.verify:
        report = regions.verify(n_points=args.verify_points, rng=args.seed)
        print(f"certificate: {report}")
        return 0 if report.ok else 1
    return 0


def activation_name(a: str) -> str:
    return {"relu": "ReLU", "leaky_relu": "leaky-ReLU", "abs": "abs", "maxout": "maxout"}[a]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``maso`` command.

    Examples
    --------
    >>> main(["demo", "--points", "1", "--width", "20"])  # doctest: +ELLIPSIS
    maso demo: ...
    all checks passed: True
    0
    """
    parser = argparse.ArgumentParser(prog="maso", description="The spline view of deep networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="codes, regions and affine maps of an embedded toy network")
    demo.add_argument("--seed", type=int, default=0, help="seed of the toy network and points (default 0)")
    demo.add_argument("--hidden", type=int, nargs="+", default=[8, 8], help="hidden widths (default 8 8)")
    demo.add_argument("--points", type=int, default=3, help="number of inputs to show (default 3)")
    demo.add_argument("--width", type=int, default=64, help="width of the character map (default 64)")
    reg = sub.add_parser("regions", help="exact enumeration of the regions of a toy MLP in a box, certified")
    reg.add_argument("--widths", type=int, nargs="+", default=[3, 8, 8, 1], help="[d_in, hidden..., d_out]")
    reg.add_argument("--seed", type=int, default=0)
    reg.add_argument("--activation", default="relu", choices=["relu", "leaky_relu", "abs", "maxout"])
    reg.add_argument("--box", type=float, default=1.0, help="half-width of the box [-b, b]^d (default 1)")
    reg.add_argument("--tol", type=float, default=1e-9, help="sliver tolerance in input units (default 1e-9)")
    reg.add_argument("--workers", type=int, default=1)
    reg.add_argument("--checkpoint", default=None, help="file to record finished tasks in (resumable)")
    reg.add_argument("--progress", action="store_true", help="show a progress bar")
    reg.add_argument("--no-verify", dest="verify", action="store_false", help="skip the certificate")
    reg.add_argument("--verify-points", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "regions":
        return _regions(args)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
