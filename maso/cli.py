"""Command line: ``maso demo`` (codes, regions, maps and an exact enumeration of an embedded toy network; writes
a figure of its regions with the exact decision boundary and the regions as JSON), ``maso regions`` (certified
enumeration of a toy MLP or of your model in a box), ``maso slice`` (the exact 2-D slice of your model through
three points, with its decision boundary, and a figure), ``maso segment`` (where the code of your model changes
along a segment) and ``maso experiment``.

Your model: ``--model FILE``, a ``torch.save``d module (a pickle: it runs code, so trusted files only), a
TorchScript module (rebuilt as a Python module when it is a chain of ``torch.nn``/``maso.nn`` layers) or a state
dict with ``--builder NAME --builder-args JSON`` (a ``maso.nn`` builder). Points: ``0.5,-1`` (comma-separated,
one number repeats for every coordinate) or a ``.npy`` file. ``--json`` prints one JSON object on stdout, with no
NaN (non-finite numbers are null); each command's ``--help`` gives its schema.

Exit codes (also in ``maso --help``): 0 success; 1 an unexpected internal error (a bug: its traceback is shown)
or a failure of the machine (a worker process died, out of memory, a full disk), in one line; 2 a user mistake
(bad arguments, a missing file or one that is not a model, points of the wrong dimension, an empty box, an
unsupported layer, a checkpoint of another run...), in one line, before any work; 3 a check FAILED (the
certificate of ``maso regions`` or ``maso segment``, the tiling and codes of ``maso slice``, the demo's own
checks); 130 interrupted by Ctrl-C (a checkpoint is kept); 141 the reader of the output went away
(``maso demo | head -1``), quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
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
  2    user mistake: bad arguments, a missing file or one that is not a
       model, points of the wrong dimension, an empty box, an unsupported
       layer, a checkpoint of another run... (one line on stderr, before any
       work)
  3    a check FAILED: the certificate (maso regions, maso segment), the
       tiling and codes (maso slice) or the demo's own checks
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


from maso._cli_models import UsageError as _UsageError  # a user mistake (exit code 2)


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake said in one line (prog: error: message) instead of the usage block."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Points are written "-1,0.5": argparse would take anything that starts with "-" and is not a plain
        # number for an option. No maso option starts with "-" and a digit, so such words are values.
        self._negative_number_matcher = re.compile(r"^-\.?\d")

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
        warnings.showwarning = lambda message, category, *_args, **_kw: _say(
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

    def __enter__(self) -> _Interrupt:  # noqa: PYI034 - private, not subclassed
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
    folder = _demo_folder(args.out)
    net = maso.mlp(widths, seed=args.seed)
    out = sys.stdout
    print(f"maso demo: a random-init ReLU network {widths} (seed {args.seed}), torch default initialisation", file=out)
    print(net.summary(), file=out)
    rng = np.random.default_rng(args.seed)
    points = rng.uniform(-1, 1, size=(args.points, 2))
    codes = net.codes(points)
    maps = net.affine_at(points)
    regions = net.region_at(points)
    assert isinstance(regions, tuple)  # a batch of points: one region each
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
    found = maso.enumerate_regions(net, maso.Box([-1.0, -1.0], [1.0, 1.0]), progress=False)
    report = found.verify(rng=args.seed)
    area = sum(r.volume() for r in found)
    print(f"\nexact enumeration of [-1, 1]^2: {len(found)} regions (the grid above saw {len(keys)}), "
          f"{len(found.slivers)} slivers, total area {area:.12f}", file=out)
    print(f"certificate: {report}", file=out)
    # The fast mesh path on the same square must find the same regions; and one exact segment.
    sl = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    same = {c.tobytes() for c in sl.codes} == {r.code.tobytes() for r in found}
    print(f"mesh slice of the same square: {len(sl)} regions in {sl.stats['seconds'] * 1e3:.1f} ms, same codes as the "
          f"enumeration: {same}; decision boundary: {len(sl.decision_boundary())} segments", file=out)
    sc = maso.segment_crossings(net, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    print(f"diagonal (-1,-1) -> (1,1): {sc.n_pieces} linear pieces, code changes at t = "
          f"{np.array2string(sc.t, precision=3, max_line_width=100)}", file=out)
    ok = worst_map < 1e-9 and worst_region == 0.0 and report.ok and abs(area - 4.0) < 1e-9 and same
    _demo_files(folder, net, widths, args.seed, found, report, sl, out)
    print(f"\nall checks passed: {ok}", file=out)
    return EXIT_OK if ok else EXIT_FAILED


def _demo_folder(path: str) -> str:
    """The demo's --out folder, created before any work (a path that is a file, or cannot be made, is refused)."""
    if not path.strip():
        raise _UsageError("maso demo: error: --out is empty; give a folder (it is created if missing).")
    if os.path.exists(path) and not os.path.isdir(path):
        raise _UsageError(f"maso demo: error: --out {path!r} is a file; give a folder (it is created if missing).")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise _UsageError(f"maso demo: error: --out {path!r}: cannot create the folder ({e.strerror or e}).") from None
    return path


