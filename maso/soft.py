"""Soft (probabilistic) spline codes: smooth activations as soft vector quantisation of a MASO.

A hard max-affine spline unit picks the piece with the largest score ``l_r(u)``. A *soft* unit draws the
piece at random with probabilities ``t_r(u)`` and outputs the expected piece value ``sum_r t_r l_r(u)``
(Balestriero & Baraniuk, "From Hard to Soft", 2018). With ``t = softmax(l / tau)`` this is the β-VQ of
the paper (``tau = (1 - beta) / beta``): ReLU pieces ``{0, u}`` give ``u * sigmoid(u / tau)`` (SiLU at
``beta = 1/2``), abs pieces ``{-u, u}`` give ``u * tanh(u / tau)``, max-pooling gives soft-max pooling.
Two-piece units also take the probit gate ``Phi(d / tau)`` (``d = l_1 - l_0``, the score gap) which makes
GELU exactly ``u * Phi(u)``, and GPT-2's tanh gate which makes ``gelu_new`` exactly ``u * p(u)``. Sigmoid
and tanh units are the soft *codes* themselves: the expected value of a piece label (0/1, or -1/+1).

What is exact and what is an interpretation
-------------------------------------------
* Exact: every unit's output equals ``sum_r t_r(u) l_r(u)`` (to float rounding) for the stated gate, and
  ``t`` is a probability vector; the hard code (the most probable piece) is the piece with the largest score,
  i.e. ``u > 0`` for ReLU-like units. Composing each unit's expected affine piece gives an affine map that
  reproduces the network at the input ([`maso.Network.expected_affine_at`][]); it equals the expectation of
  the hard region maps over codes drawn independently per unit from ``t`` at that input.
* Interpretation: reading ``t`` as the probability of "being in a region" of the hard network. The expected
  map is not the Jacobian (the gates' own derivatives are left out), and the network has no polytopes: region
  enumeration, slices and exact paths need piecewise-linear networks (use [`harden`][maso.soft.harden] for the
  ``tau -> 0`` limit).

Examples
--------
>>> import numpy as np, torch, maso
>>> model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.GELU(), torch.nn.Linear(4, 1)).double()
>>> net = maso.from_torch(model, torch.zeros(1, 2, dtype=torch.float64))
>>> x = np.array([0.3, -0.7])
>>> p = net.soft_codes(x)                # (n_units, 2): P(piece 0), P(piece 1) per unit
>>> bool(np.allclose(p.sum(-1), 1)), net.codes(x).shape
(True, (4,))
>>> f = net.expected_affine_at(x)        # the soft-code-weighted affine map at x
>>> bool(np.allclose(f(x), net(x)))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import torch

from maso import _gates
from maso.errors import ParameterError, ParameterShapeError, ShapeError, UnsupportedLayerError
from maso.layers import Elementwise, Maxout, MaxPool, SplineLayer, _positive_part_into_rows, absolute, relu

__all__ = [
    "GATES",
    "Soft",
    "beta_vq",
    "gelu",
    "harden",
    "sigmoid",
    "silu",
    "soften",
    "tanh",
    "temperature_of",
]

Tensor = torch.Tensor
Shape = tuple[int, ...]

GATES = _gates.GATES
"""The gates of [`Soft`][maso.soft.Soft]: how a unit's piece probabilities follow from its piece scores."""


