"""Exceptions and warnings raised by maso.

Every error subclasses [`MasoError`][maso.errors.MasoError] and the builtin exception it *is*, so that
``except ValueError`` keeps working for callers that do not know maso.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "ConversionError",
    "DomainError",
    "InvalidWeightsError",
    "MasoError",
    "MemoryBudgetWarning",
    "NumericalWarning",
    "ParameterError",
    "ParameterShapeError",
    "ResourceError",
    "ShapeError",
    "SolverError",
    "SubnetworkError",
    "TrainingModeError",
    "UnsupportedLayerError",
    "WeightsFileError",
    "WorkerError",
]


class MasoError(Exception):
    """Base class of every maso error."""


class ShapeError(MasoError, ValueError):
    """An array has the wrong shape or dtype for the call it was passed to, or an input (a point, a batch, an
    example) holds NaN or infinite values. Wrong values of settings, weights or constraints are a
    [`ParameterError`][maso.errors.ParameterError] instead."""


class UnsupportedLayerError(MasoError, TypeError):
    """A module or operation is not piecewise affine, so it has no exact MASO form.

    Attributes
    ----------
    kind : str
        The module class or function name that was refused.
    path : str
        Where it sits in the model (a module path such as ``"blocks.3.act"`` or a traced node name).
    """

    def __init__(self, message: str, *, kind: str = "", path: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path


class ConversionError(MasoError, ValueError):
    """A PyTorch model could not be converted (tracing failed, an unsupported graph shape...)."""


class TrainingModeError(ConversionError):
    """A module is in training mode, where its output depends on the batch or on randomness."""


class InvalidWeightsError(ConversionError):
    """A parameter or buffer holds NaN or infinite values."""


class SubnetworkError(MasoError, ValueError):
    """The requested sub-network does not exist (unknown layer, or a cut that does not separate the graph)."""


class NumericalWarning(UserWarning):
    """A result is close to a numerical degeneracy (a tie between pieces, a thin region...)."""


class MemoryBudgetWarning(UserWarning):
    """A computation outgrew its memory budget and goes on by a slower path that needs less memory (the result is
    the same). The message says how much it needed and how to stay within the budget (for a slice: ``tiles``)."""


class SolverError(MasoError, RuntimeError):
    """An LP solver failed, or returned a result that did not pass its certificate check."""


class DomainError(MasoError, ValueError):
    """A domain is empty, unbounded, of the wrong dimension or otherwise unusable."""


class CheckpointError(MasoError, ValueError):
    """A checkpoint file cannot be used: it belongs to another run (network, domain or settings), is not a maso
    checkpoint, is truncated or damaged in its header, cannot be read or written, or is in use by another process.
    Raised before any work; the message says which, and what to do."""


class CheckpointWarning(UserWarning):
    """A checkpoint file held damaged records (a failed checksum): they were skipped, and the tasks they held are
    computed again. The message names the file and what is recomputed."""


class ParameterError(MasoError, ValueError):
    """A parameter is out of its valid range or not one of its accepted values (a temperature, β, a radius, a
    number of steps, layer widths, a method or activation name, a piece index, non-finite weights or
    constraints...)."""


class ParameterShapeError(ParameterError, ShapeError):
    """A parameter that maso reported as a [`ShapeError`][maso.errors.ShapeError] before 0.2 (``tol`` and
    ``method`` of [`maso.enumerate_regions`][], the widths of [`maso.mlp`][]...) is out of range: a
    [`ParameterError`][maso.errors.ParameterError], and a ``ShapeError`` still, so that ``except ShapeError``
    clauses written then keep working."""


class WorkerError(MasoError, RuntimeError):
    """A worker process died before returning its task (the script has no ``if __name__ == "__main__":`` guard,
    or a worker ran out of memory)."""


class ResourceError(MasoError, MemoryError):
    """A computation would need more memory than this machine (or a limit set on the process) has left, so it
    is refused before any work; the message names the size and how to ask for less (a smaller batch, an
    operator instead of dense matrices...)."""


class WeightsFileError(MasoError, ValueError):
    """A weights file (or state dict) does not fit the model it is loaded into: it cannot be read, does not hold
    a mapping of parameter names to tensors, its names or shapes differ from the model's, or it holds NaN or
    infinite values. Nothing is loaded. The message lists the problems.

    Attributes
    ----------
    path : str
        The file ("" for a state dict passed directly).
    missing, unexpected, mismatched : list of str
        The model's keys the file lacks; the file's keys the model lacks; ``"key: shape, expected shape"`` for
        each shape mismatch.
    """

    def __init__(self, message: str, *, path: str = "", missing: Sequence[str] = (),
                 unexpected: Sequence[str] = (), mismatched: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.path = path
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