def _demo_files(folder: str, net: Any, widths: list[int], seed: int, regions: Any, report: Any, sl: Any,
                out: Any) -> None:
    """regions.json (the slice's polygons with codes and classes, the count and certificate of the enumeration,
    the decision boundary) and partition.png (the regions coloured by class, the exact decision boundary), or a
    line saying how to get the figure when matplotlib is missing.

    Both show the square [-R, R]^2 with R the smallest of 1, 2, 4, ..., 64 that the decision boundary crosses (a
    random network's two classes often meet only far from the origin), else R = 64.
    """
    import maso

    half = 1.0
    while True:
        if half > 1:
            sl = maso.slice_regions(net, lo=(-half, -half), hi=(half, half))
        boundary = sl.decision_boundary()
        if len(boundary) or half >= 64:
            break
        half *= 2
    y = np.asarray(net(sl.interior_points)).reshape(len(sl), -1)
    data = {
        "command": "demo",
        "network": {"widths": widths, "activation": "relu", "seed": seed},
        "domain": {"lo": [-half, -half], "hi": [half, half]},
        "n_regions": len(sl),
        "enumeration": {"domain": {"lo": [-1.0, -1.0], "hi": [1.0, 1.0]}, "n_regions": len(regions),
                        "certificate": _fields(report)},
        "regions": [{"code": sl.codes[i].tolist(), "polygon": sl.polygon(i).tolist(), "area": float(sl.areas[i]),
                     "interior_point": sl.interior_points[i].tolist(), "output": y[i].tolist(),
                     "class": int(np.argmax(y[i]))} for i in range(len(sl))],
        "decision_boundary": {"segments": boundary.tolist(), "n_segments": len(boundary)},
    }
    json_path = os.path.join(folder, "regions.json")
    with open(json_path, "w") as f:
        json.dump(_jsonable(data), f, allow_nan=False, indent=1)
    where = ("[-1, 1]^2" if half == 1 else f"[-{half:g}, {half:g}]^2 (the smallest square of side 2^k the decision "
             "boundary crosses" + (")" if len(boundary) else "; it crosses none up to 64)"))
    print(f"\nfiles: the {len(sl)} regions of {where}, with {len(boundary)} segments of the exact decision boundary",
          file=out)
    print(f"  regions (codes, polygons, outputs, classes) and the decision boundary as JSON: {json_path}", file=out)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print('  figure skipped: matplotlib is not installed (pip install "maso[plot]" to get partition.png)',
              file=out)
        return
    import matplotlib.pyplot as plt

    png = os.path.join(folder, "partition.png")
    fig = sl.plot(color="argmax")
    fig.axes[0].set_title(f"{len(sl)} regions of a ReLU network {widths} (seed {seed}) on [-{half:g}, {half:g}]^2,\n"
                          "coloured by class; thick: the exact decision boundary", fontsize=9)
    fig.savefig(png, bbox_inches="tight", dpi=150)
    plt.close(fig)
    print(f"  figure of the regions coloured by class, with the exact decision boundary: {png}", file=out)


def _check_regions_args(args: argparse.Namespace) -> None:
    """What argparse cannot see, checked before any work."""
    if args.model is not None:
        for flag, value in (("--activation", args.activation), ("--pieces", args.pieces)):
            if value is not None:
                raise _UsageError(f"maso regions: error: {flag} is for the toy network of --widths; a --model file "
                                  "has its own layers.")
    else:
        for flag, value in (("--builder", args.builder), ("--builder-args", args.builder_args),
                            ("--input-shape", args.input_shape)):
            if value is not None:
                raise _UsageError(f"maso regions: error: {flag} goes with --model FILE.")
    if len(args.box) > 2:
        raise _UsageError(f"maso regions: error: --box takes B (the box [-B, B]^d) or LO HI; got {len(args.box)} "
                          "values.")
    if args.model is None:
        _check_toy_args(args)
    _check_checkpoint(args)


