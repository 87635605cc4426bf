"""Command line: ``maso demo`` (codes, regions, maps and an exact enumeration of an embedded toy network) and
``maso regions`` (certified enumeration of a toy MLP in a box).

Exit codes (also in ``maso --help``): 0 success; 1 an unexpected internal error (a bug: its traceback is shown)
or a failure of the machine (a worker process died, out of memory, a full disk), in one line; 2 a user mistake
(bad arguments, a checkpoint of another run, a missing directory...), in one line, before any work; 3 the
certificate (or the demo's own checks) FAILED; 130 interrupted by Ctrl-C (a checkpoint is kept); 141 the reader
of the output went away (``maso demo | head -1``), quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import numpy as np

__all__ = ["EXIT_ERROR", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PIPE", "EXIT_USAGE", "main"]

EXIT_OK = 0
"""Success."""
EXIT_ERROR = 1
"""An unexpected internal error (a bug, shown with its traceback), or the machine failed (a worker died, memory,
disk), in one line."""
EXIT_USAGE = 2
"""A user mistake: bad arguments or a request maso refuses (typed error), in one line, before any work."""
EXIT_FAILED = 3
"""The certificate (``maso regions``) or the demo's own checks FAILED."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (SIGINT); a checkpoint is kept."""
EXIT_PIPE = 141
"""The reader of standard output closed it early (128 + SIGPIPE, as a shell reports a program killed by it)."""

_EPILOG = """\
exit codes:
  0    success
  1    unexpected internal error (a bug: traceback shown), or the machine failed
       (a worker died, out of memory, disk full)
  2    user mistake: bad arguments, a checkpoint of another run, a missing
       directory... (one line on stderr, before any work)
  3    the certificate (maso regions) or the demo's own checks FAILED
  130  interrupted by Ctrl-C (a --checkpoint is kept: rerun to resume)
  141  standard output was closed early (e.g. maso demo | head -1)
"""

_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@#$%&*+=?"

# Bounds of the command's numbers: the toy commands are for small networks, and a typo such as
# --points 1000000000 must be refused at once rather than after filling the memory.
_MAX_SEED = 2**64 - 1
_MAX_POINTS = 10_000
_MAX_MAP_WIDTH = 1_000
_MAX_VERIFY_POINTS = 10_000_000
_MAX_PARAMETERS = 50_000_000


