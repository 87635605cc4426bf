"""Gates: how a unit's piece probabilities follow from its piece scores.

Shared by the hard layers (their tempered soft codes, ``Network.soft_codes(temperature=...)``) and the soft
layers of [`maso.soft`][]; it sits below both so that neither imports the other.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from maso.errors import ParameterError

Tensor = torch.Tensor

GATES = ("logistic", "probit", "tanh")

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)
_GELU_NEW_CUBIC = 0.044715


def check_temperature(tau: Any) -> float:
    """``tau`` as a float, or a [`ParameterError`][maso.errors.ParameterError] unless it is finite and > 0."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating)) or not (
            math.isfinite(float(tau)) and float(tau) > 0):
        raise ParameterError(f"temperature must be a finite number > 0 (-> 0 is the hard code). Got {tau!r}.")
    return float(tau)


def ndtr(d: Tensor) -> Tensor:
    """The standard normal CDF, accurate in the lower tail."""
    # torch.special.ndtr goes through 1 + erf and loses the lower tail (ndtr(-10) == 0); erfc keeps it.
    return 0.5 * torch.special.erfc(-d * _SQRT_HALF)


def two_piece_probabilities(gate: str, d: Tensor) -> tuple[Tensor, Tensor]:
    """Probabilities of pieces 0 and 1 of a two-piece unit from its (tempered) score gap ``d = l_1 - l_0``.

    Each side is computed directly (not as ``1 - other``) so that tiny probabilities keep full precision.
    """
    if gate == "logistic":
        return torch.sigmoid(-d), torch.sigmoid(d)
    if gate == "probit":
        return ndtr(-d), ndtr(d)
    z = torch.tanh(_SQRT_2_OVER_PI * (d + _GELU_NEW_CUBIC * d * d * d))
    return 0.5 * (1.0 - z), 0.5 * (1.0 + z)


def two_piece_stacked(gate: str, d: Tensor) -> Tensor:
    """`two_piece_probabilities` as one tensor ``(*d.shape, 2)``: the same values bit for bit; for the tanh and
    probit gates (GELU's) written in place, in fewer passes over memory (on a GPU, fewer kernels) than stacking
    the sides (stacked under autograd)."""
    if gate == "logistic" or (d.requires_grad and torch.is_grad_enabled()):
        # (sigmoid into a strided output takes another kernel path, which rounds otherwise; out= arguments do not
        # take part in autograd, so a caller differentiating through the gate gets the stacked sides)
        return torch.stack(two_piece_probabilities(gate, d), dim=-1)
    if gate == "probit":
        # ndtr(-d) = erfc(z) / 2 and ndtr(d) = erfc(-z) / 2 with z = d sqrt(1/2), as `ndtr` computes them
        # (negation is exact: -(-d) s == d s and (-d) s == -(d s)); erfc runs on contiguous tensors as there,
        # and only the exact halving writes into the strided output
        z = d * _SQRT_HALF
        out = d.new_empty((*d.shape, 2))
        torch.mul(torch.special.erfc(z), 0.5, out=out[..., 0])
        torch.mul(torch.special.erfc(z.neg_()), 0.5, out=out[..., 1])
        return out
    out = d.new_empty((*d.shape, 2))
    # the tanh gate in the order `two_piece_probabilities` computes it (commuted products round alike);
    # 0.5 (1 -+ z) == 0.5 -+ 0.5 z exactly, a product by 0.5 being exact
    z = d * _GELU_NEW_CUBIC
    z.mul_(d).mul_(d).add_(d).mul_(_SQRT_2_OVER_PI).tanh_().mul_(0.5)
    torch.neg(z, out=out[..., 0]).add_(0.5)  # (negation is exact: -h + 0.5 == 0.5 - h)
    torch.add(z, 0.5, out=out[..., 1])
    return out


def upper_probability(gate: str, d: Tensor) -> Tensor:
    """Probability of piece 1 alone (the forward pass needs no more)."""
    if gate == "logistic":
        return torch.sigmoid(d)
    if gate == "probit":
        return ndtr(d)
    return 0.5 * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (d + _GELU_NEW_CUBIC * d * d * d)))


def probabilities_from_scores(gate: str, scores: Tensor, temperature: float) -> Tensor:
    """Piece probabilities ``(..., R)`` from signed piece scores ``(..., R)`` (``-inf`` for absent pieces).

    Two-piece units use the gate on their gap (``"logistic"`` is the two-way softmax); units with more pieces
    take the softmax (only the logistic gate is defined for them); a one-piece unit has probability 1.
    """
    if scores.shape[-1] == 2 and torch.isfinite(scores).all():
        t0, t1 = two_piece_probabilities(gate, (scores[..., 1] - scores[..., 0]) / temperature)
        return torch.stack([t0, t1], dim=-1)
    if scores.shape[-1] == 1:
        return torch.ones_like(scores)
    # over a leading axis of pieces: torch's softmax along a short last axis (9 pieces of a 3x3 max-pool) is
    # not vectorised over units and ran 20x slower on the CPU
    z = (scores / temperature).transpose(-1, -2).contiguous()
    return torch.softmax(z, dim=-2).transpose(-1, -2)
