"""Input validation shared by the public entry points (private)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from maso.errors import ShapeError

_FLOAT_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class Batch:
    """A validated input: a float tensor with a leading batch axis, and how to give results back."""

    tensor: torch.Tensor
    was_numpy: bool
    was_single: bool

    def out(self, t: torch.Tensor) -> Any:
        """Return ``t`` (batch-first) in the caller's array type, dropping the batch axis for a single input."""
        if self.was_single:
            t = t[0]
        if self.was_numpy:
            return t.detach().cpu().numpy()
        return t


def as_batch(x: Any, sample_shape: tuple[int, ...], *, caller: str, name: str = "x") -> Batch:
    """Validate ``x`` as one sample of ``sample_shape`` or a batch ``(n, *sample_shape)``.

    NumPy arrays (and lists) are computed in their own float precision (float64 for integers and lists);
    torch tensors stay on their device and dtype.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dtype not in _FLOAT_DTYPES:
            if t.dtype.is_floating_point or t.dtype.is_complex:
                raise ShapeError(
                    f"The {name!r} argument of {caller} must be float32 or float64. Got {t.dtype} instead; "
                    f"convert it with {name}.double()."
                )
            t = t.to(torch.float64)
        was_numpy = False
    else:
        try:
            a = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise ShapeError(f"The {name!r} argument of {caller} must be an array. Got {type(x).__name__}.") from e
        if a.dtype == np.float32:
            pass
        elif a.dtype.kind in "biuf":
            a = a.astype(np.float64)
        else:
            raise ShapeError(
                f"The {name!r} argument of {caller} must be a real numeric array. Got dtype {a.dtype} instead."
            )
        t = torch.from_numpy(np.array(a, copy=True))
        was_numpy = True
    k = len(sample_shape)
    if tuple(t.shape) == tuple(sample_shape):
        single = True
        t = t.unsqueeze(0)
    elif t.dim() == k + 1 and tuple(t.shape[1:]) == tuple(sample_shape):
        single = False
    else:
        raise ShapeError(
            f"The {name!r} argument of {caller} must have shape {tuple(sample_shape)} (one input) or "
            f"(n, {', '.join(map(str, sample_shape))}) (a batch). Got shape {tuple(t.shape)} instead."
        )
    # One cheap reduction: a NaN or inf anywhere makes the sum non-finite. Only then (or on overflow of a
    # huge but finite input) run the exact element-wise test.
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ShapeError(f"The {name!r} argument of {caller} contains NaN or infinite values.")
    return Batch(t, was_numpy, single)


def readonly(a: Any, dtype: Any = np.float64) -> np.ndarray:
    """A read-only copy of ``a`` as a NumPy array of ``dtype``."""
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


def sealed(a: np.ndarray) -> np.ndarray:
    """``a`` (an array maso has just made) marked read-only, keeping its dtype and without copying."""
    a = np.asarray(a)
    a.setflags(write=False)
    return a
