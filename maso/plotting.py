"""Figures of slices and paths (matplotlib, an optional dependency: ``pip install "maso[plot]"``)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maso.errors import MasoError, ParameterError

if TYPE_CHECKING:  # matplotlib is optional and slow to import: only the type checker reads these
    from types import ModuleType

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from maso.slices import SliceRegions
    from maso.slices._paths import SegmentCrossings

__all__ = ["code_colors", "plot_crossings", "plot_slice"]


def _require() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MasoError('Plotting needs matplotlib: pip install "maso[plot]".') from e


def _pyplot() -> ModuleType:
    _require()
    import matplotlib.pyplot as plt  # picks a non-interactive backend by itself when there is no display

    return plt


def code_colors(codes: np.ndarray, *, saturation: float = 0.55, value: float = 0.95) -> np.ndarray:
    """A stable colour per code row: the hue comes from a hash of the code's bytes, so a region keeps its colour
    across runs, slices and machines.

    Parameters
    ----------
    codes : ndarray of shape (n, n_units)

    Returns
    -------
    ndarray of shape (n, 3)
        RGB in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from maso.plotting import code_colors
    >>> c = code_colors(np.array([[0, 1], [1, 0], [0, 1]], dtype=np.uint8))
    >>> c.shape, bool(np.all(c[0] == c[2])), bool(np.any(c[0] != c[1]))
    ((3, 3), True, True)
    """
    from matplotlib.colors import hsv_to_rgb

    codes = np.ascontiguousarray(codes)
    hues = np.array([int.from_bytes(hashlib.blake2b(c.tobytes(), digest_size=4).digest(), "little") / 2**32
                     for c in codes]).reshape(-1)
    hsv = np.stack([hues, np.full_like(hues, saturation), np.full_like(hues, value)], axis=1)
    return hsv_to_rgb(hsv) if len(hsv) else np.zeros((0, 3))


def _region_colors(sl: SliceRegions) -> np.ndarray:
    """`code_colors` of a slice's full code rows, formed a block at a time from its compact codes (a region's
    colour is its whole code's, as elsewhere, without holding every region's full row at once)."""
    shared, columns, varying = sl.shared_code, sl.code_columns, sl.varying_codes
    step = max(1, (1 << 23) // max(1, shared.size))  # 8 MB of code bytes per block
    out = [np.zeros((0, 3))]
    for s in range(0, len(sl), step):
        rows = np.tile(shared, (len(varying[s:s + step]), 1))
        rows[:, columns] = varying[s:s + step]
        out.append(code_colors(rows))
    return np.concatenate(out)


def _figure(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """A new pyplot figure and its axes, or ``ax`` and the figure that holds it (the whole figure, for an ``ax``
    inside a subfigure: the one that can be saved)."""
    if ax is None:
        return _pyplot().subplots(figsize=figsize)
    fig = ax.get_figure(root=True)
    assert fig is not None  # an Axes is made in a figure
    return fig, ax


def _save(fig: Figure, path: str | Path | None) -> None:
    if path is not None:
        fig.savefig(path, bbox_inches="tight", dpi=150)


def _png(draw: Callable[..., Any], figsize: tuple[float, float]) -> bytes | None:
    """PNG bytes of ``draw(ax=...)`` on a figure of its own, rendered by Agg without pyplot (for ``_repr_png_``).

    The figure never enters pyplot's list of open figures, so a notebook's inline backend neither shows it a
    second time nor keeps it alive; ``None`` without matplotlib (IPython then shows the text repr).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    fig = Figure(figsize=figsize)
    draw(ax=fig.add_subplot())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)  # a png savefig picks the Agg canvas itself
    return buf.getvalue()


