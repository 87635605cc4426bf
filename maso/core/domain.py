"""Bounded input domains for region enumeration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maso._validation import readonly
from maso.core.polytope import Polytope, _real_array
from maso.errors import DomainError, SolverError

__all__ = ["Box", "as_domain"]

#: A domain whose largest inscribed ball is this wide is refused as unbounded (enumeration would not end).
_MAX_INRADIUS = 1e5
#: A domain reaching this far along an axis is refused as unbounded (float64 no longer resolves small regions).
_MAX_EXTENT = 1e12


@dataclass(frozen=True, eq=False)
class Box:
    """The axis-aligned box ``{x : lo <= x <= hi}``.

    Parameters
    ----------
    lo, hi : array of shape (d,) or float
        Bounds (real numbers); scalars are broadcast when the box is given to a function that knows ``d``.

    Raises
    ------
    DomainError
        Bounds that are not real numbers (complex, strings, None), of different lengths, not finite, or with
        ``lo >= hi`` somewhere.

    Examples
    --------
    >>> import maso
    >>> box = maso.Box([-1, -1], [1, 1])
    >>> box.to_polytope().n_constraints
    4
    """

    lo: Any
    hi: Any

    def __post_init__(self) -> None:
        lo, hi = _real_array(self.lo, "Box bound lo", DomainError), _real_array(self.hi, "Box bound hi", DomainError)
        try:
            lo, hi = np.broadcast_arrays(lo, hi)
        except ValueError:
            raise DomainError(f"Box bounds lo and hi must have the same length. Got shapes {lo.shape} and "
                              f"{hi.shape}.") from None
        if lo.ndim > 1:
            raise DomainError(f"Box bounds must be scalars or vectors. Got shape {lo.shape}.")
        if lo.size == 0:
            raise DomainError("Box bounds are empty: a box needs at least one coordinate.")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise DomainError("Box bounds must be finite: an unbounded domain has infinitely many regions to list.")
        if np.any(hi <= lo):
            raise DomainError(f"Box needs lo < hi in every coordinate. Got lo={lo}, hi={hi}: the box is empty or flat.")
        object.__setattr__(self, "lo", readonly(lo))
        object.__setattr__(self, "hi", readonly(hi))

    @property
    def volume(self) -> float:
        """Product of the side lengths."""
        return float(np.prod(self.hi - self.lo))

    def to_polytope(self, dim: int | None = None) -> Polytope:
        """The box as ``{x : A x <= b}`` with unit rows ``e_i`` and ``-e_i``."""
        lo, hi = self.lo, self.hi
        if lo.ndim == 0:
            if dim is None:
                raise DomainError("A box with scalar bounds needs the dimension.")
            lo, hi = np.full(dim, float(lo)), np.full(dim, float(hi))
        d = lo.shape[0]
        return Polytope(np.vstack([np.eye(d), -np.eye(d)]), np.concatenate([hi, -lo]))


def as_domain(domain: Any, dim: int, *, caller: str) -> Polytope:
    """Validate a domain for a network of input dimension ``dim`` and return it as a polytope with unit rows."""
    if isinstance(domain, Box):
        P = domain.to_polytope(dim)
    elif isinstance(domain, Polytope):
        P = domain
    else:
        raise DomainError(f"The domain of {caller} must be a maso.Box or a bounded maso.Polytope. "
                          f"Got {type(domain).__name__}.")
    if P.dim != dim:
        raise DomainError(f"The domain of {caller} lives in {P.dim} dimensions but the network's input has {dim}. "
                          "Flatten image inputs: regions live in the flattened input space.")
    big = np.max(np.abs(P.A), axis=1, initial=0.0)  # row norms without overflow (rows of 1e200) or underflow
    norms = big * np.sqrt(np.sum((P.A / np.where(big > 0, big, 1.0)[:, None]) ** 2, axis=1))
    if np.any(norms == 0):
        zero = P.b[norms == 0]
        if np.any(zero < 0):
            raise DomainError(f"The domain of {caller} is empty (a row reads 0 <= {zero.min():.3g}).")
    keep = norms > 0
    A = P.A[keep] / norms[keep, None]
    b = P.b[keep] / norms[keep]
    from maso._lp import chebyshev, extreme

    r, _ = chebyshev(A, b)
    if r <= 0:
        raise DomainError(f"The domain of {caller} is empty or flat (largest inscribed ball radius {r:.3g}).")
    if r >= _MAX_INRADIUS:
        raise DomainError(f"The domain of {caller} is unbounded (or wider than {_MAX_INRADIUS:g}); give a bounded box "
                          "or polytope.")
    for i in range(dim):  # bounded in every direction
        for s in (1.0, -1.0):
            e = np.zeros(dim)
            e[i] = s
            try:
                v, _ = extreme(e, A, b)
            except SolverError as err:
                raise DomainError(f"The domain of {caller} is unbounded along axis {i}.") from err
            if not np.isfinite(v) or abs(v) >= _MAX_EXTENT:
                raise DomainError(f"The domain of {caller} is unbounded along axis {i}.")
    return Polytope(A, b)
