"""Bounds on the number of linear regions of ReLU networks, as exact integers.

``widths`` is ``(n_0, n_1, ..., n_L)``: the input dimension followed by the widths of the ``L`` hidden
(two-piece) layers. Output layers without a nonlinearity do not cut the input space and are left out.

* [`zaslavsky`][maso.bounds.zaslavsky]: ``n`` hyperplanes in general position in ``R^d`` make
  ``sum_{i<=d} C(n, i)`` regions.
* [`montufar2014_lower`][maso.bounds.montufar2014_lower]: a construction with
  ``prod_{l<L} floor(n_l / n_0)^{n_0} * sum_{j<=n_0} C(n_L, j)`` regions (needs every ``n_l >= n_0``).
* [`montufar2017_upper`][maso.bounds.montufar2017_upper]: ``prod_l sum_{j<=d_l} C(n_l, j)`` with
  ``d_l = min(n_0, ..., n_l)``.
* [`serra2018_upper`][maso.bounds.serra2018_upper]: ``sum over (j_1..j_L) in J of prod_l C(n_l, j_l)``,
  ``J = {0 <= j_l <= min(n_0, n_1 - j_1, ..., n_{l-1} - j_{l-1}, n_l)}``; tight for one layer.
* [`trivial_upper`][maso.bounds.trivial_upper]: ``2^N`` with ``N = n_1 + ... + n_L``.

They are ordered ``montufar2014_lower <= serra2018_upper <= montufar2017_upper <= trivial_upper``, and any
ReLU network with these widths has at most ``serra2018_upper`` regions.

Examples
--------
>>> from maso import bounds
>>> bounds.montufar2014_lower([2, 8, 8, 8]), bounds.serra2018_upper([2, 8, 8, 8])
(9472, 50653)
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Any

from maso.errors import ParameterError

__all__ = [
    "layer_widths",
    "montufar2014_lower",
    "montufar2017_upper",
    "serra2018_upper",
    "trivial_upper",
    "zaslavsky",
]


def _widths(widths: Sequence[int], caller: str) -> tuple[int, ...]:
    try:
        w = tuple(int(v) for v in widths)
        ok = len(w) >= 2 and all(int(v) == v for v in widths)
    except (TypeError, ValueError):
        ok = False
    if not ok or any(v < 1 for v in w):
        raise ParameterError(f"{caller} needs widths (n_0, n_1, ..., n_L): the input dimension and at least one "
                             f"hidden width, all positive integers. Got {widths!r}.")
    return w


def zaslavsky(n_hyperplanes: int, dim: int) -> int:
    """Regions of ``n_hyperplanes`` hyperplanes in general position in ``R^dim``: ``sum_{i<=dim} C(n, i)``.

    Examples
    --------
    >>> maso.bounds.zaslavsky(4, 2), maso.bounds.zaslavsky(5, 1)
    (11, 6)
    """
    if int(n_hyperplanes) != n_hyperplanes or n_hyperplanes < 0 or int(dim) != dim or dim < 0:
        raise ParameterError(f"zaslavsky needs non-negative integers; got n={n_hyperplanes!r}, dim={dim!r}.")
    return sum(comb(int(n_hyperplanes), i) for i in range(int(dim) + 1))


def montufar2014_lower(widths: Sequence[int]) -> int:
    """Montúfar et al. (2014) lower bound on the maximal number of regions (every ``n_l >= n_0``).

    Examples
    --------
    >>> maso.bounds.montufar2014_lower([2, 4, 4])
    44
    """
    w = _widths(widths, "montufar2014_lower")
    n0 = w[0]
    if any(n < n0 for n in w[1:]):
        raise ParameterError(f"montufar2014_lower holds for hidden widths >= the input dimension {n0}; got {w}.")
    out = 1
    for n in w[1:-1]:
        out *= (n // n0) ** n0
    return out * zaslavsky(w[-1], n0)


def montufar2017_upper(widths: Sequence[int]) -> int:
    """Montúfar (2017) upper bound ``prod_l sum_{j<=d_l} C(n_l, j)``, ``d_l = min(n_0..n_l)``.

    Examples
    --------
    >>> maso.bounds.montufar2017_upper([2, 4, 4])
    121
    """
    w = _widths(widths, "montufar2017_upper")
    out, d = 1, w[0]
    for n in w[1:]:
        d = min(d, n)
        out *= zaslavsky(n, d)
    return out


def serra2018_upper(widths: Sequence[int]) -> int:
    """Serra, Tjandraatmadja & Ramalingam (2018) upper bound (exact for a single layer).

    Computed by dynamic programming over the running minimum ``min(n_0, n_1 - j_1, ...)`` instead of the
    exponential sum over ``J``.

    Examples
    --------
    >>> maso.bounds.serra2018_upper([2, 4]), maso.bounds.serra2018_upper([2, 4, 4])
    (11, 121)
    """
    w = _widths(widths, "serra2018_upper")
    states = {w[0]: 1}  # running minimum -> summed product of binomials
    for n in w[1:]:
        nxt: dict[int, int] = {}
        for d, total in states.items():
            for j in range(min(d, n) + 1):
                key = min(d, n - j)
                nxt[key] = nxt.get(key, 0) + total * comb(n, j)
        states = nxt
    return sum(states.values())


def trivial_upper(widths: Sequence[int]) -> int:
    """``2^N``: every on/off pattern of the ``N`` hidden units.

    Examples
    --------
    >>> maso.bounds.trivial_upper([2, 4, 4])
    256
    """
    w = _widths(widths, "trivial_upper")
    return 2 ** sum(w[1:])


def layer_widths(net: Any) -> tuple[int, ...]:
    """``(input_dim, units of each spline layer...)`` of a network whose units all have two pieces.

    Raises
    ------
    ParameterError
        A unit with more than two pieces (max-pool, maxout): these bounds are for ReLU-like units.

    Examples
    --------
    >>> maso.bounds.layer_widths(maso.mlp([3, 8, 5, 1], seed=0))
    (3, 8, 5)
    """
    if any(g.n_pieces != 2 for g in net.units):
        raise ParameterError("layer_widths: these region bounds are for two-piece (ReLU-like) units; the network "
                             "has max-pool or maxout units.")
    return (net.input_dim, *(g.size for g in net.units))