class _UsageError(Exception):
    """A user mistake found by the command itself (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake said in one line (prog: error: message) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# ---------------------------------------------------------------------------------------- argument types
def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo}, {hi:,}], got {text}")
        return v

    parse.__name__ = "integer"
    return parse


def _positive_float(hi: float | None = None) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(v) and v > 0) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(
                f"expected a finite number > 0{'' if hi is None else f' and <= {hi:g}'}, got {text}")
        return v

    parse.__name__ = "number"
    return parse


# ----------------------------------------------------------------------------------------------- output
def _say(text: str) -> None:
    """One line on stderr (newlines in ``text`` folded), never failing."""
    with contextlib.suppress(Exception):
        sys.stderr.write(" ".join(str(text).split()) + "\n")
        sys.stderr.flush()


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as one line each (``maso: warning: ...``) instead of file:line and the source line."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *_args, **_kw: _say(  # type: ignore[assignment]
            f"maso: warning: {category.__name__}: {message}")
        yield


class _Interrupt:
    """A SIGINT handler that remembers it fired, so that whatever error an interrupted run ends with (a worker
    pool torn down under it, say) is reported as the interruption it is."""

    def __init__(self) -> None:
        self.fired = False
        self._old: Any = None

    def handler(self, signum: int, frame: Any) -> None:
        self.fired = True
        raise KeyboardInterrupt

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so that the interpreter's final flush stays quiet."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# -------------------------------------------------------------------------------------------- commands
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
    if not len(points):
        print("\n(no inputs shown: --points 0)", file=out)
    # A character map of the regions on the square [-1, 1]^2.
    W, H = args.width, max(1, args.width // 2)
    xs = np.linspace(-1, 1, W)
    ys = np.linspace(1, -1, H)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    gcodes = net.codes(grid)
    keys: dict[bytes, str] = {}
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
    return EXIT_OK if ok else EXIT_FAILED


def _check_regions_args(args: argparse.Namespace) -> None:
    """What argparse cannot see, checked before any work."""
    widths = list(args.widths)
    if len(widths) < 2:
        raise _UsageError(f"maso regions: error: --widths needs at least d_in and d_out (e.g. --widths 2 8 1). "
                          f"Got {' '.join(map(str, widths))}.")
    n_params = sum((a + 1) * b * (args.pieces if args.activation == "maxout" else 1)
                   for a, b in zip(widths[:-1], widths[1:]))
    if n_params > _MAX_PARAMETERS:
        raise _UsageError(f"maso regions: error: --widths {' '.join(map(str, widths))} makes a network of "
                          f"{n_params:,} parameters; this command builds toy networks of at most "
                          f"{_MAX_PARAMETERS:,}.")
    if args.checkpoint is not None:
        if not args.checkpoint.strip():
            raise _UsageError("maso regions: error: --checkpoint is empty; give a file path (it is created if "
                              "missing).")
        path = os.path.abspath(args.checkpoint)
        parent = os.path.dirname(path)
        if os.path.isdir(path):
            raise _UsageError(f"maso regions: error: --checkpoint {args.checkpoint!r} is a directory; give a file "
                              "path (it is created if missing).")
        if not os.path.isdir(parent):
            raise _UsageError(f"maso regions: error: the directory of --checkpoint {args.checkpoint!r} does not "
                              f"exist ({parent}); create it first.")


def _memory_arg(text: str) -> Any:
    """``--max-memory``: 'auto', 'none', or bytes (``2e9``, ``512M``, ``8G``)."""
    t = text.strip().lower()
    if t in ("auto", "none"):
        return None if t == "none" else "auto"
    scale = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 2e9 or 8G, 'auto' or 'none'; got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive size; got {text!r}")
    return value


def _regions(args: argparse.Namespace) -> int:
    import time

    import maso

    _check_regions_args(args)
    widths = list(args.widths)
    extra = {"pieces": args.pieces} if args.activation == "maxout" else {}
    net = maso.mlp(widths, seed=args.seed, activation=args.activation, **extra)
    d = widths[0]
    box = maso.Box(-args.box * np.ones(d), args.box * np.ones(d))
    t = time.perf_counter()
    regions = maso.enumerate_regions(net, box, tol=args.tol, workers=args.workers, checkpoint=args.checkpoint,
                                     progress=None if args.progress else False, max_memory=args.max_memory)
    dt = time.perf_counter() - t
    report = regions.verify(n_points=args.verify_points, rng=args.seed) if args.verify else None
    if args.json:
        out = {
            "command": "regions",
            "network": {"widths": widths, "activation": args.activation, "seed": args.seed},
            "domain": {"box": [-args.box, args.box], "dim": d},
            "tol": args.tol,
            "n_regions": len(regions),
            "slivers": len(regions.slivers),
            "seconds": dt,
            "stats": regions.stats,
            "certificate": None if report is None else _fields(report),
            "regions": [{"code": r.code.tolist(), "interior_point": r.interior_point.tolist()} for r in regions],
        }
        json.dump(_jsonable(out), sys.stdout, allow_nan=False, separators=(",", ":"))
        sys.stdout.write("\n")
    else:
        print(f"{activation_name(args.activation)} network {widths} (seed {args.seed}) on "
              f"[-{args.box:g}, {args.box:g}]^{d}: {len(regions)} regions in {dt:.2f} s "
              f"({len(regions) / max(dt, 1e-9):.0f} regions/s), {len(regions.slivers)} slivers thinner than "
              f"{args.tol:g}; LPs: {regions.stats}")
        if report is not None:
            print(f"certificate: {report}")
    return EXIT_OK if report is None or report.ok else EXIT_FAILED


def _fields(report: Any) -> dict[str, Any]:
    """The certificate's fields (whatever the report holds), with its verdict."""
    import dataclasses

    fields = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else dict(vars(report))
    fields["ok"] = bool(report.ok)
    fields["summary"] = str(report)
    return fields


