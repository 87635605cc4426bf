"""Layer operators: the nodes of a [`maso.Network`][].

Two families:

* **Affine operators** ([`Dense`][maso.layers.Dense], [`Conv`][maso.layers.Conv],
  [`ElementwiseAffine`][maso.layers.ElementwiseAffine], [`AvgPool`][maso.layers.AvgPool],
  [`AdaptiveAvgPool`][maso.layers.AdaptiveAvgPool], [`Mean`][maso.layers.Mean],
  [`Reshape`][maso.layers.Reshape], [`Sum`][maso.layers.Sum], [`Concat`][maso.layers.Concat]). They stay
  structured: a convolution is applied as a convolution, and a dense matrix is only formed when asked for.
* **Max-affine spline nonlinearities** ([`Elementwise`][maso.layers.Elementwise],
  [`MaxPool`][maso.layers.MaxPool], [`Maxout`][maso.layers.Maxout], [`MASOLayer`][maso.layers.MASOLayer]).
  Each unit ``k`` outputs the largest of ``R`` affine pieces of its input; its *hard code* is the index of
  that piece (the lowest index on ties, so a ReLU unit at exactly 0 is off).

All layers act on a batch: tensors carry a leading batch axis followed by the per-sample shape. Parameters
are stored as read-only float64 NumPy arrays and moved to the device and dtype of the input on use.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from maso._gates import probabilities_from_scores, two_piece_probabilities
from maso._validation import readonly
from maso.errors import ParameterShapeError, ShapeError

__all__ = [
    "AdaptiveAvgPool",
    "AffineLayer",
    "AvgPool",
    "Concat",
    "Conv",
    "Dense",
    "Elementwise",
    "ElementwiseAffine",
    "Index",
    "Layer",
    "MASOLayer",
    "MaxPool",
    "Maxout",
    "Mean",
    "Pad",
    "Reshape",
    "SplineLayer",
    "Sum",
    "absolute",
    "leaky_relu",
    "relu",
]

Tensor = torch.Tensor
Shape = tuple[int, ...]


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return tuple(int(v[0]) for _ in range(n))
        return tuple(int(a) for a in v)
    return tuple(int(v) for _ in range(n))


def _shape_repr(a: np.ndarray) -> str:
    return "x".join(map(str, a.shape)) or "scalar"


class Layer:
    """Base class of every layer. Subclasses are frozen dataclasses."""

    #: Number of inputs; 0 means "one or more".
    n_inputs: ClassVar[int] = 1
    #: True for max-affine spline nonlinearities (layers with a code).
    is_spline: ClassVar[bool] = False
    #: True for smooth spline layers ([`maso.soft.Soft`][]): their output mixes the pieces by probability, so the
    #: network has no polytopes and exact geometry refuses it.
    is_soft: ClassVar[bool] = False

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameter arrays, moved to the computing device by the network."""
        return {}

    def __repr__(self) -> str:
        parts = []
        for k, v in self.__dict__.items():
            if k.startswith("_"):
                continue
            parts.append(f"{k}={'array(' + _shape_repr(v) + ')' if isinstance(v, np.ndarray) else repr(v)}")
        return f"{type(self).__name__}({', '.join(parts)})"


class AffineLayer(Layer):
    """An affine operator ``y = L(x) + c`` (``L`` linear)."""

    def forward(self, xs: Sequence[Tensor], p: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def linear(self, xs: Sequence[Tensor], p: dict[str, Tensor]) -> Tensor:
        """The linear part ``L`` alone (bias left out)."""
        raise NotImplementedError

    def vjp(self, cot: Tensor, p: dict[str, Tensor], in_shapes: Sequence[Shape]) -> list[Tensor]:
        """Pull a batch of cotangents back through the linear part: ``L^T cot`` for each input."""
        n = cot.shape[0]
        xs = [torch.zeros((n, *s), dtype=cot.dtype, device=cot.device, requires_grad=True) for s in in_shapes]
        with torch.enable_grad():
            y = self.linear(xs, p)
            grads = torch.autograd.grad(y, xs, cot, allow_unused=True)
        return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs)]


