"""Command line: ``maso demo`` shows codes, regions and affine maps of an embedded toy network."""

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
    ok = worst_map < 1e-9 and worst_region == 0.0
    print(f"\nall checks passed: {ok}", file=out)
    return 0 if ok else 1


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
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