def _check_toy_args(args: argparse.Namespace) -> None:
    widths = list(args.widths)
    if len(widths) < 2:
        raise _UsageError(f"maso regions: error: --widths needs at least d_in and d_out (e.g. --widths 2 8 1). "
                          f"Got {' '.join(map(str, widths))}.")
    pieces = args.pieces or 2
    n_params = sum((a + 1) * b * (pieces if args.activation == "maxout" else 1)
                   for a, b in zip(widths[:-1], widths[1:]))
    if n_params > _MAX_PARAMETERS:
        raise _UsageError(f"maso regions: error: --widths {' '.join(map(str, widths))} makes a network of "
                          f"{n_params:,} parameters; this command builds toy networks of at most "
                          f"{_MAX_PARAMETERS:,}.")


def _check_checkpoint(args: argparse.Namespace) -> None:
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


# ------------------------------------------------------------------------------------ points and models
def _points(command: str, items: Sequence[tuple[str, str]]) -> list[tuple[str, np.ndarray]]:
    """The points of the command line, parsed (see ``maso._cli_models.parse_point``)."""
    from maso._cli_models import parse_point

    out = []
    for what, text in items:
        try:
            out.append((what, parse_point(text, what)))
        except _UsageError as e:
            raise _UsageError(f"maso {command}: error: {e}") from None
    return out


def _half_width(text: str) -> float:
    """``--box B``: a finite B > 0."""
    try:
        return _positive_float()(text)
    except argparse.ArgumentTypeError as e:
        raise _UsageError(f"maso regions: error: argument --box: {e} (B is the half-width of the box [-B, B]^d; "
                          "or give LO HI)") from None