class SplineLayer(Layer):
    """A max-affine spline operator acting unit-wise on its (single) input.

    The internal code (``icode``) is whatever indexes the chosen pieces fastest (a bool for two-piece units,
    flat input indices for max-pooling); `public_code` turns it into piece indices ``0..R-1``.
    """

    is_spline = True

    @property
    def n_pieces(self) -> int:
        """Largest number of pieces ``R`` of a unit."""
        raise NotImplementedError

    def forward(self, x: Tensor, p: dict[str, Tensor], need_code: bool) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def code(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """The internal code alone, equal to ``forward(x, p, True)[1]``, for a pass that reads no output of the
        layer (the codes of a GPT-2 MLP block's nonlinearity need no GELU)."""
        code = self.forward(x, p, True)[1]
        assert code is not None  # a spline layer asked for its code returns one
        return code

    def public_code(self, icode: Tensor, in_shape: Shape) -> Tensor:
        return icode

    def write_public_code(self, out: Tensor, icode: Tensor, in_shape: Shape) -> None:
        """Write ``public_code(icode, in_shape)`` into ``out`` ``(n, units)`` (a block of code rows; cast to its
        dtype on the way)."""
        out.copy_(self.public_code(icode, in_shape).reshape(out.shape))

    def forward_into_code_rows(self, x: Tensor, p: dict[str, Tensor], out: Tensor, in_shape: Shape,
                               need_output: bool) -> Tensor | None:
        """The codes of ``x`` written straight into ``out`` ``(n, units)`` (as `write_public_code` writes them),
        and the layer's output if ``need_output`` (else None): what a pass that only collects code rows needs,
        in as few kernels as a layer can manage."""
        if need_output:
            y, code = self.forward(x, p, True)
            assert code is not None  # a spline layer asked for its code returns one
        else:
            y, code = None, self.code(x, p)
        self.write_public_code(out, code, in_shape)
        return y

    def frozen(self, x: Tensor, icode: Tensor, p: dict[str, Tensor], in_shape: Shape, bias: bool) -> Tensor:
        """Apply the pieces chosen by ``icode`` to ``x`` of shape ``(n, T, *in_shape)`` (T tangents each)."""
        raise NotImplementedError

    def frozen_vjp(self, cot: Tensor, icode: Tensor, p: dict[str, Tensor], in_shape: Shape) -> Tensor:
        """Transpose of [`frozen`][maso.layers.SplineLayer.frozen] (without bias) for cotangents
        ``(n, m, *out_shape)``."""
        raise NotImplementedError

    def facets(
        self, G: Tensor, o: Tensor, icode: Tensor, p: dict[str, Tensor], in_shape: Shape
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Inequalities ``rows @ y <= rhs`` that keep every unit on its chosen piece.

        ``G`` (``(D, *in_shape)``) and ``o`` (``in_shape``) give the layer input as an affine function
        ``G^T y + o`` of the network input ``y``; ``icode`` is one sample's internal code. Returns rows
        ``(k, D)``, right-hand sides ``(k,)``, the flat unit index of each row and the competing piece.
        """
        raise NotImplementedError

    def to_maso(self, W: np.ndarray, b: np.ndarray, in_shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """Dense canonical form ``(A (K, R, D), B (K, R))`` when the input is ``W y + b`` (flattened)."""
        raise NotImplementedError

    def scores(self, G: Tensor, o: Tensor, in_shape: Shape) -> tuple[Tensor, Tensor]:
        """Each unit's piece scores as affine functions of the network input, for a batch of cells.

        ``G`` (``(n, D, *in_shape)``) and ``o`` (``(n, *in_shape)``) give the layer input as ``G^T y + o``.
        Returns slopes ``(n, U, R, D)`` and offsets ``(n, U, R)`` (``-inf`` for a piece a unit lacks); the
        code of a unit is the argmax of its scores, lowest index on ties.
        """
        raise NotImplementedError

    def internal_code(self, code: Tensor, in_shape: Shape) -> Tensor:
        """Inverse of `public_code`: piece indices ``(n, *unit_shape)`` to the internal code."""
        return code.long()

    # -- the soft view, answered by every spline layer (hard ones degenerate to their hard code) ----------
    def piece_scores(self, x: Tensor, p: dict[str, Tensor], in_shape: Shape) -> Tensor:
        """Signed piece scores ``(n, U, R)`` at layer inputs ``x`` of shape ``(n, *in_shape)``.

        A unit's code is the argmax of its scores (``-inf`` for a piece it lacks).
        """
        if x.shape[0] == 0:  # an empty batch: the scores of one sample, none kept (their shape is what matters)
            return self.piece_scores(x.new_zeros((1, *in_shape)), p, in_shape)[:0]
        G = x.new_zeros((x.shape[0], 1, *in_shape))  # scores() wants slopes too; one zero column is cheapest
        return self.scores(G, x, in_shape)[1]

    def piece_probabilities(self, x: Tensor, p: dict[str, Tensor], in_shape: Shape,
                            temperature: float | None = None) -> Tensor:
        """Each unit's probability of being on each of its pieces: ``(n, U, R)`` in ``x``'s dtype.

        A hard layer gives its code one-hot; at a ``temperature`` it gives the softmax of its piece scores over
        ``temperature`` (the logistic gate), which tends to the one-hot code as ``temperature -> 0``.
        """
        n = x.shape[0]
        if temperature is None:
            code = self.public_code(self.code(x, p), in_shape)
            code = code.reshape(n, math.prod(code.shape[1:])).long()
            return F.one_hot(code, self.n_pieces).to(x.dtype)
        return probabilities_from_scores("logistic", self.piece_scores(x, p, in_shape), temperature)

    def expected_forward(self, x: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Output and the code that [`frozen`][maso.layers.SplineLayer.frozen] takes for each unit's *expected*
        piece: a hard layer's own internal code (a one-hot distribution), a soft layer's probabilities."""
        y, code = self.forward(x, p, True)
        return y, code  # type: ignore[return-value]

    def expected_code(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """[`expected_forward`][maso.layers.SplineLayer.expected_forward]'s code alone, for a pass that reads no
        output of the layer."""
        if type(self).expected_forward is not SplineLayer.expected_forward:  # a subclass's own expectation
            return self.expected_forward(x, p)[1]
        return self.code(x, p)

    def output_shape(self, in_shape: Shape) -> Shape:
        """Per-sample output shape for per-sample input shape ``in_shape``."""
        y, _ = self.forward(torch.zeros((1, *in_shape), dtype=torch.float64),
                            {k: torch.from_numpy(np.array(v)) for k, v in self.arrays().items()}, False)
        return tuple(y.shape[1:])


# ----------------------------------------------------------------------------------------------------------
# affine operators


@dataclass(frozen=True, repr=False, eq=False)
class Dense(AffineLayer):
    """Fully connected layer ``y = x @ weight.T + bias`` on the last axis (``torch.nn.Linear``).

    Parameters
    ----------
    weight : array of shape (out_features, in_features)
    bias : array of shape (out_features,)

    Examples
    --------
    >>> import numpy as np, maso
    >>> net = maso.Network.sequential((2,), [maso.layers.Dense(np.eye(2), np.ones(2))])
    >>> net(np.array([1.0, 2.0]))
    array([2., 3.])
    """

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        w = readonly(self.weight)
        b = readonly(self.bias)
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ShapeError(
                f"Dense needs weight of shape (out, in) and bias of shape (out,). Got {w.shape} and {b.shape}."
            )
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    def forward(self, xs, p):
        return F.linear(xs[0], p["weight"], p["bias"])

    def linear(self, xs, p):
        return F.linear(xs[0], p["weight"])

    def vjp(self, cot, p, in_shapes):
        return [cot @ p["weight"]]


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@dataclass(frozen=True, repr=False, eq=False)
class Conv(AffineLayer):
    """N-d convolution (``torch.nn.Conv1d/2d/3d``): stride, padding, dilation, groups and padding modes.

    Parameters
    ----------
    weight : array of shape (out_channels, in_channels // groups, *kernel_size)
    bias : array of shape (out_channels,)
    stride, dilation : tuple of int
    padding : tuple of int or {"same", "valid"}
    groups : int
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
    pad : tuple of int, optional
        Explicit ``F.pad`` amounts, used when ``padding_mode`` is not ``"zeros"``.

    Examples
    --------
    >>> conv = maso.layers.Conv(np.ones((1, 1, 3)), np.zeros(1), stride=(1,), padding=(1,))
    >>> maso.Network.sequential((1, 4), [conv])(np.array([[1.0, 2.0, 3.0, 4.0]]))
    array([[3., 6., 9., 7.]])
    """

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, ...] = (1,)
    padding: Any = (0,)
    dilation: tuple[int, ...] = (1,)
    groups: int = 1
    padding_mode: str = "zeros"
    pad: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        w = readonly(self.weight)
        if w.ndim not in (3, 4, 5):
            raise ShapeError(f"Conv weight must have 3 to 5 axes (out, in/groups, *kernel). Got {w.shape}.")
        nd = w.ndim - 2
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", readonly(self.bias))
        object.__setattr__(self, "stride", _tuple(self.stride, nd))
        object.__setattr__(self, "dilation", _tuple(self.dilation, nd))
        if not isinstance(self.padding, str):
            object.__setattr__(self, "padding", _tuple(self.padding, nd))
        if self.padding_mode != "zeros" and not self.pad:
            raise ShapeError("Conv with a padding_mode other than 'zeros' needs explicit `pad` amounts.")

    @property
    def ndim(self) -> int:
        return self.weight.ndim - 2

    def arrays(self):
        return {"weight": self.weight, "bias": self.bias}

    def _conv(self, x, w, b):
        if self.padding_mode != "zeros":
            x = F.pad(x, self.pad, mode=self.padding_mode)
            padding: Any = 0
        else:
            padding = self.padding
        return _CONV[self.ndim](x, w, b, self.stride, padding, self.dilation, self.groups)

    def forward(self, xs, p):
        return self._conv(xs[0], p["weight"], p["bias"])

    def linear(self, xs, p):
        return self._conv(xs[0], p["weight"], None)


@dataclass(frozen=True, repr=False, eq=False)
class ElementwiseAffine(AffineLayer):
    """``y = x * scale + shift`` with ``scale``/``shift`` broadcastable to the per-sample shape.

    Eval-mode batch normalisation that cannot be folded into a preceding layer becomes one of these, with
    arrays of shape ``(C, 1, ..., 1)``.

    Examples
    --------
    >>> layer = maso.layers.ElementwiseAffine(np.array([2.0, -1.0]), np.array([0.0, 1.0]))
    >>> maso.Network.sequential((2,), [layer])(np.array([3.0, 3.0]))
    array([ 6., -2.])
    """

    scale: np.ndarray
    shift: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", readonly(self.scale))
        object.__setattr__(self, "shift", readonly(self.shift))

    def arrays(self):
        return {"scale": self.scale, "shift": self.shift}

    def forward(self, xs, p):
        return xs[0] * p["scale"] + p["shift"]

    def linear(self, xs, p):
        return xs[0] * p["scale"]

    def vjp(self, cot, p, in_shapes):
        g = cot * p["scale"]
        return [g.expand(cot.shape[0], *in_shapes[0]) if tuple(g.shape[1:]) != tuple(in_shapes[0]) else g]


@dataclass(frozen=True, repr=False, eq=False)
class AvgPool(AffineLayer):
    """Average pooling (``torch.nn.AvgPool1d/2d/3d``)."""

    ndim: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel_size", _tuple(self.kernel_size, self.ndim))
        object.__setattr__(self, "stride", _tuple(self.stride or self.kernel_size, self.ndim))
        object.__setattr__(self, "padding", _tuple(self.padding, self.ndim))

    def forward(self, xs, p):
        args = (xs[0], self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)
        if self.ndim == 1:
            return F.avg_pool1d(*args)
        fn = F.avg_pool2d if self.ndim == 2 else F.avg_pool3d
        return fn(*args, divisor_override=self.divisor_override)

    linear = forward


@dataclass(frozen=True, repr=False, eq=False)
class AdaptiveAvgPool(AffineLayer):
    """Adaptive average pooling (``torch.nn.AdaptiveAvgPool1d/2d/3d``)."""

    ndim: int
    output_size: Any

    def forward(self, xs, p):
        fn = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[self.ndim]
        return fn(xs[0], self.output_size)

    linear = forward


@dataclass(frozen=True, repr=False, eq=False)
class Mean(AffineLayer):
    """Mean over per-sample axes ``dims`` (axis 0 is the first axis after the batch axis)."""

    dims: tuple[int, ...]
    keepdim: bool = False

    def forward(self, xs, p):
        x = xs[0]
        dims = [d + 1 if d >= 0 else x.dim() + d for d in self.dims]
        return x.mean(dim=dims, keepdim=self.keepdim)

    linear = forward


@dataclass(frozen=True, repr=False, eq=False)
class Reshape(AffineLayer):
    """Reshape each sample to ``shape`` (``nn.Flatten``, ``view``, ``reshape``, ``squeeze``...)."""

    shape: tuple[int, ...]

    def forward(self, xs, p):
        return xs[0].reshape(xs[0].shape[0], *self.shape)

    linear = forward

    def vjp(self, cot, p, in_shapes):
        return [cot.reshape(cot.shape[0], *in_shapes[0])]


@dataclass(frozen=True, repr=False, eq=False)
class Index(AffineLayer):
    """Basic slicing of each sample, ``x[index]``, with ints and slices on the per-sample axes."""

    index: tuple

    def forward(self, xs, p):
        return xs[0][(slice(None), *self.index)]

    linear = forward


@dataclass(frozen=True, repr=False, eq=False)
class Pad(AffineLayer):
    """Padding of the per-sample trailing axes (``F.pad``, ``nn.ZeroPad2d``, ``nn.ConstantPad2d``...).

    ``pad`` is torch's ``(left, right, top, bottom, ...)`` from the last axis back; ``mode`` "constant" (with a
    finite ``value``: the affine part), "reflect", "replicate" or "circular" (linear selections).

    Examples
    --------
    >>> import numpy as np, maso
    >>> net = maso.Network.sequential((1, 2), [maso.layers.Pad((1, 0), value=5.0)])
    >>> net(np.array([[1.0, 2.0]]))
    array([[5., 1., 2.]])
    """

    pad: tuple[int, ...]
    mode: str = "constant"
    value: float = 0.0

    def __post_init__(self) -> None:
        if len(self.pad) % 2 or any(not isinstance(v, int) for v in self.pad):
            raise ShapeError(f"Pad needs an even number of integer sizes. Got {self.pad!r}.")
        if self.mode not in ("constant", "reflect", "replicate", "circular"):
            raise ParameterShapeError(
                f"Pad mode must be constant, reflect, replicate or circular. Got {self.mode!r}.")
        if not np.isfinite(self.value):
            raise ParameterShapeError(f"Pad needs a finite value (a network with infinite values is not affine). Got "
                             f"{self.value!r}.")

    def forward(self, xs, p):
        if self.mode == "constant":
            return F.pad(xs[0], self.pad, value=float(self.value))
        return F.pad(xs[0], self.pad, mode=self.mode)

    def linear(self, xs, p):
        if self.mode == "constant":
            return F.pad(xs[0], self.pad, value=0.0)
        return F.pad(xs[0], self.pad, mode=self.mode)


@dataclass(frozen=True, repr=False, eq=False)
class Sum(AffineLayer):
    """Weighted sum of inputs of one shape, ``y = sum_i coefficients[i] * x_i`` (residual additions)."""

    coefficients: tuple[float, ...] = (1.0, 1.0)
    n_inputs: ClassVar[int] = 0

    def forward(self, xs, p):
        if len(xs) != len(self.coefficients):
            raise ShapeError(f"Sum has {len(self.coefficients)} coefficients but got {len(xs)} inputs.")
        out = xs[0] * self.coefficients[0] if self.coefficients[0] != 1.0 else xs[0]
        for c, x in zip(self.coefficients[1:], xs[1:]):
            out = out + (x * c if c != 1.0 else x)
        return out

    linear = forward

    def vjp(self, cot, p, in_shapes):
        return [cot * c if c != 1.0 else cot for c in self.coefficients]


@dataclass(frozen=True, repr=False, eq=False)
class Concat(AffineLayer):
    """Concatenation along per-sample axis ``dim`` (channel concatenation in Inception blocks: ``dim=0``)."""

    dim: int = 0
    n_inputs: ClassVar[int] = 0

    def _axis(self, ndim: int) -> int:
        return self.dim + 1 if self.dim >= 0 else ndim + self.dim

    def forward(self, xs, p):
        return torch.cat(list(xs), dim=self._axis(xs[0].dim()))

    linear = forward

    def vjp(self, cot, p, in_shapes):
        axis = self._axis(cot.dim())
        sizes = [s[axis - 1] for s in in_shapes]
        return list(torch.split(cot, sizes, dim=axis))


# ----------------------------------------------------------------------------------------------------------
# max-affine spline nonlinearities


def _per_channel(v: Tensor, rank: int) -> Tensor:
    """Broadcast a scalar or a per-channel ``(C,)`` vector over a per-sample shape of ``rank`` axes."""
    if v.dim() == 0:
        return v
    return v.reshape(v.shape[0], *([1] * (rank - 1)))


@dataclass(frozen=True, repr=False, eq=False)
class Elementwise(SplineLayer):
    r"""Unit-wise max-affine spline: each element ``u`` becomes ``sign * max_r sign * (slopes[r] u + intercepts[r])``.

    ``sign = +1`` (the default) is the convex max-affine spline; ``sign = -1`` selects the smallest piece
    instead (a leaky ReLU with slope above 1 is concave). ``slopes`` and ``intercepts`` have shape ``(R,)``
    or ``(R, C)`` for per-channel pieces (``nn.PReLU``); channels are the first per-sample axis.

    Parameters
    ----------
    slopes, intercepts : array of shape (R,) or (R, C)
    sign : float or array of shape (C,), default=1.0

    Examples
    --------
    >>> import numpy as np, maso
    >>> net = maso.Network.sequential((3,), [maso.layers.relu()])
    >>> net(np.array([-1.0, 0.0, 2.0])), net.codes(np.array([-1.0, 0.0, 2.0]))
    (array([0., 0., 2.]), array([0, 0, 1], dtype=uint8))

    Examples
    --------
    >>> pool = maso.layers.AvgPool(1, kernel_size=2, stride=2, padding=0)
    >>> maso.Network.sequential((1, 4), [pool])(np.array([[1.0, 3.0, 5.0, 7.0]]))
    array([[2., 6.]])

    Examples
    --------
    >>> pool = maso.layers.AdaptiveAvgPool(2, output_size=1)
    >>> maso.Network.sequential((1, 2, 2), [pool])(np.arange(4.0).reshape(1, 2, 2)).ravel()
    array([1.5])

    Examples
    --------
    >>> maso.Network.sequential((2, 3), [maso.layers.Mean((1,))])(np.arange(6.0).reshape(2, 3))
    array([1., 4.])

    Examples
    --------
    >>> maso.Network.sequential((2, 2), [maso.layers.Reshape((4,))]).output_shape
    (4,)

    Examples
    --------
    >>> maso.Network.sequential((4,), [maso.layers.Index((slice(1, 3),))])(np.arange(4.0))
    array([1., 2.])

    Examples
    --------
    >>> spec = [("twice", maso.layers.Sum((2.0, -1.0)), ["input", "input"])]
    >>> maso.Network.from_graph((2,), spec)(np.array([1.0, 2.0]))
    array([1., 2.])

    Examples
    --------
    >>> spec = [("cat", maso.layers.Concat(0), ["input", "input"])]
    >>> maso.Network.from_graph((2,), spec)(np.array([1.0, 2.0]))
    array([1., 2., 1., 2.])
    """

    slopes: np.ndarray
    intercepts: np.ndarray
    sign: Any = 1.0
    _kind: str = field(default="", init=False)

    def __post_init__(self) -> None:
        s = readonly(self.slopes)
        c = readonly(self.intercepts)
        sg = readonly(self.sign)
        if s.ndim not in (1, 2) or s.shape != c.shape or s.shape[0] < 1:
            raise ShapeError(
                f"Elementwise needs slopes and intercepts of one shape (R,) or (R, C). Got {s.shape}, {c.shape}."
            )
        if sg.ndim > 1 or (sg.ndim == 1 and (s.ndim != 2 or sg.shape[0] != s.shape[1])):
            raise ShapeError("Elementwise sign must be a scalar or one per channel (shape (C,) with slopes (R, C)). "
                             f"Got shape {sg.shape} with slopes {s.shape}.")
        if not np.all(np.abs(sg) == 1.0):
            raise ParameterShapeError(f"Elementwise sign must be +1 or -1. Got {sg.tolist()!r}.")
        object.__setattr__(self, "slopes", s)
        object.__setattr__(self, "intercepts", c)
        object.__setattr__(self, "sign", sg)
        kind = "generic"
        if s.ndim == 1 and sg.ndim == 0 and sg == 1 and s.shape[0] == 2 and not c.any():
            if s[0] == 0 and s[1] == 1:
                kind = "relu"
            elif s[0] == -1 and s[1] == 1:
                kind = "abs"
            elif s[1] == 1 and s[0] < 1:
                kind = "leaky"
        object.__setattr__(self, "_kind", kind)

    @property
    def n_pieces(self) -> int:
        return int(self.slopes.shape[0])

    @property
    def kind(self) -> str:
        """``"relu"``, ``"leaky"`` (slopes ``(a, 1)``, ``a < 1``), ``"abs"`` or ``"generic"``: which fast path
        applies (the special kinds have no intercepts and one sign)."""
        return self._kind

    def arrays(self):
        return {"slopes": self.slopes, "intercepts": self.intercepts, "sign": self.sign}

    def unit_signs(self, in_shape: Shape) -> np.ndarray:
        """The sign of every unit, ``(U,)`` for per-sample inputs of shape ``in_shape``."""
        return _pieces_per_unit(self.sign[None], in_shape)[0]

    def output_shape(self, in_shape: Shape) -> Shape:
        return tuple(in_shape)

    def piece_parameters(self, p: dict[str, Tensor], rank: int) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """Slopes and intercepts of each piece and the sign, on the device tensors ``p``, broadcastable
        against inputs ``(n, *in_shape)`` with ``len(in_shape) == rank``."""
        R = self.n_pieces
        s = [_per_channel(p["slopes"][r], rank) for r in range(R)]
        c = [_per_channel(p["intercepts"][r], rank) for r in range(R)]
        return s, c, _per_channel(p["sign"], rank)

    def forward(self, x, p, need_code):
        rank = x.dim() - 1
        if self._kind == "relu":
            return F.relu(x), (x > 0 if need_code else None)
        if self._kind == "leaky":
            return F.leaky_relu(x, float(self.slopes[0])), (x > 0 if need_code else None)
        if self._kind == "abs":
            return x.abs(), (x > 0 if need_code else None)
        s, c, sg = self.piece_parameters(p, rank)
        if self.n_pieces == 1:
            return s[0] * x + c[0], torch.zeros_like(x, dtype=torch.bool)
        if self.n_pieces == 2:
            l0 = s[0] * x + c[0]
            l1 = s[1] * x + c[1]
            code = sg * (l1 - l0) > 0
            return torch.where(code, l1, l0), code
        pieces = torch.stack([sr * x + cr for sr, cr in zip(s, c)], dim=-1)
        code = (pieces * sg.unsqueeze(-1) if sg.dim() else pieces * sg).argmax(dim=-1)
        return pieces.gather(-1, code.unsqueeze(-1)).squeeze(-1), code

    def code(self, x, p):
        # forward's code without its output (unless a subclass computes forward otherwise)
        if self._kind in ("relu", "leaky", "abs") and type(self).forward is Elementwise.forward:
            return x > 0
        return super().code(x, p)

    def public_code(self, icode, in_shape):
        return icode.to(torch.uint8) if icode.dtype == torch.bool else icode

    def write_public_code(self, out, icode, in_shape):
        # a bool code is its own piece index: cast by the copy itself (no uint8 temporary, one kernel fewer)
        own = icode.dtype == torch.bool and type(self).public_code is Elementwise.public_code
        out.copy_((icode if own else self.public_code(icode, in_shape)).reshape(out.shape))

    def code_is_positive_part(self) -> bool:
        """True when the public code is ``u > 0`` itself: a ReLU, leaky ReLU or abs whose class redefines none of
        its forward, code and public code (the code-row shortcuts step aside for a subclass that does)."""
        cls = type(self)
        return (self._kind in ("relu", "leaky", "abs") and cls.forward is Elementwise.forward
                and cls.code is Elementwise.code and cls.public_code is Elementwise.public_code
                and cls.write_public_code is Elementwise.write_public_code)

    def forward_into_code_rows(self, x, p, out, in_shape, need_output):
        if self.code_is_positive_part() and _positive_part_into_rows(x, out):
            return self.forward(x, p, False)[0] if need_output else None
        return super().forward_into_code_rows(x, p, out, in_shape, need_output)

    def _selected(self, icode, p, rank):
        if self._kind == "relu":  # slope 1 where active, 0 elsewhere; no intercepts
            s = icode.to(p["slopes"].dtype)
            return s, torch.zeros((), dtype=s.dtype, device=s.device)
        s, c, _ = self.piece_parameters(p, rank)
        if icode.dtype == torch.bool:
            return torch.where(icode, s[1], s[0]), torch.where(icode, c[1], c[0])
        ss = torch.zeros(icode.shape, dtype=s[0].dtype, device=icode.device)
        cc = torch.zeros_like(ss)
        for r in range(self.n_pieces):
            m = icode == r
            ss = torch.where(m, s[r], ss)
            cc = torch.where(m, c[r], cc)
        return ss, cc

    def frozen(self, x, icode, p, in_shape, bias):
        s, c = self._selected(icode, p, len(in_shape))
        y = x * s.unsqueeze(1)
        if bias and self._kind != "relu":  # ReLU pieces have no intercepts
            y = y + c.unsqueeze(1)
        return y

    def frozen_vjp(self, cot, icode, p, in_shape):
        s, _ = self._selected(icode, p, len(in_shape))
        return cot * s.unsqueeze(1)

    def facets(self, G, o, icode, p, in_shape):
        D = G.shape[0]
        rank = len(in_shape)
        g = G.reshape(D, -1).T
        u = o.reshape(-1)
        s, c, sg = self.piece_parameters(p, rank)
        S = torch.stack([torch.broadcast_to(v, in_shape).reshape(-1) for v in s])  # (R, U)
        Cc = torch.stack([torch.broadcast_to(v, in_shape).reshape(-1) for v in c])
        sgn = torch.broadcast_to(sg, in_shape).reshape(-1)
        q = icode.reshape(-1).long()
        units = torch.arange(u.shape[0], device=u.device)
        sq, cq = S[q, units], Cc[q, units]
        rows, rhs, unit_idx, piece = [], [], [], []
        for r in range(self.n_pieces):
            m = q != r
            ds = (S[r] - sq)[m] * sgn[m]
            dc = (Cc[r] - cq)[m] * sgn[m]
            rows.append(ds[:, None] * g[m])
            rhs.append(-(ds * u[m] + dc))
            unit_idx.append(units[m])
            piece.append(torch.full((int(m.sum()),), r, device=u.device))
        return torch.cat(rows), torch.cat(rhs), torch.cat(unit_idx), torch.cat(piece)

    def scores(self, G, o, in_shape):
        n, D = G.shape[:2]
        g = G.reshape(n, D, -1).transpose(1, 2)  # (n, U, D)
        u = o.reshape(n, -1)
        S = torch.from_numpy(_pieces_per_unit(self.slopes, in_shape).copy()).to(G)  # (R, U)
        C = torch.from_numpy(_pieces_per_unit(self.intercepts, in_shape).copy()).to(G)
        sg = torch.from_numpy(_pieces_per_unit(self.sign[None], in_shape)[0].copy()).to(G)
        P = (sg[:, None] * S.T)[None, :, :, None] * g[:, :, None, :]
        Q = sg[None, :, None] * (S.T[None] * u[:, :, None] + C.T[None])
        return P, Q

    def internal_code(self, code, in_shape):
        return code.bool() if self.n_pieces == 2 else code.long()

    def score_gap(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """``sign (l_1(x) - l_0(x))`` of two-piece units, in ``x``'s shape: positive where piece 1 wins."""
        if self._kind == "relu":
            return x
        s, c, sg = self.piece_parameters(p, x.dim() - 1)
        return sg * ((s[1] * x + c[1]) - (s[0] * x + c[0]))

    def piece_scores(self, x, p, in_shape):
        if self._kind == "relu" and x.shape[0] > 0:  # pieces {0, u}: no (n, 1, U) slope stack needed
            u = x.reshape(x.shape[0], math.prod(in_shape))
            return torch.stack([torch.zeros_like(u), u], dim=-1)
        return super().piece_scores(x, p, in_shape)

    def piece_probabilities(self, x, p, in_shape, temperature=None):
        if temperature is None or self.n_pieces != 2:
            return super().piece_probabilities(x, p, in_shape, temperature)
        # two pieces: the gate on the gap, each side computed directly (tiny probabilities keep full precision)
        t0, t1 = two_piece_probabilities("logistic", self.score_gap(x, p) / temperature)
        return torch.stack([t0, t1], dim=-1).reshape(x.shape[0], math.prod(in_shape), 2)

    def to_maso(self, W, b, in_shape):
        if np.any(self.sign != 1):
            raise ShapeError("A concave (sign=-1) unit has no max-affine form.")
        s = _pieces_per_unit(self.slopes, in_shape)
        c = _pieces_per_unit(self.intercepts, in_shape)
        A = s.T[:, :, None] * W[:, None, :]
        B = s.T * b[:, None] + c.T
        return A, B


def _pieces_per_unit(v: np.ndarray, in_shape: Shape) -> np.ndarray:
    """Expand per-piece values ``(R,)`` or per-channel ``(R, C)`` to one column per unit: ``(R, U)``."""
    R = v.shape[0]
    tail = (*v.shape[1:], *([1] * (len(in_shape) - v.ndim + 1)))
    return np.broadcast_to(v.reshape(R, *tail), (R, *in_shape)).reshape(R, -1)


def relu() -> Elementwise:
    """ReLU as a two-piece spline ``max(0, u)``; code 1 means active (``u > 0``).

    Examples
    --------
    >>> maso.layers.relu().n_pieces
    2
    """
    return Elementwise(np.array([0.0, 1.0]), np.array([0.0, 0.0]))


def leaky_relu(negative_slope: float = 0.01) -> Elementwise:
    """Leaky ReLU ``u if u > 0 else negative_slope * u``; code 1 means ``u > 0``.

    Examples
    --------
    >>> maso.layers.leaky_relu(0.1).slopes
    array([0.1, 1. ])
    """
    eta = float(negative_slope)
    return Elementwise(np.array([eta, 1.0]), np.array([0.0, 0.0]), sign=1.0 if eta <= 1 else -1.0)


def absolute() -> Elementwise:
    """Absolute value ``max(-u, u)``; code 1 means ``u > 0``.

    Examples
    --------
    >>> maso.layers.absolute().slopes
    array([-1.,  1.])
    """
    return Elementwise(np.array([-1.0, 1.0]), np.array([0.0, 0.0]))


_MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


@dataclass(frozen=True, repr=False, eq=False)
class MaxPool(SplineLayer):
    """Max-pooling (``torch.nn.MaxPool1d/2d/3d``); a unit's code is the argmax position in its window.

    Window positions are numbered in row-major order over the kernel, ``r = sum_j r_j * prod(kernel[j+1:])``,
    including positions that fall in the padding (which never win).

    Examples
    --------
    >>> net = maso.Network.sequential((1, 4), [maso.layers.MaxPool(1, kernel_size=2, stride=2)])
    >>> x = np.array([[1.0, 3.0, 5.0, 4.0]])
    >>> net(x), net.codes(x)
    (array([[3., 5.]]), array([1, 0], dtype=uint8))
    """

    ndim: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] = (0,)
    dilation: tuple[int, ...] = (1,)
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        nd = self.ndim
        object.__setattr__(self, "kernel_size", _tuple(self.kernel_size, nd))
        object.__setattr__(self, "stride", _tuple(self.stride or self.kernel_size, nd))
        object.__setattr__(self, "padding", _tuple(self.padding, nd))
        object.__setattr__(self, "dilation", _tuple(self.dilation, nd))

    @property
    def n_pieces(self) -> int:
        return math.prod(self.kernel_size)

    def forward(self, x, p, need_code):
        if not need_code:  # without the indices torch's pooling is much faster
            if self.ndim == 2 and x.device.type == "cpu" and self.stride == (1, 1) and x.dim() == 4:
                # torch's CPU kernel runs 1.5-2.5x faster on channels-last data for stride-1 windows
                # (Inception's 3x3 branch pools); a max has one value whatever the layout or tie order
                x = x.contiguous(memory_format=torch.channels_last)
                return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                    self.ceil_mode).contiguous(), None
            return _MAXPOOL[self.ndim](x, self.kernel_size, self.stride, self.padding, self.dilation,
                                       self.ceil_mode), None
        y, idx = _MAXPOOL[self.ndim](
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, return_indices=True
        )
        return y, idx

    def public_code(self, icode, in_shape):
        # torch gives the flat spatial index of the winner; its offset from the window's first position
        # identifies the window position through a small lookup table.
        tables = self._tables_on(icode, in_shape)
        if tables is None:
            return self._public_code_arith(icode, in_shape)
        start_t, lut_t = tables
        return lut_t[icode - start_t]

    def write_public_code(self, out, icode, in_shape):
        # the table lookup writes into the code rows itself (no temporary and copy: one kernel fewer)
        tables = self._tables_on(icode, in_shape) if type(self).public_code is MaxPool.public_code else None
        if tables is None or tables[1].dtype != out.dtype or out.device != icode.device:
            super().write_public_code(out, icode, in_shape)
            return
        start_t, lut_t = tables
        torch.take(lut_t, icode - start_t, out=out.view(icode.shape))

    def _tables_on(self, icode: Tensor, in_shape: Shape) -> tuple[Tensor, Tensor] | None:
        """`_window_tables` for codes ``icode`` ``(n, C, *out_spatial)``, as tensors on its device (the start
        shaped to broadcast against it), or None."""
        return _window_tables_on(self.kernel_size, self.stride, self.padding, self.dilation, tuple(in_shape[1:]),
                                 tuple(icode.shape[2:]), str(icode.device))

    def _public_code_arith(self, icode, in_shape):
        sp = in_shape[1:]
        out_sp = icode.shape[2:]
        rem = icode
        coords = []
        for size in reversed(sp):
            coords.append(rem % size)
            rem = torch.div(rem, size, rounding_mode="floor")
        coords = coords[::-1]
        r = torch.zeros_like(icode)
        for j in range(self.ndim):
            shape = [1] * icode.dim()
            shape[2 + j] = out_sp[j]
            start = (torch.arange(out_sp[j], device=icode.device) * self.stride[j] - self.padding[j]).reshape(shape)
            rj = torch.div(coords[j] - start, self.dilation[j], rounding_mode="floor")
            r = r * self.kernel_size[j] + rj
        return r

    def frozen(self, x, icode, p, in_shape, bias):
        n, T, C = x.shape[0], x.shape[1], x.shape[2]
        idx = icode.flatten(2).unsqueeze(1).expand(n, T, C, -1)
        return x.flatten(3).gather(-1, idx).reshape(n, T, C, *icode.shape[2:])

    def frozen_vjp(self, cot, icode, p, in_shape):
        n, m, C = cot.shape[0], cot.shape[1], cot.shape[2]
        idx = icode.flatten(2).unsqueeze(1).expand(n, m, C, -1)
        out = torch.zeros((n, m, C, math.prod(in_shape[1:])), dtype=cot.dtype, device=cot.device)
        out.scatter_add_(-1, idx, cot.flatten(3))
        return out.reshape(n, m, *in_shape)

    def windows(self, in_shape: Shape, out_spatial: Shape) -> np.ndarray:
        """Flat spatial input index of each window position, ``(n_out_positions, R)``; -1 in the padding."""
        per_dim = []
        for j in range(self.ndim):
            o = np.arange(out_spatial[j])[:, None] * self.stride[j] - self.padding[j]
            pos = o + np.arange(self.kernel_size[j])[None, :] * self.dilation[j]
            per_dim.append(pos)
        sp = in_shape[1:]
        grids_o = np.meshgrid(*[np.arange(s) for s in out_spatial], indexing="ij")
        grids_k = np.meshgrid(*[np.arange(k) for k in self.kernel_size], indexing="ij")
        L, R = int(np.prod(out_spatial)), self.n_pieces
        flat = np.zeros((L, R), dtype=np.int64)
        valid = np.ones((L, R), dtype=bool)
        for j in range(self.ndim):
            c = per_dim[j][grids_o[j].reshape(-1)[:, None], grids_k[j].reshape(-1)[None, :]]
            valid &= (c >= 0) & (c < sp[j])
            flat = flat * sp[j] + c
        flat[~valid] = -1
        return flat

    def facets(self, G, o, icode, p, in_shape):
        D = G.shape[0]
        C = in_shape[0]
        S = math.prod(in_shape[1:])
        out_sp = tuple(icode.shape[1:])
        L = math.prod(out_sp)
        win = torch.as_tensor(self.windows(in_shape, out_sp), device=G.device)  # (L, R)
        g = G.reshape(D, C * S).T
        u = o.reshape(-1)
        q = icode.reshape(C, L)  # flat spatial index of the winner
        cand = win.unsqueeze(0).expand(C, L, -1)
        chan = torch.arange(C, device=G.device).reshape(C, 1, 1) * S
        m = (cand >= 0) & (cand != q.unsqueeze(-1))
        ci, li, ri = torch.nonzero(m, as_tuple=True)
        cand_flat = (chan.reshape(C)[ci] + cand[ci, li, ri])
        q_flat = chan.reshape(C)[ci] + q[ci, li]
        rows = g[cand_flat] - g[q_flat]
        rhs = -(u[cand_flat] - u[q_flat])
        return rows, rhs, ci * L + li, ri

    def scores(self, G, o, in_shape):
        n, D = G.shape[:2]
        C = in_shape[0]
        out_sp = _maxpool_out_spatial(self, in_shape)
        win = torch.from_numpy(self.windows(in_shape, out_sp)).to(G.device)  # (L, R)
        L, R = win.shape
        safe = win.clamp(min=0)
        g = G.reshape(n, D, C, -1)[:, :, :, safe]  # (n, D, C, L, R)
        P = g.permute(0, 2, 3, 4, 1).reshape(n, C * L, R, D)
        Q = o.reshape(n, C, -1)[:, :, safe].reshape(n, C * L, R)
        missing = (win < 0).reshape(1, 1, L, R).expand(n, C, L, R).reshape(n, C * L, R)
        P = P.masked_fill(missing.unsqueeze(-1), 0.0)
        Q = Q.masked_fill(missing, float("-inf"))
        return P, Q

    def piece_scores(self, x, p, in_shape):
        # the scores alone: gathering and masking an (n, U, R, 1) stack of zero slopes cost as much again
        if x.shape[0] == 0:  # an empty batch: the shape of one sample's scores
            return self.piece_scores(x.new_zeros((1, *in_shape)), p, in_shape)[:0]
        n, C = x.shape[0], in_shape[0]
        win = _window_index(self, in_shape, x.device)  # (L, R)
        L, R = win.shape
        Q = x.reshape(n, C, -1)[:, :, win.clamp(min=0)].reshape(n, C * L, R)
        if bool((win < 0).any()):
            Q = Q.masked_fill((win < 0).reshape(1, 1, L, R).expand(n, C, L, R).reshape(n, C * L, R), float("-inf"))
        return Q

    def internal_code(self, code, in_shape):
        out_sp = tuple(code.shape[2:])
        win = torch.from_numpy(self.windows(in_shape, out_sp)).to(code.device)  # (L, R)
        L = win.shape[0]
        pos = torch.arange(L, device=code.device).reshape(1, 1, L)
        return win[pos, code.reshape(code.shape[0], code.shape[1], L).long()].reshape(code.shape)

    def to_maso(self, W, b, in_shape):
        C = in_shape[0]
        S = int(np.prod(in_shape[1:]))
        out_sp = _maxpool_out_spatial(self, in_shape)
        win = self.windows(in_shape, out_sp)
        L, R = win.shape
        D = W.shape[1]
        A = np.zeros((C * L, R, D))
        B = np.full((C * L, R), -np.inf)
        for c in range(C):
            for r in range(R):
                ok = win[:, r] >= 0
                A[c * L + np.nonzero(ok)[0], r] = W[c * S + win[ok, r]]
                B[c * L + np.nonzero(ok)[0], r] = b[c * S + win[ok, r]]
        return A, B


def _window_tables(kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, in_sp: Shape,
                   out_sp: Shape) -> tuple[np.ndarray, np.ndarray] | None:
    """Flat index of each window's first position (``(L,)``, may be negative) and a table from the offset
    ``winner - first`` to the window position; None when offsets are ambiguous (a window wider than its input)."""
    strides = [int(np.prod(in_sp[j + 1:])) for j in range(len(in_sp))]
    if any((kernel[j] - 1) * dilation[j] >= in_sp[j] for j in range(1, len(in_sp))):
        return None
    grids = np.meshgrid(*[np.arange(o) * s - p for o, s, p in zip(out_sp, stride, padding)], indexing="ij")
    # (np.asarray: the sums are arrays, but sum() starting at 0 is typed as possibly an int)
    start = np.asarray(sum(g.reshape(-1) * st for g, st in zip(grids, strides))).astype(np.int64)
    kgrid = np.meshgrid(*[np.arange(k) * d for k, d in zip(kernel, dilation)], indexing="ij")
    offsets = np.asarray(sum(g.reshape(-1) * st for g, st in zip(kgrid, strides))).astype(np.int64)
    n_pieces = int(np.prod(kernel))
    lut = np.zeros(int(offsets.max()) + 1, dtype=np.uint8 if n_pieces <= 255 else np.int64)
    lut[offsets] = np.arange(n_pieces)
    return start, lut


def _positive_part_into_rows(u: Tensor, out: Tensor) -> bool:
    """Write the codes ``u > 0`` straight into the uint8 code rows ``out`` ``(n, units)``, seen as bool (a uint8
    0/1 is a valid bool): one kernel where compare-then-copy takes two, each a launch on a GPU. False (nothing
    written) where the rows are not uint8 on ``u``'s device."""
    if out.dtype != torch.uint8 or out.device != u.device:
        return False
    torch.gt(u, 0, out=out.view(torch.bool).view(u.shape))
    return True


@functools.lru_cache(maxsize=64)
def _window_tables_on(kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, in_sp: Shape, out_sp: Shape,
                      device: str) -> tuple[Tensor, Tensor] | None:
    """`_window_tables` as tensors on ``device``, the start shaped ``(1, 1, *out_sp)``: made once per geometry
    and device, not copied to a GPU on every call."""
    tables = _window_tables(kernel, stride, padding, dilation, in_sp, out_sp)
    if tables is None:
        return None
    start, lut = tables
    return (torch.from_numpy(start).to(device).reshape(1, 1, *out_sp), torch.from_numpy(lut).to(device))


def _window_index(layer: MaxPool, in_shape: Shape, device: torch.device) -> Tensor:
    """`MaxPool.windows` for ``in_shape`` as a tensor on ``device`` (cached by the window geometry)."""
    return _window_index_of(layer.ndim, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                            layer.ceil_mode, tuple(in_shape), str(device))


@functools.lru_cache(maxsize=64)
def _window_index_of(ndim: int, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, ceil_mode: bool,
                     in_shape: Shape, device: str) -> Tensor:
    layer = MaxPool(ndim, kernel, stride, padding, dilation, ceil_mode)
    return torch.from_numpy(layer.windows(in_shape, _maxpool_out_spatial(layer, in_shape))).to(device)


def _maxpool_out_spatial(layer: MaxPool, in_shape: Shape) -> Shape:
    x = torch.zeros((1, *in_shape), dtype=torch.float64)
    y, _ = layer.forward(x, {}, True)
    return tuple(y.shape[2:])


@dataclass(frozen=True, repr=False, eq=False)
class Maxout(SplineLayer):
    """Maxout: channels ``[c*R, (c+1)*R)`` of the input compete for output channel ``c``; code = winner.

    Channels are the first per-sample axis, so ``(C*R, ...)`` becomes ``(C, ...)``. The matching torch
    module is [`maso.nn.Maxout`][].

    Examples
    --------
    >>> net = maso.Network.sequential((4,), [maso.layers.Maxout(2)])
    >>> x = np.array([1.0, 3.0, -1.0, -2.0])
    >>> net(x), net.codes(x)
    (array([ 3., -1.]), array([1, 0], dtype=uint8))
    """

    pieces: int

    def __post_init__(self) -> None:
        if int(self.pieces) < 1:
            raise ParameterShapeError(f"Maxout needs pieces >= 1. Got {self.pieces}.")
        object.__setattr__(self, "pieces", int(self.pieces))

    @property
    def n_pieces(self) -> int:
        return self.pieces

    def output_shape(self, in_shape: Shape) -> Shape:
        return (in_shape[0] // self.pieces, *in_shape[1:])

    def _split(self, x, lead):
        C = x.shape[lead] // self.pieces
        return x.reshape(*x.shape[:lead], C, self.pieces, *x.shape[lead + 1:])

    def forward(self, x, p, need_code):
        v = self._split(x, 1)
        idx = v.argmax(dim=2)
        return v.gather(2, idx.unsqueeze(2)).squeeze(2), idx

    def frozen(self, x, icode, p, in_shape, bias):
        v = self._split(x, 2)
        idx = icode.unsqueeze(1).unsqueeze(3).expand(v.shape[0], v.shape[1], v.shape[2], 1, *v.shape[4:])
        return v.gather(3, idx).squeeze(3)

    def frozen_vjp(self, cot, icode, p, in_shape):
        n, m = cot.shape[:2]
        out = torch.zeros((n, m, cot.shape[2], self.pieces, *cot.shape[3:]), dtype=cot.dtype, device=cot.device)
        out.scatter_(3, icode.unsqueeze(1).unsqueeze(3).expand(n, m, *icode.shape[1:2], 1, *icode.shape[2:]),
                     cot.unsqueeze(3))
        return out.reshape(n, m, *in_shape)

    def facets(self, G, o, icode, p, in_shape):
        D = G.shape[0]
        R = self.pieces
        C = in_shape[0] // R
        L = math.prod(in_shape[1:])
        g = G.reshape(D, C, R, L)
        u = o.reshape(C, R, L)
        q = icode.reshape(C, L)
        ci, ri, li = torch.nonzero(torch.arange(R, device=G.device).reshape(1, R, 1) != q.unsqueeze(1),
                                   as_tuple=True)
        rows = (g[:, ci, ri, li] - g[:, ci, q[ci, li], li]).T
        rhs = -(u[ci, ri, li] - u[ci, q[ci, li], li])
        return rows, rhs, ci * L + li, ri

    def scores(self, G, o, in_shape):
        n, D = G.shape[:2]
        R = self.pieces
        C = in_shape[0] // R
        g = G.reshape(n, D, C, R, -1)  # (n, D, C, R, L)
        P = g.permute(0, 2, 4, 3, 1).reshape(n, -1, R, D)
        Q = o.reshape(n, C, R, -1).permute(0, 1, 3, 2).reshape(n, -1, R)
        return P, Q

    def to_maso(self, W, b, in_shape):
        R = self.pieces
        C = in_shape[0] // R
        L = int(np.prod(in_shape[1:]))
        Wr = W.reshape(C, R, L, -1).transpose(0, 2, 1, 3).reshape(C * L, R, -1)
        Br = b.reshape(C, R, L).transpose(0, 2, 1).reshape(C * L, R)
        return Wr.copy(), Br.copy()


@dataclass(frozen=True, repr=False, eq=False)
class MASOLayer(SplineLayer):
    r"""A max-affine spline operator in canonical dense form, acting on vectors.

    .. math:: y_k = \max_{r} \left( \langle A_{k,r}, x\rangle + B_{k,r} \right),\qquad q_k = \arg\max_r(\cdot)

    Parameters
    ----------
    A : array of shape (n_units, n_pieces, d_in)
        Slopes.
    B : array of shape (n_units, n_pieces)
        Offsets; ``-inf`` marks a piece a unit does not have.

    Examples
    --------
    >>> import numpy as np, maso
    >>> layer = maso.layers.MASOLayer(A=np.array([[[0.0], [1.0]]]), B=np.zeros((1, 2)))  # one ReLU unit
    >>> net = maso.Network.sequential((1,), [layer])
    >>> net(np.array([[-2.0], [3.0]])).ravel(), net.codes(np.array([[-2.0], [3.0]])).ravel()
    (array([0., 3.]), array([0, 1], dtype=uint8))
    """

    A: np.ndarray
    B: np.ndarray

    def __post_init__(self) -> None:
        A = readonly(self.A)
        B = readonly(self.B)
        if A.ndim != 3 or B.shape != A.shape[:2]:
            raise ShapeError(
                f"MASOLayer needs A of shape (n_units, n_pieces, d_in) and B of shape (n_units, n_pieces). "
                f"Got {A.shape} and {B.shape}."
            )
        if not np.all(np.isfinite(A)) or np.any(np.isnan(B)) or np.any(B == np.inf):
            raise ParameterShapeError("MASOLayer slopes must be finite and offsets finite or -inf.")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "B", B)

    @property
    def n_pieces(self) -> int:
        return int(self.A.shape[1])

    def arrays(self):
        return {"A": self.A, "B": self.B}

    def forward(self, x, p, need_code):
        scores = torch.einsum("nd,krd->nkr", x, p["A"]) + p["B"]
        q = scores.argmax(dim=-1)
        return scores.gather(-1, q.unsqueeze(-1)).squeeze(-1), q

    def frozen(self, x, icode, p, in_shape, bias):
        K = icode.shape[1]
        Aq = p["A"][torch.arange(K, device=icode.device), icode]  # (n, K, d)
        y = torch.einsum("ntd,nkd->ntk", x, Aq)
        if bias:
            y = y + p["B"][torch.arange(K, device=icode.device), icode].unsqueeze(1)
        return y

    def frozen_vjp(self, cot, icode, p, in_shape):
        K = icode.shape[1]
        Aq = p["A"][torch.arange(K, device=icode.device), icode]
        return torch.einsum("nmk,nkd->nmd", cot, Aq)

    def facets(self, G, o, icode, p, in_shape):
        A, B = p["A"], p["B"]
        K, R, _ = A.shape
        q = icode.reshape(K)
        ki, ri = torch.nonzero(torch.arange(R, device=G.device).reshape(1, R) != q.reshape(K, 1), as_tuple=True)
        dA = A[ki, ri] - A[ki, q[ki]]
        dB = B[ki, ri] - B[ki, q[ki]]
        keep = torch.isfinite(dB)
        dA, dB, ki, ri = dA[keep], dB[keep], ki[keep], ri[keep]
        return dA @ G.T, -(dA @ o + dB), ki, ri

    def scores(self, G, o, in_shape):
        A = torch.from_numpy(np.array(self.A)).to(G)
        B = torch.from_numpy(np.array(self.B)).to(G)
        P = torch.einsum("krj,nDj->nkrD", A, G)
        Q = torch.einsum("krj,nj->nkr", A, o) + B
        return P, Q

    def to_maso(self, W, b, in_shape):
        return self.A @ W, self.A @ b + self.B