def _jsonable(v: Any) -> Any:
    """``v`` with NumPy scalars and arrays as Python numbers and lists; NaN and infinities as null."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if v is None or isinstance(v, str):
        return v
    return str(v)


def activation_name(a: str) -> str:
    return {"relu": "ReLU", "leaky_relu": "leaky-ReLU", "abs": "abs", "maxout": "maxout"}[a]


def _parser() -> _Parser:
    import maso

    parser = _Parser(prog="maso", description="The spline view of deep networks.", epilog=_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"maso {maso.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    seed = _int_in(0, _MAX_SEED)
    demo = sub.add_parser("demo", help="codes, regions and affine maps of an embedded toy network", epilog=_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--seed", type=seed, default=0, help="seed of the toy network and points (default 0)")
    demo.add_argument("--hidden", type=_int_in(1, 1000), nargs="+", default=[8, 8], help="hidden widths (default 8 8)")
    demo.add_argument("--points", type=_int_in(0, _MAX_POINTS), default=3,
                      help="number of inputs to show (default 3; 0 shows none)")
    demo.add_argument("--width", type=_int_in(2, _MAX_MAP_WIDTH), default=64,
                      help="width of the character map (default 64)")
    reg = sub.add_parser("regions", help="exact enumeration of the regions of a toy MLP in a box, certified",
                         epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    reg.add_argument("--widths", type=_int_in(1, 10**9), nargs="+", default=[3, 8, 8, 1],
                     help="[d_in, hidden..., d_out]")
    reg.add_argument("--seed", type=seed, default=0, help="seed of the network and of the certificate (default 0)")
    reg.add_argument("--activation", default="relu", choices=["relu", "leaky_relu", "abs", "maxout"])
    reg.add_argument("--pieces", type=_int_in(2, 64), default=2, help="pieces of a maxout unit (default 2)")
    reg.add_argument("--box", type=_positive_float(), default=1.0, help="half-width of the box [-b, b]^d (default 1)")
    reg.add_argument("--tol", type=_positive_float(), default=1e-9,
                     help="sliver tolerance in input units (default 1e-9)")
    reg.add_argument("--workers", type=_int_in(1, 4096), default=1)
    reg.add_argument("--checkpoint", default=None, help="file to record finished tasks in (resumable)")
    reg.add_argument("--max-memory", type=_memory_arg, default="auto", metavar="BYTES",
                     help="stop with an error before the cells would take more memory than this: a size such as 2e9 "
                          "or 8G, 'auto' (half of what this machine or its limits leave; default) or 'none'")
    reg.add_argument("--progress", action="store_true", help="show a progress bar (on stderr)")
    reg.add_argument("--no-verify", dest="verify", action="store_false", help="skip the certificate")
    reg.add_argument("--verify-points", type=_int_in(1, _MAX_VERIFY_POINTS), default=1000,
                     help="random points of the certificate's coverage check (default 1000)")
    reg.add_argument("--json", action="store_true",
                     help="print one JSON object (counts, stats, certificate, each region's code and interior point)")
    exp = sub.add_parser("experiment", help="the polytope-lens experiments (from the source checkout)",
                         epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    exp.add_argument("name", nargs="?", help="the experiment to run (see --list)")
    exp.add_argument("--list", action="store_true", help="print the experiments, one per line, name first")
    exp.add_argument("--out", default=None, help="folder for the figures, results.json and report.md")
    exp.add_argument("--quick", action="store_true", help="small settings: a few minutes on 2 CPU cores")
    exp.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1...")
    exp.add_argument("--seed", type=seed, default=0)
    exp.add_argument("--shard", default=None, metavar="I/N",
                     help="sampling: take part I of N (0-based) of the run; merge with --option merge=true")
    exp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="override an option of the experiment (repeatable; see its docs page)")
    return parser


def load_experiments() -> Any:
    """The experiments folder, imported as ``maso_experiments`` (a name that shadows no other package).

    Looked for in ``$MASO_EXPERIMENTS``, then in the source checkout maso runs from (an editable install:
    ``pip install -e ".[experiments]"``), then in ``./experiments`` of the working directory.
    """
    import importlib.util
    from pathlib import Path

    import maso

    if "maso_experiments" in sys.modules:
        return sys.modules["maso_experiments"]
    places = [Path(os.environ["MASO_EXPERIMENTS"])] if os.environ.get("MASO_EXPERIMENTS") else []
    places += [Path(maso.__file__).resolve().parents[1] / "experiments", Path.cwd() / "experiments"]
    folder = next((p for p in places if (p / "__init__.py").is_file() and (p / "_run.py").is_file()), None)
    if folder is None:
        raise _UsageError("maso experiment: error: no experiments folder found (looked in "
                          + ", ".join(str(p) for p in places) + "); the experiments live in maso's source "
                          "checkout: clone it and install from it with pip install -e \".[experiments]\", or set "
                          "MASO_EXPERIMENTS to its experiments/ folder.")
    spec = importlib.util.spec_from_file_location("maso_experiments", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["maso_experiments"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["maso_experiments"]
        raise
    return module


def _option_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _experiment(args: argparse.Namespace) -> int:
    exps = load_experiments()
    if args.list:
        for name, mod in exps.experiments().items():
            print(f"{name}  {mod.TITLE}")
        return EXIT_OK
    if not args.name:
        raise _UsageError("maso experiment: error: give an experiment name, or --list to see them.")
    if args.name not in exps.MODULES:
        raise _UsageError(f"maso experiment: error: no experiment {args.name!r}; known: {', '.join(exps.MODULES)}.")
    known = getattr(exps.module(args.name), "OPTIONS", {})
    options = {}
    for item in args.option:
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            raise _UsageError(f"maso experiment: error: --option {item!r}: expected KEY=VALUE with KEY one of "
                              f"{', '.join(known) or 'none'}.")
        options[key] = _option_value(value)
    if args.shard is not None:
        if "shard" not in known:
            raise _UsageError(f"maso experiment: error: {args.name} does not shard; --shard is for the sampling "
                              "experiment (sample).")
        i, slash, n = args.shard.partition("/")
        if not (slash and i.isdigit() and n.isdigit() and int(i) < int(n)):
            raise _UsageError(f"maso experiment: error: --shard {args.shard!r}: expected I/N with 0 <= I < N.")
        options["shard"] = args.shard
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise _UsageError("maso experiment: error: --device cuda, but torch sees no CUDA device here.")
    out = args.out or f"runs/{args.name}{'-quick' if args.quick else ''}"
    try:
        exps.run(args.name, out, quick=args.quick, device=args.device, seed=args.seed, options=options)
    except exps.ExperimentError as e:
        raise _UsageError(f"maso experiment {args.name}: error: {e}") from None
    print(f"{args.name}: report in {out}/report.md, numbers in {out}/results.json")
    return EXIT_OK


def _run(argv: Sequence[str] | None, state: dict[str, Any]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help and --version
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
    state["args"] = args
    if args.command == "demo":
        return _demo(args)
    if args.command == "experiment":
        return _experiment(args)
    return _regions(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``maso`` command; returns its exit code (see ``maso --help``).

    A user mistake (bad arguments, or a typed maso error such as a checkpoint of another run) is one line on
    stderr and exit code 2; a failed certificate is exit code 3; Ctrl-C is one line and 130; a closed output
    pipe is quiet (141). An unexpected error is a bug: its traceback is shown and the exit code is 1.

    Examples
    --------
    >>> main(["demo", "--points", "1", "--width", "20"])  # doctest: +ELLIPSIS
    maso demo: ...
    all checks passed: True
    0
    """
    state: dict[str, Any] = {}
    if sys.stdout is None:  # started with stdout closed (`maso demo >&-`): nobody to write to
        return EXIT_PIPE
    with _Interrupt() as interrupt:
        try:
            with _one_line_warnings():
                code = _run(argv, state)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
            return code
        except BrokenPipeError:
            _quiet_stdout()
            return EXIT_PIPE
        except BaseException as e:  # sorted below; a bug is re-raised with its traceback
            if interrupt.fired or isinstance(e, KeyboardInterrupt):
                return _interrupted(state)
            if isinstance(e, SystemExit):
                raise
            return _failure(e)