def _bounds(command: str, flag: str, lo: np.ndarray, hi: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``LO HI`` broadcast to ``size`` coordinates (a scalar to all), refusing an empty box."""
    lo = np.broadcast_to(lo.reshape(-1) if lo.ndim else lo, (size,)).astype(np.float64)
    hi = np.broadcast_to(hi.reshape(-1) if hi.ndim else hi, (size,)).astype(np.float64)
    bad = np.flatnonzero(lo >= hi)
    if len(bad):
        i = int(bad[0])
        raise _UsageError(f"maso {command}: error: {flag} LO HI is empty: LO >= HI in {len(bad)} of {size} "
                          f"coordinates (the first: coordinate {i}, LO {lo[i]:g}, HI {hi[i]:g}); each LO must be "
                          "below its HI.")
    return lo, hi


def _load(command: str, args: argparse.Namespace, points: list[tuple[str, np.ndarray]]) -> tuple[Any, tuple[int, ...]]:
    """``--model`` read and its input shape found (from ``--input-shape``, the points or its first layer)."""
    from maso._cli_models import input_shape_of, load_model, parse_shape

    try:
        shape = parse_shape(args.input_shape) if args.input_shape is not None else None
        loaded = load_model(args.model, builder=args.builder, builder_args=args.builder_args)
        shape = input_shape_of(loaded, points, shape)
    except _UsageError as e:
        raise _UsageError(f"maso {command}: error: {e}") from None
    return loaded, shape


def _network(command: str, loaded: Any, shape: tuple[int, ...]) -> Any:
    from maso._cli_models import to_network

    try:
        return to_network(loaded, shape)
    except _UsageError as e:
        raise _UsageError(f"maso {command}: error: {e}") from None


def _progress(args: argparse.Namespace) -> bool:
    """--progress / --no-progress; by default a bar when stderr is a terminal."""
    if args.progress is not None:
        return bool(args.progress)
    try:
        return sys.stderr.isatty()
    except Exception:  # noqa: BLE001 - a replaced stderr without isatty
        return False


def _model_fields(loaded: Any, net: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    return {**loaded.describe(), "input_shape": list(shape), "input_dim": int(net.input_dim),
            "output_dim": int(net.output_dim), "n_units": int(net.n_units)}


def _emit_json(out: dict[str, Any]) -> None:
    json.dump(_jsonable(out), sys.stdout, allow_nan=False, separators=(",", ":"))
    sys.stdout.write("\n")


def _vec(a: np.ndarray, limit: int = 6) -> str:
    """A short text of a vector: all of it up to ``limit`` numbers, else its first ones and its size."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    text = ", ".join(f"{v:.6g}" for v in a[:limit])
    return f"[{text}]" if a.size <= limit else f"[{text}, ... ({a.size} numbers)]"


# -------------------------------------------------------------------------------------------------- regions
def _regions(args: argparse.Namespace) -> int:
    import time

    import maso

    _check_regions_args(args)
    if args.model is None:
        widths = list(args.widths)
        activation = args.activation or "relu"
        d = widths[0]
        if len(args.box) == 1:
            b = _half_width(args.box[0])
            lo, hi = -b * np.ones(d), b * np.ones(d)
        else:
            (_, lo), (_, hi) = _points("regions", [("--box LO", args.box[0]), ("--box HI", args.box[1])])
            for what, p in (("LO", lo), ("HI", hi)):
                if p.ndim and p.size != d:
                    raise _UsageError(f"maso regions: error: --box {what} has {p.size} numbers; the network's input "
                                      f"has {d} (wrong dimension).")
            lo, hi = _bounds("regions", "--box", lo, hi, d)
        extra = {"pieces": args.pieces or 2} if activation == "maxout" else {}
        net = maso.mlp(widths, seed=args.seed, activation=activation, **extra)
        network: dict[str, Any] = {"widths": widths, "activation": activation, "seed": args.seed}
        title = f"{activation_name(activation)} network {widths} (seed {args.seed})"
    else:
        if len(args.box) == 1:
            b = _half_width(args.box[0])
            raw = [("--box", np.array(-b)), ("--box", np.array(b))]
        else:
            raw = _points("regions", [("--box LO", args.box[0]), ("--box HI", args.box[1])])
        loaded, shape = _load("regions", args, raw)
        d = math.prod(shape)
        lo, hi = _bounds("regions", "--box", raw[0][1], raw[1][1], d)
        net = _network("regions", loaded, shape)
        network = _model_fields(loaded, net, shape)
        title = f"{loaded.describe()['class']} from {args.model} ({net.n_units} units, input {shape})"
    box = maso.Box(lo, hi)
    t = time.perf_counter()
    regions = maso.enumerate_regions(net, box, tol=args.tol, workers=args.workers, checkpoint=args.checkpoint,
                                     progress=_progress(args), max_memory=args.max_memory)
    dt = time.perf_counter() - t
    report = regions.verify(n_points=args.verify_points, rng=args.seed) if args.verify else None
    cube = bool(np.all(lo == lo[0]) and np.all(hi == hi[0]))
    where = (f"[{lo[0]:g}, {hi[0]:g}]^{d}" if cube else f"the box {_vec(lo)} .. {_vec(hi)}")
    if args.json:
        domain: dict[str, Any] = {"lo": lo, "hi": hi, "dim": d}
        if args.model is None and cube and lo[0] == -hi[0]:
            domain["box"] = [float(lo[0]), float(hi[0])]
        _emit_json({
            "command": "regions",
            "network": network,
            "domain": domain,
            "tol": args.tol,
            "n_regions": len(regions),
            "slivers": len(regions.slivers),
            "seconds": dt,
            "stats": regions.stats,
            "certificate": None if report is None else _fields(report),
            "regions": [{"code": r.code.tolist(), "interior_point": r.interior_point.tolist(),
                         "inradius": float(r.inradius)} for r in regions],
        })
    else:
        print(f"{title} on {where}: {len(regions)} regions in {dt:.2f} s "
              f"({len(regions) / max(dt, 1e-9):.0f} regions/s), {len(regions.slivers)} slivers thinner than "
              f"{args.tol:g}; LPs: {regions.stats}")
        if report is not None:
            print(f"certificate: {report}")
    return EXIT_OK if report is None or report.ok else EXIT_FAILED


# ---------------------------------------------------------------------------------------------------- slice
def _figure_check(command: str, path: str | None) -> None:
    """--out of a figure: matplotlib present and the folder there, before any work."""
    if path is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise _UsageError(f"maso {command}: error: --out {path!r} draws a figure, which needs matplotlib: "
                          "pip install \"maso[plot]\".") from None
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) or os.path.isdir(path):
        raise _UsageError(f"maso {command}: error: --out {path!r}: "
                          + ("is a directory; give a file name such as slice.png." if os.path.isdir(path) else
                             f"its directory {parent} does not exist."))


