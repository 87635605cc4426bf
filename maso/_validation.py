"""Input validation shared by the public entry points (private)."""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import torch

from maso.errors import ParameterError, ResourceError, ShapeError

_FLOAT_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class Batch:
    """A validated input: a float tensor with a leading batch axis, and how to give results back."""

    tensor: torch.Tensor
    was_numpy: bool
    was_single: bool
    lead: tuple[int, ...] = ()  # several leading batch axes (tokens: (batch, seq)), flattened into one
    # as_batch(finite_check="later"): the input's sum, tested by ensure_finite (which `out` calls first)
    pending_sum: torch.Tensor | None = None
    name: str = "x"
    caller: str = ""

    def ensure_finite(self) -> None:
        """Raise `ShapeError` if the input has a NaN or infinite value (the test `as_batch` left for later)."""
        if self.pending_sum is None:
            return
        s = self.pending_sum
        object.__setattr__(self, "pending_sum", None)  # tested once (a frozen record of the input otherwise)
        _check_finite(self.tensor, s, self.name, self.caller)

    def out(self, t: torch.Tensor, *, keep_lead: bool = True) -> Any:
        """Return ``t`` (batch-first) in the caller's array type, dropping the batch axis for a single input and
        restoring several leading batch axes (unless ``keep_lead=False``: flat, one row per input).
        An input whose finiteness test was left for later is tested first."""
        self.ensure_finite()
        if self.was_single:
            t = t[0]
        elif self.lead and keep_lead:
            t = t.reshape(*self.lead, *t.shape[1:])
        if self.was_numpy:
            return t.detach().cpu().numpy()
        return t


def _check_finite(t: torch.Tensor, total: torch.Tensor, name: str, caller: str) -> None:
    # One cheap reduction: a NaN or inf anywhere makes the sum non-finite. Only then (or on overflow of a
    # huge but finite input) run the exact element-wise test.
    # (the sum's test on the host: one reduction and one transfer, not five tiny device kernels)
    if not math.isfinite(float(total)) and not bool(torch.isfinite(t).all()):
        raise ShapeError(f"The {name!r} argument of {caller} contains NaN or infinite values.")


