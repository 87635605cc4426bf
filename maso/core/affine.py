"""Affine maps ``y = A x + b``: the exact map of a network on one region."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import numpy as np
import torch

from maso._validation import readonly
from maso.errors import ShapeError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["Affine", "AffineOperator"]

#: What maso's affine maps hold and return: NumPy arrays, or torch tensors when the network was called with tensors.
Array: TypeAlias = np.ndarray | torch.Tensor


@dataclass(frozen=True, eq=False)
class Affine:
    """An affine map ``x -> A @ x + b`` on flattened inputs, or a batch of them.

    Parameters
    ----------
    A : array of shape (d_out, d_in) or (n, d_out, d_in)
        The linear part (the Jacobian of the network on the region).
    b : array of shape (d_out,) or (n, d_out)
        The offset.

    Notes
    -----
    NumPy arrays are stored read-only; torch tensors (returned when the network was called with tensors)
    are kept as they are, on their device.

    Examples
    --------
    >>> import numpy as np, maso
    >>> f = maso.core.Affine(A=np.array([[2.0, 0.0]]), b=np.array([1.0]))
    >>> f(np.array([3.0, 5.0]))
    array([7.])
    """

    A: Any
    b: Any

    @classmethod
    def from_owned(cls, A: Any, b: Any) -> Affine:
        """Wrap arrays the caller has just made and hands over: no copy, no validation; NumPy arrays become
        read-only. For algorithms that build many maps from arrays they have checked already (maso's own do).

        Examples
        --------
        >>> f = maso.core.Affine.from_owned(np.eye(2), np.zeros(2))
        >>> f.A.flags.writeable, f(np.array([1.0, 2.0]))
        (False, array([1., 2.]))
        """
        obj = cls.__new__(cls)
        for a in (A, b):
            if isinstance(a, np.ndarray):
                a.setflags(write=False)
        object.__setattr__(obj, "A", A)
        object.__setattr__(obj, "b", b)
        return obj

    def __post_init__(self) -> None:
        if not isinstance(self.A, torch.Tensor):
            object.__setattr__(self, "A", readonly(self.A, dtype=np.result_type(np.asarray(self.A).dtype, np.float32)))
            object.__setattr__(self, "b", readonly(self.b, dtype=self.A.dtype))
        if self.A.ndim not in (2, 3) or tuple(self.b.shape) != tuple(self.A.shape[:-1]):
            raise ShapeError(
                f"Affine needs A of shape (d_out, d_in) or (n, d_out, d_in) and b of shape A.shape[:-1]. "
                f"Got {tuple(self.A.shape)} and {tuple(self.b.shape)}."
            )

    @property
    def batched(self) -> bool:
        """True when this holds one map per input of a batch."""
        return self.A.ndim == 3

    def __len__(self) -> int:
        if not self.batched:
            raise TypeError("An unbatched Affine has no length.")
        return int(self.A.shape[0])

    def __getitem__(self, i: int) -> Affine:
        if not self.batched:
            raise TypeError("Index a batched Affine (A of shape (n, d_out, d_in)).")
        return Affine(self.A[i], self.b[i])

    @overload
    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...
    @overload
    def __call__(self, x: npt.ArrayLike) -> np.ndarray: ...
    def __call__(self, x: Any) -> Array:
        """Apply the map to ``x`` of shape ``(d_in,)`` (or ``(n, d_in)`` for a batched map, one each)."""
        if self.batched:
            if isinstance(self.A, torch.Tensor):
                return torch.einsum("noi,ni->no", self.A, x) + self.b
            return np.einsum("noi,ni->no", self.A, x) + self.b
        return x @ self.A.T + self.b


@dataclass(frozen=True, eq=False)
class AffineOperator:
    """The exact affine maps of a batch of regions, as operators that never form ``A``.

    ``jvp(v)`` returns ``A v`` (a Jacobian-vector product, pushed forward through the network with every
    unit frozen on its piece) and ``vjp(w)`` returns ``A^T w``; each costs about one forward pass. Use
    [`to_dense`][maso.core.AffineOperator.to_dense] to form the matrices when they fit in memory.

    Attributes
    ----------
    shape : tuple of int
        ``(n, d_out, d_in)``.

    Examples
    --------
    >>> import numpy as np, maso
    >>> net = maso.mlp([3, 8, 2], seed=0)
    >>> x = np.ones((1, 3))
    >>> op = net.affine_at(x, dense=False)
    >>> np.allclose(op.jvp(np.eye(3)[None, 0]), net.affine_at(x).A[:, :, 0])
    True
    """

    shape: tuple[int, int, int]
    _jvp: Callable[[Any], Any]
    _vjp: Callable[[Any], Any]
    _offset: Callable[[], Any]

    @functools.cached_property
    def b(self) -> Array:
        """Offsets ``(n, d_out)``: computed on first use by one frozen pass at the origin."""
        return self._offset()

    def jvp(self, v: Any) -> Array:
        """``A @ v`` for ``v`` of shape ``(n, d_in)`` (one direction per input) → ``(n, d_out)``."""
        return self._jvp(v)

    def vjp(self, w: Any) -> Array:
        """``A.T @ w`` for ``w`` of shape ``(n, d_out)`` → ``(n, d_in)``."""
        return self._vjp(w)

    def to_dense(self) -> Affine:
        """Form the matrices (by ``d_out`` vector-Jacobian products per input)."""
        n, m, _ = self.shape
        b = self.b
        torch_b = isinstance(b, torch.Tensor)
        rows: list[Any] = []  # tensors or arrays, as b is
        for j in range(m):
            w: Array = torch.zeros((n, m), dtype=b.dtype, device=b.device) if isinstance(b, torch.Tensor) else (
                np.zeros((n, m), dtype=b.dtype))
            w[..., j] = 1
            rows.append(self.vjp(w))
        A = torch.stack(rows, dim=-2) if torch_b else np.stack(rows, axis=-2)
        return Affine(A, b)