def _slice(args: argparse.Namespace) -> int:
    import maso

    pts = _points("slice", [(f"--through {n}", t) for n, t in zip("ABC", args.through)])
    if args.window is not None:
        (_, wlo), (_, whi) = _points("slice", [("--window LO", args.window[0]), ("--window HI", args.window[1])])
        for what, p in (("LO", wlo), ("HI", whi)):
            if p.ndim and p.size != 2:
                raise _UsageError(f"maso slice: error: --window {what} has {p.size} numbers; a window corner is "
                                  "plane coordinates S,T (2 numbers) or one number for both.")
        lo, hi = _bounds("slice", "--window", wlo, whi, 2)
    else:
        lo, hi = np.array([-0.5, -0.5]), np.array([1.5, 1.5])
    _figure_check("slice", args.out)
    loaded, shape = _load("slice", args, pts)
    d = math.prod(shape)
    a, b, c = (np.broadcast_to(p, (d,)).astype(np.float64) if p.ndim == 0 else p.reshape(-1) for _, p in pts)
    try:
        plane = maso.Plane.through_points(a, b, c)
    except maso.errors.DomainError as e:
        raise _UsageError(f"maso slice: error: --through A B C must not lie on one line: {e}") from None
    net = _network("slice", loaded, shape)
    sl = maso.slice_regions(net, plane, lo, hi, progress=_progress(args), tiles=args.tiles,
                            checkpoint=args.checkpoint)
    window_area = float(np.prod(hi - lo))
    area = float(sl.areas.sum())
    inside = plane(sl.interior_points).reshape(len(sl), *net.input_shape) if len(sl) else None
    codes_ok = bool(len(sl) and np.array_equal(np.asarray(net.codes(inside)), sl.codes))
    area_ok = abs(area - window_area) <= 1e-9 * window_area
    ok = codes_ok and area_ok
    output = None if net.output_dim > 1 else 0
    boundary = sl.decision_boundary()
    color = args.color if args.color != "auto" else ("argmax" if net.output_dim > 1 else "code")
    if args.out is not None:
        import matplotlib.pyplot as plt

        fig = sl.plot(color=color, points=np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), labels=["A", "B", "C"])
        ax = fig.axes[0]
        ax.set_xlabel("s (from A towards B)")
        ax.set_ylabel("t (from A towards C)")
        where = ("thick: the exact decision boundary" if len(boundary) else
                 "the decision boundary does not cross this window")
        ax.set_title(f"{len(sl)} regions of the plane through A, B, C; {where}", fontsize=9)
        fig.savefig(args.out, bbox_inches="tight", dpi=150)
        plt.close(fig)
    if args.json:
        _emit_json({
            "command": "slice",
            "network": _model_fields(loaded, net, shape),
            "plane": {"origin": plane.origin.reshape(-1), "u": plane.u.reshape(-1), "v": plane.v.reshape(-1),
                      "through": {"A": a, "B": b, "C": c, "A_st": [0.0, 0.0], "B_st": [1.0, 0.0],
                                  "C_st": [0.0, 1.0]}},
            "window": {"lo": lo, "hi": hi, "area": window_area},
            "n_regions": len(sl),
            "area": area,
            "method": sl.method,
            "stats": sl.stats,
            "checks": {"area_sum": area, "window_area": window_area, "areas_ok": area_ok, "codes_ok": codes_ok,
                       "ok": ok},
            "regions": [{"code": sl.codes[i].tolist(), "polygon": sl.polygon(i).tolist(), "area": float(sl.areas[i]),
                         "interior_point": sl.interior_points[i].tolist()} for i in range(len(sl))],
            "decision_boundary": {"output": output, "segments": boundary.tolist(), "n_segments": len(boundary)},
            "figure": None if args.out is None else os.path.abspath(args.out),
        })
    else:
        print(f"slice of {loaded.describe()['class']} from {args.model} ({net.n_units} units, input {shape}) on the "
              f"plane through A = {_vec(a)}, B = {_vec(b)}, C = {_vec(c)} (at plane coordinates (0, 0), (1, 0), "
              f"(0, 1)), window s in [{lo[0]:g}, {hi[0]:g}], t in [{lo[1]:g}, {hi[1]:g}]:")
        print(f"  {len(sl)} regions in {sl.stats['seconds']:.2f} s; areas sum to {area:.12g} (window {window_area:.12g}); "
              f"codes at the interior points match: {codes_ok}")
        what = "argmax of the outputs changes" if output is None else "the output is zero"
        print(f"  decision boundary (where {what}): {len(boundary)} segments")
        if args.out is not None:
            print(f"  figure: {args.out}")
        print(f"checks: {'OK' if ok else 'FAILED'}")
    return EXIT_OK if ok else EXIT_FAILED