def as_batch(x: Any, sample_shape: tuple[int, ...], *, caller: str, name: str = "x",
             finite_check: Literal["now", "later"] = "now") -> Batch:
    """Validate ``x`` as one sample of ``sample_shape``, a batch ``(n, *sample_shape)``, or a batch with several
    leading axes ``(n1, n2, ..., *sample_shape)`` (e.g. tokens ``(batch, seq, d)`` for a network on ``(d,)``),
    which is computed as one flat batch.

    NumPy arrays (and lists) are computed in their own float precision (float64 for integers and lists);
    torch tensors stay on their device and dtype.

    ``finite_check="later"``: the NaN/inf test's reduction is queued now but read by `Batch.ensure_finite`
    (which `Batch.out` calls), so on a GPU the host queues the caller's kernels instead of waiting for the
    reduction first. Only for callers whose work on a bad input is harmless and returns through ``out``.
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
            raise ShapeError(f"The {name!r} argument of {caller} must be an array of numbers (rows of one length). "
                             f"Got a {type(x).__name__} that is not one ({type(e).__name__}: {e}).") from e
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
    lead: tuple[int, ...] = ()
    if tuple(t.shape) == tuple(sample_shape):
        single = True
        t = t.unsqueeze(0)
    elif t.dim() == k + 1 and tuple(t.shape[1:]) == tuple(sample_shape):
        single = False
    elif t.dim() > k + 1 and tuple(t.shape[t.dim() - k:]) == tuple(sample_shape):
        lead = tuple(t.shape[:t.dim() - k])
        t = t.reshape(-1, *sample_shape)
        single = False
    else:
        raise ShapeError(
            f"The {name!r} argument of {caller} must have shape {tuple(sample_shape)} (one input) or "
            f"(n, {', '.join(map(str, sample_shape))}) (a batch), or more leading batch axes such as (batch, seq, "
            f"...). Got shape {tuple(t.shape)} instead."
        )
    if finite_check == "later":
        return Batch(t, was_numpy, single, lead, pending_sum=t.sum(), name=name, caller=caller)
    _check_finite(t, t.sum(), name, caller)
    return Batch(t, was_numpy, single, lead)


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


# ------------------------------------------------------------------------------------------- parameters
# (overloads: None comes back only with allow_none=True)
@overload
def check_int(value: Any, name: str, caller: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: Literal[False] = False) -> int: ...
@overload
def check_int(value: Any, name: str, caller: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool) -> int | None: ...
def check_int(value: Any, name: str, caller: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False) -> int | None:
    """``value`` as a Python int in ``[minimum, maximum]``; bools, floats, strings and the like are refused.

    Raises
    ------
    ParameterError
        Naming the parameter, the caller, the valid range and what was given.
    """
    if value is None and allow_none:
        return None
    rng = _range_text(minimum, maximum)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"The {name!r} parameter of {caller} must be an integer{rng}"
                             f"{' or None' if allow_none else ''}. Got {value!r} ({type(value).__name__}).")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ParameterError(f"The {name!r} parameter of {caller} must be an integer{rng}. Got {v}.")
    return v


@overload
def check_float(value: Any, name: str, caller: str, *, minimum: float | None = None, maximum: float | None = None,
                strict: bool = False, allow_none: Literal[False] = False) -> float: ...
@overload
def check_float(value: Any, name: str, caller: str, *, minimum: float | None = None, maximum: float | None = None,
                strict: bool = False, allow_none: bool) -> float | None: ...
def check_float(value: Any, name: str, caller: str, *, minimum: float | None = None, maximum: float | None = None,
                strict: bool = False, allow_none: bool = False) -> float | None:
    """``value`` as a finite Python float in ``[minimum, maximum]`` (open at ``minimum`` with ``strict``).

    Python and NumPy reals of any precision are accepted; bools, complex numbers, strings, NaN and infinities
    are refused with a [`ParameterError`][maso.errors.ParameterError].
    """
    if value is None and allow_none:
        return None
    lo = "(" if strict else "["
    rng = "" if minimum is None and maximum is None else (
        f" in {lo}{'-inf' if minimum is None else f'{minimum:g}'}, {'inf' if maximum is None else f'{maximum:g}'}]")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ParameterError(f"The {name!r} parameter of {caller} must be a real number{rng}. "
                             f"Got {value!r} ({type(value).__name__}).")
    v = float(value)
    if not math.isfinite(v) or (minimum is not None and (v < minimum or (strict and v == minimum))) or (
            maximum is not None and v > maximum):
        raise ParameterError(f"The {name!r} parameter of {caller} must be a finite number{rng}. Got {v!r}.")
    return v


def check_bool(value: Any, name: str, caller: str) -> bool:
    """``value`` as a bool; only ``True``/``False`` (and NumPy bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"The {name!r} parameter of {caller} must be True or False. "
                             f"Got {value!r} ({type(value).__name__}).")
    return bool(value)


def check_device(value: Any, caller: str) -> torch.device:
    """``device=`` of a public function: None (the CPU), a string or a ``torch.device`` that torch can use here.

    Raises ParameterError for a name torch does not know, and for a CUDA device when CUDA is not available or
    has no such index.
    """
    if value is None:
        return torch.device("cpu")
    if not isinstance(value, (str, torch.device)):
        raise ParameterError(f"The 'device' parameter of {caller} must be a string such as 'cpu' or 'cuda', or a "
                             f"torch.device. Got {_preview(value)}.")
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ParameterError(f"The 'device' parameter of {caller} is not a device torch knows: {value!r} "
                             "(expected e.g. 'cpu', 'cuda' or 'cuda:1').") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"{caller}: device={value!r}, but CUDA is not available in this torch "
                                 f"({torch.__version__}); use device='cpu'.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ParameterError(f"{caller}: device={value!r}, but this machine has {torch.cuda.device_count()} "
                                 "CUDA device(s).")
    elif device.type != "cpu":
        raise ParameterError(f"{caller}: device={value!r} is not supported; use 'cpu' or a CUDA device.")
    return device


