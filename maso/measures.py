"""Measures on spline codes: code distances, polytope density along paths, local complexity.

* [`hamming`][maso.measures.hamming]: units whose hard code differs.
* [`soft_distance`][maso.measures.soft_distance]: ``sum_k TV(t_k, t'_k)`` between soft codes; for two-piece
  units ``sum_k |p_k - q_k|``. It is the expected Hamming distance when both codes are drawn with shared
  randomness (one uniform per unit, or the maximal coupling for more pieces), is 0 iff the codes are equal and
  tends to [`hamming`][maso.measures.hamming] as the temperature goes to 0.
  [`independent_mismatch`][maso.measures.independent_mismatch] is the same expectation under independent draws
  (not 0 for equal soft codes: it measures their uncertainty too).
* [`path_density`][maso.measures.path_density]: code changes per unit length along a segment: exact for
  piecewise-linear networks (the 1-D walk of [`maso.segment_crossings`][]), or a sampled estimate (summed step
  distances on a grid refined until it stops changing) for soft codes and smooth networks.
* [`local_complexity`][maso.measures.local_complexity]: Humayun, Balestriero & Baraniuk (2024): the number of
  units whose code is not the same on all vertices ``x +- r u_i`` of a random cross-polytope around ``x``.

Examples
--------
>>> import numpy as np, maso
>>> net = maso.mlp([2, 8, 8, 1], seed=0)
>>> pd = maso.measures.path_density(net, np.array([-1.0, 0.0]), np.array([1.0, 0.5]))
>>> pd.exact, pd.total == int(pd.distances.sum())
(True, True)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from maso._validation import real_vector, sealed
from maso.core.network import Network
from maso.errors import NumericalWarning, ParameterError, ShapeError

__all__ = [
    "LocalComplexity",
    "PathDensity",
    "hamming",
    "independent_mismatch",
    "local_complexity",
    "path_density",
    "soft_distance",
]


def _pair(a: Any, b: Any, what: str, min_ndim: int) -> tuple[np.ndarray, np.ndarray]:
    a = real_vector(a, "a", what)
    b = real_vector(b, "b", what)
    if a.ndim < min_ndim:
        raise ShapeError(f"{what} needs arrays with at least {min_ndim} axes; got shape {a.shape}.")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(f"{what} needs arrays of matching shapes; got {a.shape} and {b.shape}.") from None
    return a, b


def hamming(a: Any, b: Any) -> np.ndarray:
    """Number of units whose hard code differs: ``(..., n_units)`` pairs to ``(...)``.

    Examples
    --------
    >>> maso.measures.hamming([1, 0, 2], [1, 1, 0])
    array(2)
    """
    a, b = _pair(a, b, "hamming", 1)
    return np.asarray((a != b).sum(axis=-1))


def soft_distance(p: Any, q: Any) -> np.ndarray:
    """Expected Hamming distance under shared randomness: ``sum_k TV(p_k, q_k) = 1/2 sum_k sum_r |p_kr - q_kr|``.

    Parameters
    ----------
    p, q : arrays of shape (..., n_units, R)
        Soft codes ([`maso.Network.soft_codes`][]); rows sum to 1.

    Examples
    --------
    >>> p = np.array([[0.9, 0.1], [0.5, 0.5]])
    >>> q = np.array([[0.2, 0.8], [0.5, 0.5]])
    >>> float(maso.measures.soft_distance(p, q))
    0.7
    """
    p, q = _pair(p, q, "soft_distance", 2)
    return np.asarray(0.5 * np.abs(p - q).sum(axis=(-1, -2)))


def independent_mismatch(p: Any, q: Any) -> np.ndarray:
    """Expected Hamming distance when the two codes are drawn independently: ``sum_k (1 - sum_r p_kr q_kr)``.

    Examples
    --------
    >>> p = np.array([[0.5, 0.5]])
    >>> float(maso.measures.independent_mismatch(p, p))       # 2 p (1 - p) for one unit
    0.5
    """
    p, q = _pair(p, q, "independent_mismatch", 2)
    return np.asarray((1.0 - (p * q).sum(axis=-1)).sum(axis=-1))


@dataclass(frozen=True, eq=False)
class PathDensity:
    """Code changes along a segment ``x0 -> x1``.

    Attributes
    ----------
    t : ndarray
        Exact: the crossing positions in ``(0, 1)``. Sampled: the grid ``0 = t_0 < ... < t_N = 1``.
    distances : ndarray
        Exact: units flipping at each crossing. Sampled: the code distance between consecutive grid points.
    total : float
        ``distances.sum()``: total code change along the path.
    length : float
        Euclidean length ``||x1 - x0||``.
    exact : bool
        True when computed by the exact walk.
    converged : bool
        Sampled: the total stopped changing under grid doubling (within ``rtol``); exact: True.
    history : tuple of (int, float)
        Sampled: ``(n_steps, total)`` for each grid tried.
    """

    t: np.ndarray
    distances: np.ndarray
    total: float
    length: float
    exact: bool
    converged: bool
    history: tuple[tuple[int, float], ...]

    @property
    def density(self) -> float:
        """Total code change per unit length (0 for a zero-length path)."""
        return self.total / self.length if self.length > 0 else 0.0


def path_density(
    net: Network, x0: Any, x1: Any, *, codes: str = "hard", method: str = "auto", n_steps: int = 200,
    rtol: float = 1e-3, max_steps: int = 1 << 16,
) -> PathDensity | list[PathDensity]:
    """Polytope density along the segment ``x0 -> x1``: total code change and change per unit length.

    Parameters
    ----------
    net : Network
    x0, x1 : array of shape input_shape, or (n, *input_shape) for n paths
    codes : {"hard", "soft"}, default="hard"
        Hard codes count units that flip ([`hamming`][maso.measures.hamming]); soft codes sum
        [`soft_distance`][maso.measures.soft_distance] between steps.
    method : {"auto", "exact", "sampled"}, default="auto"
        ``"exact"`` walks the pieces (hard codes of a piecewise-linear network only); ``"auto"`` uses it when it
        applies. ``"sampled"`` evaluates codes on ``n_steps + 1`` evenly spaced points and doubles the grid until
        the summed step distance changes by at most ``rtol`` relatively (it never decreases under refinement
        and, for hard codes, counts net flips per step, so coarse grids undercount).
    n_steps : int, default=200
        First grid of the sampled estimate.
    rtol : float, default=1e-3
        Convergence threshold of the sampled estimate.
    max_steps : int, default=65536
        Finest grid tried; past it the result has ``converged=False`` and a
        [`NumericalWarning`][maso.errors.NumericalWarning] is issued.

    Returns
    -------
    PathDensity, or a list of them for a batch (the exact walk runs once for the whole batch)

    Examples
    --------
    >>> net = maso.mlp([2, 6, 6, 1], seed=1)
    >>> a, b = np.array([-1.0, -1.0]), np.array([1.0, 0.5])
    >>> exact = maso.measures.path_density(net, a, b)
    >>> sampled = maso.measures.path_density(net, a, b, method="sampled")
    >>> sampled.converged, sampled.total == exact.total
    (True, True)
    """
    if not isinstance(net, Network):
        raise ShapeError(f"path_density needs a maso.Network; got {type(net).__name__}.")
    if codes not in ("hard", "soft"):
        raise ParameterError(f"codes must be 'hard' or 'soft'; got {codes!r}.")
    if method not in ("auto", "exact", "sampled"):
        raise ParameterError(f"method must be 'auto', 'exact' or 'sampled'; got {method!r}.")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or not 1 <= n_steps <= max_steps:
        raise ParameterError(f"n_steps must be an integer in [1, max_steps={max_steps}]; got {n_steps!r}.")
    if not (isinstance(rtol, (int, float)) and 0 <= rtol < 1):
        raise ParameterError(f"rtol must be a number in [0, 1); got {rtol!r}.")
    a = real_vector(x0, "x0", "path_density")
    b = real_vector(x1, "x1", "path_density")
    single = a.shape == net.input_shape
    if a.shape != b.shape or a.shape[int(not single):] != net.input_shape or a.ndim > len(net.input_shape) + 1:
        raise ShapeError(f"path_density needs two points of shape {net.input_shape}, or two batches (n, "
                         f"*{net.input_shape}); got {a.shape} and {b.shape}.")
    can_walk = codes == "hard" and net.is_piecewise_linear
    if method == "exact" and not can_walk:
        raise ParameterError("method='exact' needs hard codes of a piecewise-linear network; use "
                             "method='sampled' for soft codes or smooth networks.")
    A, B = (a[None], b[None]) if single else (a, b)
    if len(A) == 0:
        return []
    lengths = np.linalg.norm((B - A).reshape(len(A), net.input_dim), axis=1)
    if method != "sampled" and can_walk:
        from maso.slices._paths import segment_crossings

        out = []
        for sc, length in zip(segment_crossings(net, A, B), lengths):  # one batched walk for all paths
            dist = sc.hamming().astype(np.float64)
            out.append(PathDensity(sealed(sc.t.copy()), sealed(dist), float(dist.sum()), float(length), True,
                                   True, ()))
    else:
        out = [_sampled_density(net, pa, pb, float(length), codes, int(n_steps), float(rtol), int(max_steps))
               for pa, pb, length in zip(A, B, lengths)]
    return out[0] if single else out


def _sampled_density(net: Network, a: np.ndarray, b: np.ndarray, length: float, codes: str, n_steps: int,
                     rtol: float, max_steps: int) -> PathDensity:
    history: list[tuple[int, float]] = []
    n = int(n_steps)
    prev = None
    while True:
        t = np.linspace(0.0, 1.0, n + 1)
        pts = a[None] + t.reshape(-1, *([1] * a.ndim)) * (b - a)[None]
        if codes == "hard":
            c = np.asarray(net.codes(pts))
            dist = (c[1:] != c[:-1]).sum(axis=1).astype(np.float64)
        else:
            s = np.asarray(net.soft_codes(pts))
            dist = 0.5 * np.abs(s[1:] - s[:-1]).sum(axis=(1, 2))
        total = float(dist.sum())
        history.append((n, total))
        if prev is not None and abs(total - prev) <= rtol * max(abs(total), 1e-300):
            return PathDensity(sealed(t), sealed(dist), total, length, False, True, tuple(history))
        if 2 * n > max_steps:
            warnings.warn(f"path_density: the sampled total did not converge (last grids {history[-2:]}); "
                          "increase max_steps or use the exact walk for piecewise-linear networks.",
                          NumericalWarning, stacklevel=3)
            return PathDensity(sealed(t), sealed(dist), total, length, False, False, tuple(history))
        prev = total
        n *= 2


@dataclass(frozen=True, eq=False)
class LocalComplexity:
    """Local complexity around points (Humayun, Balestriero & Baraniuk, 2024).

    Attributes
    ----------
    total : ndarray of shape (n,)
        Units (all layers) whose code is not the same on every vertex of the neighbourhood.
    by_layer : dict of str to ndarray of shape (n,)
        The same count per spline layer.
    fraction : dict of str to ndarray of shape (n,)
        ``by_layer`` divided by the layer's number of units.
    radius : float
    directions : ndarray of shape (k, input_dim)
        The orthonormal frame; the vertices are ``x +- radius * directions[i]``.
    """

    total: np.ndarray
    by_layer: dict[str, np.ndarray]
    fraction: dict[str, np.ndarray]
    radius: float
    directions: np.ndarray


def local_complexity(
    net: Network, x: Any, radius: float, *, n_directions: int | None = None, rng: Any = None,
    directions: Any = None, include_center: bool = False,
) -> LocalComplexity:
    """Units whose hard code changes inside a cross-polytope of radius ``radius`` around each ``x``.

    The neighbourhood is the convex hull of ``x +- radius * u_i`` for ``k`` random orthonormal directions
    ``u_i`` (one frame for all points); a unit counts if its code is not identical on all vertices (and on
    ``x`` itself with ``include_center``). For the first spline layer this is exact: a unit's hyperplane
    meets the cross-polytope iff its vertex signs differ. Deeper layers see the images of the vertices only,
    so bends inside the neighbourhood that do not show at its vertices are missed (an under-count, as in the
    published method). Codes of smooth networks are their hard codes (pre-activation > 0).

    Parameters
    ----------
    net : Network
    x : array of shape input_shape or (n, *input_shape)
    radius : float > 0
    n_directions : int, optional
        ``k`` (at most ``input_dim``); default ``min(20, input_dim)`` (40 vertices, the published default).
    rng : int or numpy.random.Generator, optional
        Seed for the random frame.
    directions : array of shape (k, input_dim), optional
        An explicit frame instead (rows orthonormalised here).
    include_center : bool, default=False

    Returns
    -------
    LocalComplexity

    Examples
    --------
    >>> net = maso.mlp([3, 16, 16, 1], seed=0)
    >>> lc = maso.measures.local_complexity(net, np.zeros((4, 3)), 0.1, rng=0)
    >>> lc.total.shape, sorted(lc.by_layer)
    ((4,), ['1', '3'])
    """
    if not isinstance(net, Network):
        raise ShapeError(f"local_complexity needs a maso.Network; got {type(net).__name__}.")
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.floating)) or not (
            math.isfinite(radius) and radius > 0):
        raise ParameterError(f"radius must be a finite number > 0; got {radius!r}.")
    d = net.input_dim
    X = np.asarray(x, dtype=np.float64)
    single = X.shape == net.input_shape
    if single:
        X = X[None]
    if X.shape[1:] != net.input_shape:
        raise ShapeError(f"local_complexity needs x of shape {net.input_shape} or (n, *{net.input_shape}); "
                         f"got {np.shape(x)}.")
    if directions is None:
        k = min(20, d) if n_directions is None else n_directions
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
            raise ParameterError(f"n_directions must be an integer in [1, input_dim={d}]; got {n_directions!r}.")
        g = np.random.default_rng(rng).standard_normal((d, int(k)))
        U = np.linalg.qr(g)[0].T
    else:
        U0 = np.asarray(directions, dtype=np.float64).reshape(-1, d) if np.size(directions) else None
        if U0 is None or U0.shape[0] > d or not np.all(np.isfinite(U0)):
            raise ShapeError(f"directions must be a finite array of shape (k, {d}) with 1 <= k <= {d}.")
        q, r = np.linalg.qr(U0.T)
        if np.min(np.abs(np.diag(r))) <= 1e-12 * max(1.0, float(np.abs(r).max())):
            raise ParameterError("directions are linearly dependent; give k independent directions.")
        U = (q * np.sign(np.diag(r))).T
    k = U.shape[0]
    flat = X.reshape(len(X), d)
    offsets = np.concatenate([U, -U]) * radius
    if include_center:
        offsets = np.concatenate([np.zeros((1, d)), offsets])
    V = (flat[:, None, :] + offsets[None]).reshape(-1, *net.input_shape)
    C = np.asarray(net.codes(V)).reshape(len(X), len(offsets), net.n_units)
    changes = (C != C[:, :1]).any(axis=1)  # (n, n_units)
    by_layer = {g.name: changes[:, g.columns].sum(axis=1) for g in net.units}
    fraction = {g.name: by_layer[g.name] / g.size for g in net.units}
    total = changes.sum(axis=1)
    return LocalComplexity(sealed(total), by_layer, fraction, float(radius), sealed(U))