# -------------------------------------------------------------------------------------------------- segment
def _segment(args: argparse.Namespace) -> int:
    import maso

    pts = _points("segment", [("--from", args.x0), ("--to", args.x1)])
    loaded, shape = _load("segment", args, pts)
    d = math.prod(shape)
    x0, x1 = (np.broadcast_to(p, (d,)).astype(np.float64) if p.ndim == 0 else p.reshape(-1) for _, p in pts)
    if np.array_equal(x0, x1):
        raise _UsageError("maso segment: error: --from and --to are the same point; a segment needs two.")
    net = _network("segment", loaded, shape)
    sc = maso.segment_crossings(net, x0.reshape(net.input_shape), x1.reshape(net.input_shape))
    certified = len(sc.uncertified) == 0
    if args.json:
        _emit_json({
            "command": "segment",
            "network": _model_fields(loaded, net, shape),
            "from": x0, "to": x1, "length": sc.length,
            "n_crossings": len(sc.t), "n_pieces": sc.n_pieces,
            "t": sc.t, "points": sc.points(),
            "codes": sc.codes.tolist(),
            "flips": [u.tolist() for u in sc.units],
            "uncertified": sc.uncertified.tolist(), "certified": certified,
        })
    else:
        print(f"segment of {loaded.describe()['class']} from {args.model} ({net.n_units} units, input {shape}) from "
              f"{_vec(x0)} to {_vec(x1)} (length {sc.length:.6g}): {sc.n_pieces} linear pieces, the code changes at "
              f"{len(sc.t)} point{'s' if len(sc.t) != 1 else ''}")
        for i, (t, u) in enumerate(zip(sc.t, sc.units)):
            if i == 50 and len(sc.t) > 60:
                print(f"  ... {len(sc.t) - 50} more (all of them with --json)")
                break
            print(f"  t = {t:.12g}: {len(u)} unit{'s' if len(u) != 1 else ''} flip ({', '.join(map(str, u[:8]))}"
                  f"{', ...' if len(u) > 8 else ''})")
        print(f"certificate: {'OK' if certified else f'FAILED: {len(sc.uncertified)} pieces uncertified'}")
    return EXIT_OK if certified else EXIT_FAILED


def _fields(report: Any) -> dict[str, Any]:
    """The certificate's fields (whatever the report holds), with its verdict."""
    import dataclasses

    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        fields = dataclasses.asdict(report)
    else:
        fields = dict(vars(report))
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


_MODEL_HELP = """\
model files (--model FILE):
  torch.save(model, FILE)   a whole nn.Module. This is a pickle: loading it runs
                            code from the file, so only open files you trust. Its
                            class must be importable here.
  torch.jit.save(m, FILE)   TorchScript. maso.from_torch cannot read TorchScript,
                            so maso rebuilds the Python module when it is a chain
                            of torch.nn / maso.nn layers (nn.Sequential, nested or
                            not, or a module whose forward calls its submodules one
                            after the other) and checks it against the TorchScript
                            one. Layer settings come from the attributes that
                            torch.jit.script keeps, or from the constants of a
                            traced layer's operation (stride, padding, slopes,
                            pooling sizes...); what neither keeps (a traced
                            convolution's reflection padding) is refused.
  torch.save(model.state_dict(), FILE) with --builder NAME --builder-args JSON
                            a state dict (read with weights_only=True: no code runs)
                            loaded into a maso.nn builder's module, e.g.
                            --builder mlp_module --builder-args '{"widths": [2, 8, 1]}'
                            (builders: mlp_module, inception_toy, inception_v1,
                            inception5_tail and maso.nn's module classes; "seed"
                            defaults to 0, "dtype" is a string such as "float64").
  A training checkpoint (a dict with "model", "state_dict" or
  "model_state_dict") is read as the module or state dict it holds.
  The model is put in eval mode. Its input shape (without the batch axis) comes
  from --input-shape (e.g. 1,28,28), else from the points, else from its first
  layer when that is nn.Linear. Points are given flat (or, as .npy files, in
  the input shape); the box of maso regions is in the flattened input space.

points: one argument each: comma-separated numbers without spaces (0.5,-1; a
  single number is a scalar, repeated for every coordinate) or a .npy file.
"""

_REGIONS_HELP = """\
Exact enumeration of the linear regions of a network in a box, certified
(maso.enumerate_regions and RegionSet.verify). Either a toy MLP (--widths, the
default) or your model (--model FILE).

--json prints one object: command; network (toy: widths, activation, seed;
--model: file, kind, builder, class, input_shape, input_dim, output_dim,
n_units); domain (lo, hi, dim; toy boxes [-B, B]^d also box); tol; n_regions;
slivers; seconds; stats; certificate (null with --no-verify, else the report's
fields with ok and summary); regions: [{code, interior_point, inradius}] (codes:
one int per unit, 1 = active for ReLU; points in the flattened input space).
Numbers that are not finite are null.
"""

