"""Convex polytopes in half-space form ``{y : A @ y <= b}``."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from maso._validation import readonly
from maso.errors import ParameterShapeError, ShapeError

__all__ = ["DEFAULT_ATOL", "Polytope"]

#: Default absolute tolerance of membership tests: ``A @ y <= b + atol``.
DEFAULT_ATOL = 1e-9


@dataclass(frozen=True, eq=False)
class Polytope:
    """A convex polyhedron ``{y : A @ y <= b}`` (the sign convention of ``scipy.optimize.linprog``'s ``A_ub``).

    The constructor copies, never normalises and never removes redundant rows.

    Parameters
    ----------
    A : array of shape (n_constraints, d)
    b : array of shape (n_constraints,)
    units : int array of shape (n_constraints, 2), optional
        For regions of a network: row ``i`` keeps unit ``units[i, 0]`` (a column of ``Network.codes``) off
        its competing piece ``units[i, 1]``. ``-1`` marks a row that belongs to no unit (a domain bound).

    Examples
    --------
    >>> import numpy as np, maso
    >>> square = maso.Polytope(np.vstack([np.eye(2), -np.eye(2)]), np.ones(4))
    >>> square.contains(np.array([[0.5, 0.5], [2.0, 0.0]]))
    array([ True, False])
    """

    A: np.ndarray
    b: np.ndarray
    units: np.ndarray | None = None

    @classmethod
    def from_owned(cls, A: np.ndarray, b: np.ndarray, units: np.ndarray | None = None) -> Polytope:
        """Wrap arrays the caller has just made and checked: no copy, no validation; they become read-only.
        For algorithms that build many polytopes from rows they have normalised already (maso's own do).

        Examples
        --------
        >>> P = maso.Polytope.from_owned(np.vstack([np.eye(2), -np.eye(2)]), np.ones(4))
        >>> bool(P.contains(np.zeros(2))), P.A.flags.writeable
        (True, False)
        """
        obj = cls.__new__(cls)
        for arr in (A, b, units):
            if arr is not None:
                arr.setflags(write=False)
        object.__setattr__(obj, "A", A)
        object.__setattr__(obj, "b", b)
        object.__setattr__(obj, "units", units)
        return obj

    def __post_init__(self) -> None:
        A = readonly(_real_array(self.A, "Polytope's A", ShapeError))
        b = readonly(_real_array(self.b, "Polytope's b", ShapeError))
        if A.ndim != 2 or b.shape != (A.shape[0],):
            raise ShapeError(
                f"Polytope needs A of shape (n_constraints, d) and b of shape (n_constraints,). "
                f"Got {A.shape} and {b.shape}."
            )
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
            raise ParameterShapeError("Polytope constraints must be finite.")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)
        if self.units is not None:
            u = readonly(self.units, dtype=np.int64)
            if u.shape != (A.shape[0], 2):
                raise ShapeError(f"Polytope units must have shape (n_constraints, 2). Got {u.shape}.")
            object.__setattr__(self, "units", u)

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the ambient space."""
        return int(self.A.shape[1])

    @property
    def n_constraints(self) -> int:
        """Number of rows (inequalities), redundant ones included."""
        return int(self.A.shape[0])

    def slack(self, y: Any) -> np.ndarray:
        """``b - A @ y`` for ``y`` of shape ``(d,)`` or ``(k, d)``: non-negative inside."""
        y = np.asarray(y, dtype=np.float64)
        # Points may come in the network's input shape (an image): flatten all but a batch axis.
        if y.size == self.dim:
            y = y.reshape(self.dim)
        elif y.ndim >= 2 and int(np.prod(y.shape[1:])) == self.dim:  # a batch, possibly empty
            y = y.reshape(y.shape[0], self.dim)
        else:
            raise ShapeError(f"Points must have {self.dim} coordinates each. Got shape {np.shape(y)}.")
        return self.b - y @ self.A.T

    def contains(self, y: Any, *, atol: float = DEFAULT_ATOL) -> np.bool_ | np.ndarray:
        """Whether ``A @ y <= b + atol`` holds; ``y`` of shape ``(d,)`` gives a bool, ``(k, d)`` a bool array."""
        s = self.slack(y)
        return np.all(s >= -atol, axis=-1)


def _real_array(value: object, what: str, error: type[Exception]) -> np.ndarray:
    """``value`` as a float64 array, refusing what is not real numbers (complex, strings, None...) with ``error``
    naming ``what``, instead of casting with a warning or failing inside NumPy.

    Integers, floats, bools of NumPy or Python, and objects that are ``numbers.Real`` (``Fraction``, ``Decimal``
    is refused: it is not ``Real``) convert; tensors and array-likes of those convert too.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nesting and the like
        raise error(f"{what} must be an array of real numbers; {type(value).__name__} could not be read as one "
                    f"({e}).") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise error(f"{what} must be real numbers; got complex values ({arr.dtype}). Pass the real part "
                    "explicitly (x.real) if that is what you mean.")
    if kind == "O":
        bad = [v for v in arr.reshape(-1) if not isinstance(v, numbers.Real)]
        if bad:
            raise error(f"{what} must be real numbers; got {bad[0]!r} ({type(bad[0]).__name__}).")
        return arr.astype(np.float64)
    if kind not in "biuf":
        example = f" (e.g. {arr.reshape(-1)[0].item()!r})" if arr.size else ""
        raise error(f"{what} must be real numbers; got values of dtype {arr.dtype}{example}.")
    return arr.astype(np.float64, copy=False)