def temperature_of(beta: float) -> float:
    """The softmax temperature ``tau = (1 - beta) / beta`` of the β-VQ with mixing weight ``beta``.

    Parameters
    ----------
    beta : float in (0, 1)
        1 is hard VQ (the MASO), 1/2 plain soft VQ, 0 the uniform mixture ("linear" inference).

    Raises
    ------
    ParameterError
        If ``beta`` is not a finite number strictly between 0 and 1.

    Examples
    --------
    >>> maso.soft.temperature_of(0.5), maso.soft.temperature_of(0.8)
    (1.0, 0.25)
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not 0 < float(beta) < 1:
        raise ParameterError(f"beta must be a number strictly between 0 and 1 (1 = hard, 0 = linear). Got {beta!r}.")
    beta = float(beta)
    return (1.0 - beta) / beta


_FUSED: dict[str, Callable[[Tensor], Tensor]] = {
    "logistic": torch.nn.functional.silu,
    "probit": torch.nn.functional.gelu,
    "tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
}


@dataclass(frozen=True, repr=False, eq=False)
class Soft(SplineLayer):
    """A soft spline layer: the hard spline layer ``base`` with its argmax replaced by piece probabilities.

    Each unit with piece scores ``l_r(u)`` (those of ``base``) has probabilities ``t_r`` given by ``gate``:

    * ``"logistic"``: ``t = softmax(l / temperature)`` (any number of pieces; β-VQ with
      ``temperature = (1 - beta) / beta``);
    * ``"probit"``: ``t_1 = Phi((l_1 - l_0) / temperature)`` (two pieces; GELU at temperature 1);
    * ``"tanh"``: ``t_1 = (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))) / 2`` with ``v = (l_1 - l_0) / temperature``
      (two pieces; GPT-2's ``gelu_new`` at temperature 1).

    The output is ``sum_r t_r l_r`` (the soft MASO), or ``sum_r t_r readout[r]`` when ``readout`` gives a value
    per piece (sigmoid: ``(0, 1)``, tanh: ``(-1, 1)``, the expected piece label). The hard code is ``base``'s.

    Parameters
    ----------
    base : Elementwise, MaxPool or Maxout
    gate : {"logistic", "probit", "tanh"}, default="logistic"
    temperature : float > 0, default=1.0
    readout : array of shape (R,), optional
        Only for an [`Elementwise`][maso.layers.Elementwise] base.

    Raises
    ------
    ParameterError
        Unknown gate, temperature not > 0, a probit/tanh gate on units with more than two pieces.
    ShapeError
        A ``readout`` that is not one finite value per piece.

    Examples
    --------
    >>> silu = maso.soft.Soft(maso.layers.relu(), "logistic", 1.0)
    >>> net = maso.Network.sequential((3,), [silu])
    >>> u = np.array([-1.0, 0.0, 2.0])
    >>> bool(np.allclose(net(u), u / (1 + np.exp(-u)))), net.codes(u)
    (True, array([0, 0, 1], dtype=uint8))
    """

    is_soft = True

    base: SplineLayer
    gate: str = "logistic"
    temperature: float = 1.0
    readout: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.base, (Elementwise, MaxPool, Maxout)):
            raise UnsupportedLayerError(
                f"Soft needs an Elementwise, MaxPool or Maxout base layer; got {type(self.base).__name__}.",
                kind=type(self.base).__name__)
        if self.gate not in GATES:
            raise ParameterError(f"gate must be one of {GATES}; got {self.gate!r}.")
        object.__setattr__(self, "temperature", _gates.check_temperature(self.temperature))
        if self.gate != "logistic" and self.base.n_pieces != 2:
            raise ParameterError(
                f"The {self.gate!r} gate is defined for two-piece units only (its probability is a function of "
                f"the gap l_1 - l_0); this base has {self.base.n_pieces} pieces. Use gate='logistic' (softmax).")
        if self.readout is not None:
            if not isinstance(self.base, Elementwise):
                raise ShapeError("readout values are supported for Elementwise bases only.")
            v = np.array(self.readout, dtype=np.float64)
            if v.shape != (self.base.n_pieces,):
                raise ShapeError(f"readout needs one value per piece, shape ({self.base.n_pieces},); "
                                 f"got {np.shape(self.readout)}.")
            if not np.all(np.isfinite(v)):
                raise ParameterShapeError(f"readout values must be finite; got {v.tolist()!r}.")
            v.setflags(write=False)
            object.__setattr__(self, "readout", v)

    def __repr__(self) -> str:
        extra = "" if self.readout is None else f", readout={self.readout.tolist()}"
        return f"Soft(base={self.base!r}, gate={self.gate!r}, temperature={self.temperature:g}{extra})"

    @property
    def n_pieces(self) -> int:
        return self.base.n_pieces

    def arrays(self):
        return self.base.arrays()

    # -- pieces and probabilities ------------------------------------------------------------------------
    def _out_shape(self, in_shape: Shape) -> Shape:
        return self.base.output_shape(in_shape)

    def _scores(self, x: Tensor, in_shape: Shape) -> Tensor:
        """Signed piece scores ``(n, U, R)`` at inputs ``x`` (``-inf`` for pieces a unit lacks)."""
        return self.base.piece_scores(x, {}, in_shape)

    def _sign(self, x: Tensor, in_shape: Shape) -> Tensor | float:
        if isinstance(self.base, Elementwise) and np.any(self.base.sign != 1):
            return torch.from_numpy(self.base.unit_signs(in_shape).copy()).to(x)[:, None]
        return 1.0

    def probabilities(self, x: Tensor, in_shape: Shape) -> Tensor:
        """Piece probabilities ``(n, U, R)`` at layer inputs ``x`` of shape ``(n, *in_shape)``."""
        return _gates.probabilities_from_scores(self.gate, self._scores(x, in_shape), self.temperature)

    def _mix(self, x: Tensor, t: Tensor, in_shape: Shape, bias: bool) -> Tensor:
        """``sum_r t_r l_r(x)`` for inputs ``(m, *in_shape)``; with ``bias=False`` the pieces' linear parts only."""
        if self.readout is not None:
            v = torch.as_tensor(np.array(self.readout), dtype=x.dtype, device=x.device)
            y = (t * v).sum(-1) if bias else torch.zeros(t.shape[:-1], dtype=x.dtype, device=x.device)
            return y
        sg = self._sign(x, in_shape)
        L = sg * self._scores(x, in_shape)  # piece values
        if not bias:
            L = L - sg * self._scores(torch.zeros_like(x[:1]), in_shape)
        L = torch.where(t > 0, L, torch.zeros_like(L))  # absent pieces (-inf) have probability 0
        return (t * L).sum(-1)

    # -- two-piece elementwise units: the hot path (GELU/SiLU MLPs), no (n, U, R) stacks ---------------------
    def _two_piece(self) -> bool:
        return isinstance(self.base, Elementwise) and self.base.n_pieces == 2

    def _pieces_and_gap(self, x: Tensor, p: dict[str, Tensor]) -> tuple[Tensor | None, Tensor, Tensor]:
        """Pieces ``l_0`` (None for ReLU's zero piece), ``l_1`` and the tempered score gap
        ``d = sign (l_1 - l_0) / tau`` of a two-piece elementwise base."""
        base = self.base
        assert isinstance(base, Elementwise)  # only two-piece elementwise bases come here (`_two_piece`)
        if base.kind == "relu":
            l0, l1, d = None, x, x
        else:
            s, c, sg = base.piece_parameters(p, x.dim() - 1)
            l0, l1 = s[0] * x + c[0], s[1] * x + c[1]
            d = sg * (l1 - l0)
        if self.temperature != 1.0:
            d = d / self.temperature
        return l0, l1, d

    def _gap_and_output(self, x: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Tempered score gap ``d = sign (l_1 - l_0) / tau`` and the output ``l_0 + P(piece 1) (l_1 - l_0)``."""
        l0, l1, d = self._pieces_and_gap(x, p)
        p1 = _gates.upper_probability(self.gate, d)
        if self.readout is not None:
            v0, v1 = float(self.readout[0]), float(self.readout[1])
            y = p1 if (v0, v1) == (0.0, 1.0) else v0 + (v1 - v0) * p1
        elif l0 is None:
            y = x * p1  # ReLU pieces {0, u}: u * p(u), the form torch uses for SiLU and GELU
        else:
            y = l0 + p1 * (l1 - l0)
        return d, y

    def _expected_piece(self, t: Tensor, p: dict[str, Tensor], in_shape: Shape) -> tuple[Tensor, Tensor | None]:
        """Expected slope and intercept ``(n, *in_shape)`` of elementwise units with probabilities ``t``; the
        intercept is None where it is 0 for every unit (ReLU pieces)."""
        tt = t.reshape(t.shape[0], *in_shape, t.shape[-1])
        if self.readout is not None:
            v = torch.as_tensor(np.array(self.readout), dtype=t.dtype, device=t.device)
            return torch.zeros_like(tt[..., 0]), (tt * v).sum(-1)
        assert isinstance(self.base, Elementwise)  # the callers ask only for an elementwise base
        if self.base.kind == "relu":  # pieces 0 and u: the slope is P(active), exactly, and no intercept
            return tt[..., 1], None
        s, c, _ = self.base.piece_parameters(p, len(in_shape))
        slope = sum(tt[..., r] * s[r] for r in range(len(s)))
        icpt = sum(tt[..., r] * c[r] for r in range(len(c)))
        # sums of R >= 1 tensors are tensors (sum() starts at 0, which types them as possibly an int)
        return cast(Tensor, slope), cast(Tensor, icpt)

    # -- SplineLayer interface -----------------------------------------------------------------------------
    def _fused(self) -> Callable[[Tensor], Tensor] | None:
        """torch's own kernel for ``u * p(u)`` (SiLU, GELU), where this layer is exactly that function."""
        if getattr(self.base, "kind", "") == "relu" and self.temperature == 1.0 and self.readout is None:
            return _FUSED.get(self.gate)
        return None

    def code(self, x, p):
        # forward's code without the output: the hard code is the base's piece
        if type(self).forward is not Soft.forward:  # a subclass's own forward decides
            return super().code(x, p)
        if self._fused() is not None:
            return x > 0
        if self._two_piece():
            return self._pieces_and_gap(x, p)[2] > 0
        return self.base.code(x, p)

    def forward(self, x, p, need_code):
        in_shape = tuple(x.shape[1:])
        fused = self._fused()
        if fused is not None:  # torch's own kernel for u * p(u): same function, one pass
            return fused(x), (x > 0 if need_code else None)
        if self._two_piece():
            d, y = self._gap_and_output(x, p)
            return y, (d > 0 if need_code else None)
        t = self.probabilities(x, in_shape)
        y = self._mix(x, t, in_shape, True).reshape(x.shape[0], *self._out_shape(in_shape))
        code = self.base.forward(x, p, True)[1] if need_code else None
        return y, code

    def expected_forward(self, x: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Output and piece probabilities ``(n, U, R)``."""
        in_shape = tuple(x.shape[1:])
        if self._two_piece():
            d, y = self._gap_and_output(x, p)
            return y, self._two_piece_probabilities(d)
        t = self.probabilities(x, in_shape)
        return self._mix(x, t, in_shape, True).reshape(x.shape[0], *self._out_shape(in_shape)), t

    def expected_code(self, x, p):
        # expected_forward's probabilities without its output (a GPT-2 block's soft codes need no GELU)
        if type(self).expected_forward is not Soft.expected_forward:  # a subclass's own expectation decides
            return self.expected_forward(x, p)[1]
        if self._two_piece():
            return self._two_piece_probabilities(self._pieces_and_gap(x, p)[2])
        return self.probabilities(x, tuple(x.shape[1:]))

    def _two_piece_probabilities(self, d: Tensor) -> Tensor:
        """Piece probabilities ``(n, U, 2)`` of two-piece units from their tempered gaps ``d`` ``(n, *in_shape)``."""
        return _gates.two_piece_stacked(self.gate, d).reshape(d.shape[0], math.prod(d.shape[1:]), 2)

    def piece_probabilities(self, x, p, in_shape, temperature=None):
        # the gate re-evaluated at another temperature on the same pre-activations (the layer is not changed)
        layer = self if temperature is None else replace(self, temperature=temperature)
        return layer.expected_code(x, p)

    def public_code(self, icode, in_shape):
        return self.base.public_code(icode, in_shape)

    def write_public_code(self, out, icode, in_shape):
        if type(self).public_code is not Soft.public_code:  # a subclass's own public code
            super().write_public_code(out, icode, in_shape)
            return
        self.base.write_public_code(out, icode, in_shape)

    def forward_into_code_rows(self, x, p, out, in_shape, need_output):
        # a fused SiLU/GELU's code is u > 0, compared straight into the code rows (as a ReLU's is)
        own = (type(self).forward is Soft.forward and type(self).code is Soft.code
               and type(self).public_code is Soft.public_code
               and type(self).write_public_code is Soft.write_public_code and self._fused() is not None
               and isinstance(self.base, Elementwise) and self.base.code_is_positive_part())
        if own and _positive_part_into_rows(x, out):
            return self.forward(x, p, False)[0] if need_output else None
        return super().forward_into_code_rows(x, p, out, in_shape, need_output)

    def internal_code(self, code, in_shape):
        return self.base.internal_code(code, in_shape)

    def frozen(self, x, icode, p, in_shape, bias):
        # icode: piece probabilities (n, U, R); every unit is frozen on its expected affine piece.
        if isinstance(self.base, Elementwise):
            slope, icpt = self._expected_piece(icode, p, in_shape)
            y = x * slope.unsqueeze(1)
            return y + icpt.unsqueeze(1) if bias and icpt is not None else y
        n, T = x.shape[:2]
        X = x.reshape(n * T, *in_shape)
        t = icode.repeat_interleave(T, dim=0)
        return self._mix(X, t, in_shape, bias).reshape(n, T, *self._out_shape(in_shape))

    def frozen_vjp(self, cot, icode, p, in_shape):
        n, m = cot.shape[:2]
        if isinstance(self.base, Elementwise):
            return cot * self._expected_piece(icode, p, in_shape)[0].unsqueeze(1)
        x = torch.zeros((n, m, *in_shape), dtype=cot.dtype, device=cot.device, requires_grad=True)
        if x.numel() == 0:  # an empty batch (or no cotangent): nothing to pull back, and autograd has no graph
            return x.detach()
        with torch.enable_grad():
            y = self.frozen(x, icode, p, in_shape, False)
            (g,) = torch.autograd.grad(y, x, cot)
        return g

    def _not_exact(self, what: str):
        return UnsupportedLayerError(
            f"{what} needs a piecewise-linear network; this {self!r} is smooth. Use maso.soft.harden(net) for "
            "its hard (temperature -> 0) limit, or the soft tools (soft_codes, expected_affine_at).",
            kind="Soft")

    def facets(self, G, o, icode, p, in_shape):
        raise self._not_exact("Region facets")

    def scores(self, G, o, in_shape):
        raise self._not_exact("Exact geometry")

    def to_maso(self, W, b, in_shape):
        raise self._not_exact("The canonical MASO form")


# -------------------------------------------------------------------------------------------- constructors
def beta_vq(base: SplineLayer, beta: float) -> Soft:
    """The β-VQ soft version of a hard spline layer: piece probabilities ``softmax(beta / (1 - beta) * l)``.

    Examples
    --------
    >>> layer = maso.soft.beta_vq(maso.layers.absolute(), 0.5)      # u * tanh(u)
    >>> net = maso.Network.sequential((1,), [layer])
    >>> bool(np.isclose(net(np.array([0.7]))[0], 0.7 * np.tanh(0.7)))
    True
    """
    return Soft(base, "logistic", temperature_of(beta))


def gelu(approximate: str = "none", temperature: float = 1.0) -> Soft:
    """GELU ``u * Phi(u / temperature)`` as the probit soft code of ReLU; ``approximate="tanh"`` is GPT-2's gate.

    Examples
    --------
    >>> net = maso.Network.sequential((2,), [maso.soft.gelu()])
    >>> u = torch.tensor([-0.5, 1.5], dtype=torch.float64)
    >>> bool(torch.allclose(net(u), torch.nn.functional.gelu(u), rtol=1e-15, atol=0))
    True
    """
    if approximate not in ("none", "tanh"):
        raise ParameterError(f"approximate must be 'none' or 'tanh' (as in torch.nn.GELU); got {approximate!r}.")
    return Soft(relu(), "probit" if approximate == "none" else "tanh", temperature)


def silu(beta: float = 0.5) -> Soft:
    """SiLU / swish ``u * sigmoid(beta / (1 - beta) * u)``: the β-VQ of ReLU (``beta = 1/2``: plain SiLU).

    Examples
    --------
    >>> net = maso.Network.sequential((2,), [maso.soft.silu()])
    >>> u = torch.tensor([-2.0, 1.0], dtype=torch.float64)
    >>> bool(torch.allclose(net(u), torch.nn.functional.silu(u), rtol=1e-15, atol=0))
    True
    """
    return beta_vq(relu(), beta)


def sigmoid() -> Soft:
    """The logistic sigmoid as the soft code of ReLU: the probability ``sigmoid(u)`` that the unit is active.

    Examples
    --------
    >>> net = maso.Network.sequential((1,), [maso.soft.sigmoid()])
    >>> bool(np.isclose(net(np.array([0.3]))[0], 1 / (1 + np.exp(-0.3))))
    True
    """
    return Soft(relu(), "logistic", 1.0, readout=(0.0, 1.0))


def tanh() -> Soft:
    """tanh as the expected sign of an abs unit (pieces ``{-u, u}``): ``E[±1] = 2 sigmoid(2u) - 1 = tanh(u)``.

    Examples
    --------
    >>> net = maso.Network.sequential((1,), [maso.soft.tanh()])
    >>> bool(np.isclose(net(np.array([0.3]))[0], np.tanh(0.3)))
    True
    """
    return Soft(absolute(), "logistic", 1.0, readout=(-1.0, 1.0))


# ---------------------------------------------------------------------------------------- whole networks
def _replace_layers(net: Any, fn: Any, caller: str) -> Any:
    from maso.core.network import Network, Node

    if not isinstance(net, Network):
        raise ShapeError(f"{caller} needs a maso.Network (e.g. from maso.from_torch). Got {type(net).__name__}.")
    nodes = [net.nodes[0]] + [Node(n.name, fn(n), n.inputs, n.shape, n.source) for n in net.nodes[1:]]
    return Network(nodes, net.program.output)


def soften(net: Any, *, beta: float | None = None, temperature: float | None = None,
           gate: str = "logistic") -> Any:
    """Replace every hard spline layer of ``net`` by its soft version (β-VQ by default).

    Give ``beta`` (in (0, 1)) or ``temperature`` (> 0). Layers that are soft already are kept. ``beta -> 1``
    recovers ``net``; ``beta -> 0`` replaces each unit by the mean of its pieces (a linear network for
    two-piece units).

    Examples
    --------
    >>> net = maso.mlp([2, 4, 1], seed=0)
    >>> x = np.array([0.1, 0.2])
    >>> bool(np.allclose(maso.soft.soften(net, beta=1 - 1e-9)(x), net(x)))
    True
    """
    if (beta is None) == (temperature is None):
        raise ParameterError("soften needs exactly one of beta or temperature.")
    tau = temperature_of(beta) if beta is not None else _gates.check_temperature(temperature)

    def swap(node):
        layer = node.layer
        if isinstance(layer, SplineLayer) and not layer.is_soft:
            if not isinstance(layer, (Elementwise, MaxPool, Maxout)):
                raise UnsupportedLayerError(f"soften: layer {node.name!r} ({type(layer).__name__}) has no soft "
                                            "version.", kind=type(layer).__name__, path=node.name)
            return Soft(layer, gate, tau)
        return layer

    return _replace_layers(net, swap, "soften")


def harden(net: Any) -> Any:
    """The ``temperature -> 0`` limit of a soft network: every soft layer replaced by its hard base.

    GELU, SiLU and β-VQ units become their hard MASO (ReLU, abs, max-pool...), so the result is piecewise
    linear and every exact tool applies to it. Its codes are the soft network's codes only where both
    networks agree on the pre-activations (the first spline layer, in general).

    Raises
    ------
    UnsupportedLayerError
        For sigmoid/tanh units: their limit is a step function, which is not continuous.

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.SiLU(), torch.nn.Linear(3, 1)).double()
    >>> soft_net = maso.from_torch(model, torch.zeros(1, 2, dtype=torch.float64))
    >>> hard_net = maso.soft.harden(soft_net)
    >>> hard_net.is_piecewise_linear, soft_net.is_piecewise_linear
    (True, False)
    """

    def swap(node):
        layer = node.layer
        if isinstance(layer, Soft):
            if layer.readout is not None:
                raise UnsupportedLayerError(
                    f"harden: {node.name!r} is a sigmoid/tanh-like unit whose hard limit is a step function "
                    "(discontinuous, no max-affine form).", kind="Soft", path=node.name)
            return layer.base
        return layer

    return _replace_layers(net, swap, "harden")