_SLICE_HELP = """\
The exact 2-D slice of a model on the plane through three inputs A, B, C
(maso.Plane.through_points, maso.slice_regions): the regions it cuts the plane
into, as polygons, and the exact decision boundary. Plane coordinates (s, t)
put A at (0, 0), B at (1, 0) and C at (0, 1), i.e. x = A + s (B - A) + t (C - A).
The default window, s and t in [-0.5, 1.5], holds the triangle ABC with a margin
of half its sides on every side; --window LO HI sets another (LO = S,T or one
number for both; HI likewise).

--json prints one object: command; network (as maso regions --model); plane
(origin, u, v in the flattened input, through: A, B, C and their plane
coordinates A_st, B_st, C_st); window (lo, hi, area); n_regions; area (sum of
the region areas); method; stats; checks (area_sum, window_area, areas_ok,
codes_ok: the code at each interior point, recomputed, is the region's; ok);
regions: [{code, polygon: [[s, t], ...] counter-clockwise, area,
interior_point: [s, t]}]; decision_boundary (output: null where the argmax of
several outputs changes, 0 for the zero set of a single output; segments:
[[[s, t], [s, t]], ...]; n_segments); figure (the --out file, absolute, or null). Exit
code 3 when a check fails.
"""

_SEGMENT_HELP = """\
Where the code of a model changes along the segment from X0 to X1
(maso.segment_crossings): exact crossings, certified against forward passes.
x(t) = X0 + t (X1 - X0), t in [0, 1].

--json prints one object: command; network (as maso regions --model); from; to;
length; n_crossings; n_pieces (= n_crossings + 1); t (the crossing parameters,
increasing); points (the crossings in the flattened input); codes (n_pieces
rows, the code on each piece in order); flips (for each crossing, the units
whose code changes there); uncertified (pieces the certificate could not
confirm); certified. Exit code 3 when a piece is uncertified.
"""


def _model_args(p: argparse.ArgumentParser, required: bool, group: Any = None) -> None:
    (group or p).add_argument("--model", required=required, default=None, metavar="FILE",
                              help="the model file (see 'model files' below; a pickle runs code: trusted files only)")
    p.add_argument("--builder", default=None, metavar="NAME",
                   help="for a state dict FILE: the maso.nn builder of its module (e.g. mlp_module)")
    p.add_argument("--builder-args", default=None, metavar="JSON",
                   help="keyword arguments of --builder as a JSON object, e.g. '{\"widths\": [2, 8, 1]}'")
    p.add_argument("--input-shape", default=None, metavar="SHAPE",
                   help="the model's input shape without the batch axis, e.g. 1,28,28 (default: from the points)")


def _progress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")