def plot_slice(
    slice_regions: SliceRegions,
    *,
    color: str = "code",
    output: int | None = None,
    edges: bool = True,
    decision_boundary: bool = True,
    points: Any = None,
    labels: Sequence[Any] | None = None,
    ax: Axes | None = None,
    path: str | Path | None = None,
    cmap: str = "viridis",
) -> Figure:
    """Draw a [`SliceRegions`][maso.slices.SliceRegions]: regions, their edges, the decision boundary and data points.

    Parameters
    ----------
    slice_regions : SliceRegions
    color : {"code", "output", "argmax", "none"}
        ``"code"``: a stable hash colour per region (see [`code_colors`][maso.plotting.code_colors]);
        ``"output"``: the value of ``output`` (default 0) at each region's interior point; ``"argmax"``: the
        winning class, exactly: regions that the decision boundary crosses are split along it and each piece
        gets its own class (see [`SliceRegions.argmax_cells`][maso.slices.SliceRegions.argmax_cells]; with
        ``output``, the sign of that output).
    output : int, optional
    edges, decision_boundary : bool
        Draw region edges (thin) and the exact decision boundary (thick; see
        [`SliceRegions.decision_boundary`][maso.slices.SliceRegions.decision_boundary]). With ``color="argmax"`` the
        boundary drawn is the one between the coloured pieces.
    points : array, optional
        Points to overlay: plane coordinates ``(n, 2)``, or inputs ``(n, *input_shape)`` that are projected onto
        the plane.
    labels : sequence, optional
        Text labels of the points.
    ax : matplotlib Axes, optional
        Draw there (no pyplot figure is created then).
    path : str or Path, optional
        Also save the figure there (PNG, SVG, PDF... by the suffix).
    cmap : str
        Colour map of the ``"output"`` and ``"argmax"`` colours.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (with ``ax``: the figure that holds it). It stays open: a notebook shows it inline when the cell ends, ``plt.show()``
        elsewhere. As the last expression of a notebook cell, IPython displays the returned figure as well, so
        it shows twice, as for any function returning a pyplot figure: end the line with ``;`` or assign the
        result. Evaluating the slice itself (``sl``) shows this default picture once, drawn outside pyplot.

    Examples
    --------
    >>> net = maso.mlp([2, 8, 8, 3], seed=0)
    >>> fig = maso.slice_regions(net, lo=(-2, -2), hi=(2, 2)).plot(color="argmax")
    >>> len(fig.axes)
    1
    """
    _require()
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection, PolyCollection

    sl = slice_regions
    if color not in ("code", "output", "argmax", "none"):
        raise ParameterError(f"color must be 'code', 'output', 'argmax' or 'none'. Got {color!r}.")
    net = sl.network
    if output is not None and not (isinstance(output, (int, np.integer)) and not isinstance(output, bool)
                                   and 0 <= output < net.output_dim):
        raise ParameterError(f"output must be an int in [0, {net.output_dim}). Got {output!r}.")
    fig, ax = _figure(ax, (6, 6))
    polys = sl.polygons()
    line = {"colors": "k", "linewidths": 0.3} if edges else None
    boundary = None
    if color == "argmax":
        cells = sl.argmax_cells(output)
        shade = colormaps[cmap](cells.labels / max(1.0, float(cells.n_classes - 1)))[:, :3]
        # each piece edged in its own colour: no hairline seams between pieces of one class
        ax.add_collection(PolyCollection(cells.polygons(), facecolors=shade, edgecolors=shade, linewidths=0.2))
        if line is not None:
            ax.add_collection(PolyCollection(polys, facecolors="none", edgecolors="k", linewidths=0.3))
        boundary = cells.boundary
    else:
        if color == "code":
            face = _region_colors(sl)
        elif color == "output":
            v = np.asarray(net(sl.interior_points)).reshape(len(sl), -1)[:, 0 if output is None else int(output)]
            face = colormaps[cmap]((v - v.min()) / (np.ptp(v) or 1.0))[:, :3]
        else:
            face = np.ones((len(sl), 3))
        ax.add_collection(PolyCollection(polys, facecolors=face, edgecolors="k" if edges else "none",
                                         linewidths=0.3 if edges else 0.0))
    if decision_boundary:
        segs = boundary if boundary is not None else sl.decision_boundary(output if color == "output" else None)
        if len(segs):
            ax.add_collection(LineCollection(list(segs), colors="k", linewidths=2.0))  # (n, 2, 2): n segments
    if points is not None:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            pts = sl.plane.coordinates(pts)
            pts = np.atleast_2d(pts)
        ax.scatter(pts[:, 0], pts[:, 1], c="w", edgecolors="k", s=40, zorder=3)
        for p, lab in zip(pts, labels or []):
            ax.annotate(str(lab), p, xytext=(4, 4), textcoords="offset points")
    ax.set_xlim(sl.lo[0], sl.hi[0])
    ax.set_ylim(sl.lo[1], sl.hi[1])
    ax.set_aspect("equal")
    ax.set_title(f"{len(sl)} regions")
    _save(fig, path)
    return fig


def plot_crossings(
    crossings: SegmentCrossings | list[SegmentCrossings] | tuple[SegmentCrossings, ...], *, ax: Axes | None = None,
    path: str | Path | None = None, bins: int = 50,
) -> Figure:
    """Draw where the code changes along paths: one row of ticks per path (marker size = units flipping) and,
    for several paths, a histogram of the crossing density along the path parameter.

    Parameters
    ----------
    crossings : SegmentCrossings, or a list or tuple of them
    ax : matplotlib Axes, optional
        Draw there (no pyplot figure is created then).
    path : str or Path, optional
        Also save the figure there.
    bins : int
        Histogram bins for several paths.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (with ``ax``: the figure that holds it).

    Examples
    --------
    >>> net = maso.mlp([2, 8, 8, 1], seed=0)
    >>> sc = maso.segment_crossings(net, np.array([-2.0, -2.0]), np.array([2.0, 2.0]))
    >>> fig = maso.plotting.plot_crossings(sc)
    >>> len(fig.axes)
    1
    """
    _require()
    many = isinstance(crossings, (list, tuple))
    items = list(crossings) if isinstance(crossings, (list, tuple)) else [crossings]
    fig, ax = _figure(ax, (7, 2.5 if len(items) < 4 else 4))
    if len(items) <= 20:
        for row, sc in enumerate(items):
            ax.hlines(row, sc.lo, sc.hi, colors="0.7", linewidth=1)
            ax.scatter(sc.t, np.full(len(sc.t), row), s=8 + 6 * sc.hamming(), marker="|", c="k")
        ax.set_yticks(range(len(items)))
        ax.set_ylabel("path")
        ax.set_title("code changes along the path" + ("s" if many else ""))
    else:
        allt = np.concatenate([(sc.t - sc.lo) / (sc.hi - sc.lo) for sc in items])
        ax.hist(allt, bins=bins, weights=np.full(len(allt), bins / len(items)), color="0.3")
        ax.set_ylabel("crossings per unit t, per path")
        ax.set_title(f"crossing density over {len(items)} paths")
    ax.set_xlabel("t")
    _save(fig, path)
    return fig