def real_vector(value: Any, name: str, caller: str, *, error: type[Exception] = ShapeError) -> np.ndarray:
    """``value`` as a finite float64 array, refusing complex numbers, strings and objects (no silent casts)."""
    try:
        a = np.asarray(value)
    except Exception as e:  # ragged lists and the like
        raise error(f"The {name!r} argument of {caller} must be an array of real numbers. "
                    f"Got {type(value).__name__}.") from e
    if a.dtype.kind not in "biuf":
        raise error(f"The {name!r} argument of {caller} must hold real numbers. Got dtype {a.dtype} "
                    f"({_preview(value)}).")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise error(f"The {name!r} argument of {caller} contains NaN or infinite values.")
    return a


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------------------------- memory
def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text)
    except (OSError, ValueError):
        return None


def memory_budget(device: Any = "cpu") -> int | None:
    """Bytes that one more allocation on ``device`` can take, or None when this cannot be told.

    On the CPU: the memory the system has available (``MemAvailable``), lowered by the process's address-space
    and data limits (``ulimit -v``, ``ulimit -d``) and by a cgroup memory limit; on a CUDA device: its free
    memory.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):  # pragma: no cover - no driver
            return None
    if device.type != "cpu":
        return None
    budgets = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    budgets.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        try:
            budgets.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        import resource

        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as f:
            statm = f.read().split()
        for limit, used in ((resource.RLIMIT_AS, int(statm[0]) * page), (resource.RLIMIT_DATA, int(statm[5]) * page)):
            soft = resource.getrlimit(limit)[0]
            if soft != resource.RLIM_INFINITY:
                budgets.append(max(0, soft - used))
    except (ImportError, OSError, ValueError, IndexError):
        pass
    cg_max, cg_cur = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cg_max is not None and cg_cur is not None:
        budgets.append(max(0, cg_max - cg_cur))
    return min(budgets) if budgets else None


# Results below this size are not checked (reading the limits costs a few file reads).
_CHECK_BYTES = 1 << 26


def check_fits(nbytes: int, what: str, hint: Callable[[int], str], device: Any = "cpu") -> int | None:
    """Refuse, before any work, a result of ``nbytes`` that would not fit in memory.

    Returns the bytes left after it, or None when that is not known or ``nbytes`` is small.

    Raises
    ------
    ResourceError
        Naming the size, what is available and ``hint(budget)`` (how to ask for less).
    """
    if nbytes < _CHECK_BYTES:
        return None
    budget = memory_budget(device)
    if budget is None:
        return None
    if nbytes > budget:
        raise ResourceError(f"{what} would take {_gb(nbytes)} of memory, but only {_gb(budget)} is available "
                            f"on {torch.device(device).type}. {hint(budget)}")
    return budget - nbytes


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"


def check_checkpoint_path(checkpoint: Any, caller: str) -> None:
    """A ParameterError unless ``checkpoint`` is None or a usable path (str, bytes or os.PathLike; not empty;
    no NUL character)."""
    if checkpoint is None:
        return
    if not isinstance(checkpoint, (str, bytes, os.PathLike)):
        raise ParameterError(f"The 'checkpoint' parameter of {caller} must be a path (str or os.PathLike) or "
                             f"None. Got {checkpoint!r} ({type(checkpoint).__name__}).")
    if not os.fspath(checkpoint):
        raise ParameterError(f"The 'checkpoint' parameter of {caller} is an empty path.")
    if "\0" in os.fsdecode(checkpoint):
        raise ParameterError(f"The 'checkpoint' parameter of {caller} holds a NUL character, which no path can "
                             f"hold. Got {checkpoint!r}.")


def outside_maso() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside maso, from the function that warns
    (whose depth below the caller varies: a tile, a fallback, a checkpoint opened by a slice or an enumeration)."""
    root = os.path.dirname(os.path.abspath(__file__))
    frame: Any = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(root + os.sep):
        frame, level = frame.f_back, level + 1
    return level