def _parser() -> _Parser:
    import maso

    parser = _Parser(prog="maso", description="The spline view of deep networks: exact regions, codes and affine maps\n"
                     "of piecewise-linear networks (a toy one, or yours with --model FILE).", epilog=_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"maso {maso.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    seed = _int_in(0, _MAX_SEED)
    raw = argparse.RawDescriptionHelpFormatter
    demo = sub.add_parser("demo", help="codes, regions and affine maps of an embedded toy network, with a figure",
                          description="The codes, regions and affine maps of an embedded toy network with 2 inputs "
                                      "and 2 outputs, checked; writes a figure of its regions with the exact "
                                      "decision boundary (partition.png, needs matplotlib) and the regions as JSON "
                                      "(regions.json) into --out.", epilog=_EPILOG, formatter_class=raw)
    demo.add_argument("--seed", type=seed, default=0, help="seed of the toy network and points (default 0)")
    demo.add_argument("--hidden", type=_int_in(1, 1000), nargs="+", default=[8, 8], help="hidden widths (default 8 8)")
    demo.add_argument("--points", type=_int_in(0, _MAX_POINTS), default=3,
                      help="number of inputs to show (default 3; 0 shows none)")
    demo.add_argument("--width", type=_int_in(2, _MAX_MAP_WIDTH), default=64,
                      help="width of the character map (default 64)")
    demo.add_argument("--out", default="maso-demo", metavar="DIR",
                      help="folder for partition.png and regions.json (default ./maso-demo; created if missing)")
    reg = sub.add_parser("regions", help="exact enumeration of the regions of a toy MLP or of --model FILE in a box, "
                         "certified", description=_REGIONS_HELP, epilog=_MODEL_HELP + "\n" + _EPILOG,
                         formatter_class=raw)
    source = reg.add_mutually_exclusive_group()
    source.add_argument("--widths", type=_int_in(1, 10**9), nargs="+", default=[3, 8, 8, 1],
                        help="the toy MLP: [d_in, hidden..., d_out] (default 3 8 8 1)")
    _model_args(reg, False, source)
    reg.add_argument("--seed", type=seed, default=0,
                     help="seed of the toy network and of the certificate's random points (default 0)")
    reg.add_argument("--activation", default=None, choices=["relu", "leaky_relu", "abs", "maxout"],
                     help="unit of the toy network (default relu)")
    reg.add_argument("--pieces", type=_int_in(2, 64), default=None, help="pieces of a maxout unit (default 2)")
    reg.add_argument("--box", nargs="+", default=["1"], metavar=("B|LO", "HI"),
                     help="the box: B for [-B, B]^d (default 1), or LO HI (points; a number repeats for every "
                          "coordinate), e.g. --box -1,0 1,2")
    reg.add_argument("--tol", type=_positive_float(), default=1e-9,
                     help="sliver tolerance in input units (default 1e-9)")
    reg.add_argument("--workers", type=_int_in(1, 4096), default=1, help="worker processes (default 1)")
    reg.add_argument("--checkpoint", default=None, help="file to record finished tasks in (resumable)")
    reg.add_argument("--max-memory", type=_memory_arg, default="auto", metavar="BYTES",
                     help="stop with an error before the cells would take more memory than this: a size such as 2e9 "
                          "or 8G, 'auto' (half of what this machine or its limits leave; default) or 'none'")
    _progress_args(reg)
    reg.add_argument("--no-verify", dest="verify", action="store_false", help="skip the certificate")
    reg.add_argument("--verify-points", type=_int_in(1, _MAX_VERIFY_POINTS), default=1000,
                     help="random points of the certificate's coverage check (default 1000)")
    reg.add_argument("--json", action="store_true",
                     help="print one JSON object (counts, stats, certificate, each region's code and interior point; "
                          "schema above)")
    sl = sub.add_parser("slice", help="the exact 2-D slice of --model FILE through three points, with its decision "
                        "boundary", description=_SLICE_HELP, epilog=_MODEL_HELP + "\n" + _EPILOG, formatter_class=raw)
    _model_args(sl, True)
    sl.add_argument("--through", nargs=3, required=True, metavar=("A", "B", "C"),
                    help="three points of the input space that span the plane")
    sl.add_argument("--window", nargs=2, default=None, metavar=("LO", "HI"),
                    help="the rectangle in plane coordinates: LO = S,T (or one number for both), HI likewise "
                         "(default -0.5 1.5)")
    sl.add_argument("--out", default=None, metavar="FIG",
                    help="also draw the slice into this file (PNG, SVG, PDF by its suffix; needs matplotlib)")
    sl.add_argument("--color", default="auto", choices=["auto", "code", "argmax", "output", "none"],
                    help="colours of the figure's regions: auto (argmax for several outputs, else code), code (one "
                         "colour per code), argmax (the winning output), output (the value of output 0), none")
    sl.add_argument("--tiles", type=_int_in(1, 10_000), default=1, metavar="N",
                    help="slice the window as N x N tiles and join them (bounds memory by one tile's; default 1)")
    sl.add_argument("--checkpoint", default=None, metavar="FILE",
                    help="file to record finished tiles in: an interrupted slice resumes when run again")
    _progress_args(sl)
    sl.add_argument("--json", action="store_true", help="print one JSON object (schema above)")
    sg = sub.add_parser("segment", help="where the code of --model FILE changes along a segment, exact",
                        description=_SEGMENT_HELP, epilog=_MODEL_HELP + "\n" + _EPILOG, formatter_class=raw)
    _model_args(sg, True)
    sg.add_argument("--from", dest="x0", required=True, metavar="X0", help="the start of the segment (a point)")
    sg.add_argument("--to", dest="x1", required=True, metavar="X1", help="its end (a point)")
    sg.add_argument("--json", action="store_true", help="print one JSON object (schema above)")
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


def load_experiments() -> ModuleType:
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
    assert spec is not None and spec.loader is not None  # a spec for an existing .py file, with its file loader
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
    if args.command == "slice":
        return _slice(args)
    if args.command == "segment":
        return _segment(args)
    return _regions(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``maso`` command; returns its exit code (see ``maso --help``).

    A user mistake (bad arguments, or a typed maso error such as a checkpoint of another run) is one line on
    stderr and exit code 2; a failed certificate is exit code 3; Ctrl-C is one line and 130; a closed output
    pipe is quiet (141). An unexpected error is a bug: its traceback is shown and the exit code is 1.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     main(["demo", "--points", "1", "--width", "20", "--out", folder])  # doctest: +ELLIPSIS
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