def _interrupted(state: dict[str, Any]) -> int:
    args = state.get("args")
    ckpt = getattr(args, "checkpoint", None)
    if ckpt and os.path.exists(ckpt):
        _say(f"maso: interrupted; the checkpoint {ckpt!r} is kept: run the same command again to resume.")
    else:
        _say("maso: interrupted.")
    return EXIT_INTERRUPTED


def _failure(e: BaseException) -> int:
    from maso.errors import CheckpointError, MasoError, ResourceError, SolverError, WorkerError

    if isinstance(e, _UsageError):
        _say(str(e))
        return EXIT_USAGE
    if isinstance(e, (WorkerError, SolverError)) or (isinstance(e, CheckpointError) and isinstance(
            e.__cause__, OSError) and e.__cause__.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO)):
        _say(f"maso: error: {type(e).__name__}: {e}")  # the machine failed (a disk full, a worker killed)
        return EXIT_ERROR
    if isinstance(e, ResourceError):  # not a user mistake: this machine has too little memory for the run
        _say(f"maso: error: {e}")
        return EXIT_ERROR
    if isinstance(e, MasoError):  # refused with a typed error: bad arguments, a checkpoint of another run...
        _say(f"maso: error: {e}")
        return EXIT_USAGE
    if isinstance(e, (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        _say(f"maso: error: {e}")  # a path the user gave that cannot be used
        return EXIT_USAGE
    if isinstance(e, MemoryError):
        _say(f"maso: error: out of memory ({type(e).__name__}: {str(e) or 'no details'}); ask for less (a smaller "
             "network, box or batch).")
        return EXIT_ERROR
    if isinstance(e, OSError) and not isinstance(e, BlockingIOError):
        _say(f"maso: error: {e}")
        return EXIT_ERROR
    raise e  # a bug: keep its traceback (the interpreter prints it and exits with 1)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
