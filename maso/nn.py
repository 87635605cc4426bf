"""PyTorch modules that maso understands, and seeded builders of toy networks.

:class:`Maxout` and :class:`Abs` fill gaps in ``torch.nn``; :func:`mlp_module` and :func:`inception_toy`
build seeded random-init networks for tests, benchmarks and the demo without touching torch's global RNG;
:func:`inception5_tail` builds the last two modules of InceptionV1 at their real sizes.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from maso.errors import ShapeError

__all__ = ["Maxout", "Abs", "mlp_module", "inception_toy", "InceptionBlock", "InceptionV1Module", "inception5_tail"]


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Torch's global generator seeded inside the block and restored after it (no global side effects)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Maxout(nn.Module):
    """Maxout over groups of ``pieces`` consecutive channels: ``(n, C*R, ...) -> (n, C, ...)``.

    Examples
    --------
    >>> import torch
    >>> Maxout(2)(torch.tensor([[1.0, 3.0, -1.0, -2.0]]))
    tensor([[ 3., -1.]])
    """

    def __init__(self, pieces: int) -> None:
        super().__init__()
        if int(pieces) < 1:
            raise ShapeError(f"Maxout needs pieces >= 1. Got {pieces}.")
        self.pieces = int(pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        if c % self.pieces:
            raise ShapeError(f"Maxout({self.pieces}) needs a channel count divisible by {self.pieces}; got {c}.")
        return x.reshape(n, c // self.pieces, self.pieces, *x.shape[2:]).amax(dim=2)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


class Abs(nn.Module):
    """Absolute value as a module (``torch.nn`` has none).

    Examples
    --------
    >>> import torch
    >>> Abs()(torch.tensor([-2.0, 3.0]))
    tensor([2., 3.])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


_ACTIVATIONS = ("relu", "leaky_relu", "abs", "maxout")


def mlp_module(
    widths: Sequence[int],
    *,
    seed: int,
    activation: str = "relu",
    negative_slope: float = 0.01,
    pieces: int = 2,
    dtype: torch.dtype = torch.float32,
) -> nn.Sequential:
    """A fully connected network with torch's default initialisation, seeded without global side effects.

    Parameters
    ----------
    widths : sequence of int
        ``[d_in, hidden_1, ..., d_out]``; at least two entries.
    seed : int
        Seed of a private generator state (torch's global RNG is restored afterwards).
    activation : {"relu", "leaky_relu", "abs", "maxout"}
        Unit between hidden layers (``maxout`` uses ``pieces`` linear pieces per unit).
    dtype : torch.dtype, default=torch.float32

    Examples
    --------
    >>> mlp_module([2, 3, 1], seed=0)
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
      (2): Linear(in_features=3, out_features=1, bias=True)
    )
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ShapeError(f"widths must be at least [d_in, d_out] of positive sizes. Got {widths}.")
    if activation not in _ACTIVATIONS:
        raise ShapeError(f"activation must be one of {_ACTIVATIONS}. Got {activation!r}.")
    layers: list[nn.Module] = []
    with _seeded(seed):
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            if activation == "maxout" and not last:
                layers += [nn.Linear(a, b * pieces, dtype=dtype), Maxout(pieces)]
                continue
            layers.append(nn.Linear(a, b, dtype=dtype))
            if not last:
                layers.append({"relu": nn.ReLU, "abs": Abs}.get(activation, lambda: nn.LeakyReLU(negative_slope))())
    return nn.Sequential(*layers)


class InceptionBlock(nn.Module):
    """An InceptionV1-style block: four branches concatenated on channels, with a residual projection.

    Branches: 1x1 conv; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max-pool -> 1x1. Convolutions are followed by eval-mode
    batch normalisation and ReLU.
    """

    def __init__(self, c_in: int, c_branch: int) -> None:
        super().__init__()

        def cbr(a: int, b: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, k, padding=k // 2, bias=False), nn.BatchNorm2d(b), nn.ReLU())

        self.b1 = cbr(c_in, c_branch, 1)
        self.b3 = nn.Sequential(cbr(c_in, c_branch, 1), cbr(c_branch, c_branch, 3))
        self.b5 = nn.Sequential(cbr(c_in, c_branch // 2, 1), cbr(c_branch // 2, c_branch, 5))
        self.pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), cbr(c_in, c_branch, 1))
        self.skip = nn.Conv2d(c_in, 4 * c_branch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], dim=1)
        return y + self.skip(x)


def inception_toy(
    *, seed: int, in_channels: int = 3, n_classes: int = 10, width: int = 16, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """A small random-init InceptionV1-style CNN (stem, two Inception blocks, pooling, classifier), in eval mode.

    Batch-norm statistics are randomised so that folding them is not a no-op.

    Examples
    --------
    >>> net = inception_toy(seed=0)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    with _seeded(seed):
        model = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
            InceptionBlock(width, width // 2),
            InceptionBlock(2 * width, width // 2),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(2 * width, n_classes),
        )
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
    return model.to(dtype).eval()


class InceptionV1Module(nn.Module):
    """An Inception module as in the original InceptionV1 (GoogLeNet): no batch normalisation, a ReLU after
    every convolution, a 5x5 branch (torchvision's GoogLeNet adds batch norm and uses 3x3 there).

    Branches: 1x1 (``c1``); 1x1 (``c3r``) -> 3x3 (``c3``); 1x1 (``c5r``) -> 5x5 (``c5``); 3x3 max-pool -> 1x1
    (``cp``); concatenated on channels.
    """

    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> None:
        super().__init__()

        def conv_relu(a: int, b: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, k, padding=k // 2), nn.ReLU())

        self.branch1 = conv_relu(c_in, c1, 1)
        self.branch3 = nn.Sequential(conv_relu(c_in, c3r, 1), conv_relu(c3r, c3, 3))
        self.branch5 = nn.Sequential(conv_relu(c_in, c5r, 1), conv_relu(c5r, c5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_relu(c_in, cp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


def inception5_tail(*, seed: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    """InceptionV1 from its ``inception5a`` module on (random init, seeded): 5a, 5b, average pooling and the
    1000-way classifier, at their real sizes. Its input, ``(832, 7, 7)``, is the 40,768-dimensional space that
    the polytope-lens article slices; load real weights into it with ``load_state_dict`` where you have them.

    Examples
    --------
    >>> tail = inception5_tail(seed=0)
    >>> tail(torch.zeros(1, 832, 7, 7)).shape
    torch.Size([1, 1000])
    """
    with _seeded(seed):
        model = nn.Sequential(
            InceptionV1Module(832, 256, 160, 320, 32, 128, 128),  # inception5a
            InceptionV1Module(832, 384, 192, 384, 48, 128, 128),  # inception5b
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(1024, 1000),
        )
    return model.to(dtype).eval()
