"""Exact 1-D paths: where the code changes along segments between inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maso.domain import Box
from maso.errors import ShapeError
from maso.network import Network

__all__ = ["SegmentCrossings", "segment_crossings"]


@dataclass(frozen=True, eq=False)
class SegmentCrossings:
    """The exact pieces of a network along the segment ``x0 + t (x1 - x0)``, ``t`` in ``[0, 1]``.

    Attributes
    ----------
    t : ndarray of shape (k,)
        Sorted parameters in ``(0, 1)`` where the code changes.
    units : tuple of ndarray
        ``units[i]``: the code columns that change at ``t[i]``.
    codes : ndarray of shape (k + 1, n_units)
        The code on each piece, in order.
    """

    t: np.ndarray
    units: tuple[np.ndarray, ...]
    codes: np.ndarray

    @property
    def n_pieces(self) -> int:
        """Number of linear pieces along the segment."""
        return len(self.t) + 1


def segment_crossings(net: Network, x0: Any, x1: Any, *, tol: float = 1e-12) -> Any:
    """Where the spline code changes along the segment from ``x0`` to ``x1``: exact, not sampled.

    The network is restricted to the line (:meth:`Network.restrict`, so the cost is that of a 1-D input) and its
    pieces on ``[0, 1]`` are enumerated exactly (:func:`maso.enumerate_regions`); crossings are the ends of the
    pieces.

    Parameters
    ----------
    net : Network
    x0, x1 : array of shape input_shape, or (n, *input_shape) for n segments
    tol : float, default=1e-12
        Pieces shorter than ``tol`` (in units of ``t``) are not resolved (see the enumeration's sliver policy).

    Returns
    -------
    SegmentCrossings, or a list of them for a batch

    Examples
    --------
    >>> net = maso.mlp([2, 3, 1], seed=0)
    >>> sc = maso.segment_crossings(net, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    >>> sc.n_pieces == len(sc.t) + 1 and bool(np.all(np.diff(sc.t) > 0))
    True
    """
    from maso.regions import enumerate_regions

    a = np.asarray(x0, dtype=np.float64)
    b = np.asarray(x1, dtype=np.float64)
    shape = net.input_shape
    single = a.shape == shape
    if single:
        a, b = a[None], b[None]
    if a.shape != b.shape or a.shape[1:] != shape:
        raise ShapeError(f"segment_crossings needs x0 and x1 of shape {shape} or (n, *{shape}), the same for both. "
                         f"Got {np.shape(x0)} and {np.shape(x1)}.")
    out = []
    for p, q in zip(a.reshape(len(a), -1), b.reshape(len(b), -1)):
        if np.array_equal(p, q):
            out.append(SegmentCrossings(np.zeros(0), (), np.asarray(net.codes(p.reshape(shape)))[None]))
            continue
        line = net.restrict(p, (q - p)[None])
        regions = enumerate_regions(line, Box([0.0], [1.0]), tol=tol, method="vertices", progress=False)
        order = np.argsort([r.interior_point[0] for r in regions])
        pieces = [regions[i] for i in order]
        ts = np.array([float(np.max(r.vertices())) for r in pieces[:-1]])
        codes = np.stack([r.code for r in pieces])
        units = tuple(np.nonzero(codes[i] != codes[i + 1])[0] for i in range(len(pieces) - 1))
        out.append(SegmentCrossings(ts, units, codes))
    return out[0] if single else out
