"""Random piecewise-affine PyTorch models of every layer type maso supports, built from a seed.

Each builder returns ``(module, input_shape)`` with the module in eval mode and float64 weights, so that
tests can compare maso against torch at float64 precision. Models are small: tests run many of them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import maso
from maso._random import torch_seeded

ACTIVATIONS = ("relu", "leaky", "leaky_big", "abs", "prelu", "relu6", "hardtanh", "hardsigmoid")


def activation(rng: np.random.Generator, channels: int, kind: str | None = None) -> nn.Module:
    kind = kind or str(rng.choice(ACTIVATIONS))
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky":
        return nn.LeakyReLU(float(rng.uniform(0.01, 0.5)))
    if kind == "leaky_big":  # slope above 1: a concave unit
        return nn.LeakyReLU(float(rng.uniform(1.5, 3.0)))
    if kind == "abs":
        return maso.nn.Abs()
    if kind == "prelu":
        m = nn.PReLU(channels)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(rng.uniform(-0.5, 2.0, size=channels)))
        return m
    if kind == "relu6":
        return nn.ReLU6()
    if kind == "hardtanh":
        return nn.Hardtanh(-0.5, 0.8)
    return nn.Hardsigmoid()


def _randomise_bn(bn: nn.modules.batchnorm._BatchNorm, rng: np.random.Generator) -> None:
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.as_tensor(rng.uniform(-0.3, 0.3, c)))
        bn.running_var.copy_(torch.as_tensor(rng.uniform(0.5, 2.0, c)))
        bn.weight.copy_(torch.as_tensor(rng.uniform(0.5, 1.5, c)))
        bn.bias.copy_(torch.as_tensor(rng.uniform(-0.3, 0.3, c)))


def _torch_seed(rng: np.random.Generator) -> int:
    """The seed of torch's generator for one model, drawn from ``rng`` before the model's own draws."""
    return int(rng.integers(0, 2**31))


def mlp(rng: np.random.Generator) -> tuple[nn.Module, tuple[int, ...]]:
    with torch_seeded(_torch_seed(rng)):
        d = int(rng.integers(1, 6))
        widths = [d] + [int(w) for w in rng.integers(2, 9, size=int(rng.integers(1, 4)))] + [int(rng.integers(1, 4))]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            if not last and rng.random() < 0.2:
                mods += [nn.Linear(a, 2 * b), maso.nn.Maxout(2)]
                continue
            mods.append(nn.Linear(a, b))
            if not last:
                if rng.random() < 0.3:
                    bn = nn.BatchNorm1d(b)
                    _randomise_bn(bn, rng)
                    mods.append(bn)
                mods.append(activation(rng, b))
        return nn.Sequential(*mods).double().eval(), (d,)


def cnn(rng: np.random.Generator) -> tuple[nn.Module, tuple[int, ...]]:
    with torch_seeded(_torch_seed(rng)):
        nd = int(rng.integers(1, 3))
        Conv = nn.Conv1d if nd == 1 else nn.Conv2d
        BN = nn.BatchNorm1d if nd == 1 else nn.BatchNorm2d
        MaxP = nn.MaxPool1d if nd == 1 else nn.MaxPool2d
        AvgP = nn.AvgPool1d if nd == 1 else nn.AvgPool2d
        c_in = int(rng.integers(1, 3))
        size = int(rng.integers(6, 9))
        shape = (c_in,) + (size,) * nd
        groups = int(rng.choice([1, c_in]))
        c1 = groups * int(rng.integers(1, 3))
        mode = str(rng.choice(["zeros", "zeros", "reflect", "circular"]))
        mods: list[nn.Module] = [
            Conv(c_in, c1, int(rng.integers(1, 4)), stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, 2)),
                 dilation=int(rng.integers(1, 3)), groups=groups, padding_mode=mode),
        ]
        if rng.random() < 0.5:
            bn = BN(c1)
            _randomise_bn(bn, rng)
            mods.append(bn)
        mods.append(activation(rng, c1))
        pool = rng.random()
        if pool < 0.5:
            mods.append(MaxP(int(rng.integers(2, 4)), stride=int(rng.integers(1, 3)), padding=1,
                             ceil_mode=bool(rng.random() < 0.3)))
        elif pool < 0.75:
            mods.append(AvgP(2, stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, 2))))
        mods.append(nn.Flatten())
        try:
            with torch.no_grad():
                n_flat = nn.Sequential(*mods).double().eval()(torch.zeros(1, *shape, dtype=torch.float64)).shape[1]
        except RuntimeError:  # the pool does not fit the conv output: drop it
            mods = [m for m in mods if not isinstance(m, (MaxP, AvgP))]
            with torch.no_grad():
                n_flat = nn.Sequential(*mods).double().eval()(torch.zeros(1, *shape, dtype=torch.float64)).shape[1]
        hidden = int(rng.integers(2, 6))
        module = nn.Sequential(*mods, nn.Linear(n_flat, hidden), nn.ReLU(), nn.Dropout(0.3),
                               nn.Linear(hidden, int(rng.integers(1, 3))))
        return module.double().eval(), shape


class Residual(nn.Module):
    """x + f(x) with a functional tail: exercises add, cat, slicing, clamp, maximum, mean."""

    def __init__(self, d: int, h: int, variant: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.fc2 = nn.Linear(h, d)
        self.fc3 = nn.Linear(2 * d, 3)
        self.variant = variant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x))
        y = x + self.fc2(h)
        if self.variant == 0:
            z = torch.cat([y, torch.clamp(x, min=-0.2, max=0.4)], dim=1)
        elif self.variant == 1:
            z = torch.cat([torch.maximum(y, x), 0.5 * x - 1.0], dim=-1)
        else:
            z = torch.cat([y.abs(), F.leaky_relu(x[:, :], 0.2)], dim=1)
        return self.fc3(z)


class InceptionLike(nn.Module):
    """Concatenated branches (Inception), a residual, max-pooling inside a branch, and a mean."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, 2, 1)
        self.b = nn.Sequential(nn.Conv2d(c, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU())
        self.p = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(c, 2, 1))
        self.skip = nn.Conv2d(c, 6, 1)
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([F.relu(self.a(x)), self.b(x), self.p(x)], dim=1) + self.skip(x)
        y = F.max_pool2d(F.relu(y), 2)
        return self.out(y.mean(dim=(2, 3)))


def residual(rng: np.random.Generator) -> tuple[nn.Module, tuple[int, ...]]:
    with torch_seeded(_torch_seed(rng)):
        d = int(rng.integers(2, 5))
        return Residual(d, int(rng.integers(2, 7)), int(rng.integers(0, 3))).double().eval(), (d,)


def inception(rng: np.random.Generator) -> tuple[nn.Module, tuple[int, ...]]:
    with torch_seeded(_torch_seed(rng)):
        c = int(rng.integers(1, 3))
        m = InceptionLike(c)
        _randomise_bn(m.b[1], rng)
        return m.double().eval(), (c, int(rng.integers(4, 7)), int(rng.integers(4, 7)))


BUILDERS = {"mlp": mlp, "cnn": cnn, "residual": residual, "inception": inception}


def random_model(seed: int, kind: str | None = None) -> tuple[nn.Module, tuple[int, ...], str]:
    rng = np.random.default_rng(seed)
    kind = kind or str(rng.choice(list(BUILDERS)))
    module, shape = BUILDERS[kind](rng)
    return module, shape, kind


def random_inputs(seed: int, shape: tuple[int, ...], n: int) -> np.ndarray:
    return np.random.default_rng(seed + 12345).normal(size=(n, *shape))


class _ExactHardsigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x / 6 + 0.5, 0.0, 1.0)


def autograd_reference(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose autograd Jacobian is exact in float64.

    torch's hardsigmoid backward multiplies by the float32 constant 1/6 (0.16666667163...), a 3e-8 relative
    error; the copy computes the same function with clamp, whose gradient is exact.
    """
    import copy

    ref = copy.deepcopy(module)
    for name, m in list(ref.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.Hardsigmoid):
                setattr(m, child_name, _ExactHardsigmoid())
    return ref


class PoolBlock(nn.Module):
    """The Inception pattern that stresses the 1-D walk: a max-pool branch straight on the input with
    overlapping 3x3 windows (one input pixel sits in up to nine windows, so one pixel overtaking another flips
    many units at one t), concatenated branches, a skip connection, ReLU, then a second max-pool."""

    def __init__(self, c: int, width: int, variant: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, width, 1)
        self.b = nn.Conv2d(c, width, 3, padding=1)
        self.p = nn.Conv2d(c, width, 1)
        self.skip = nn.Conv2d(c, 3 * width, 1)
        self.variant = variant
        self.out = nn.Linear(3 * width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        b = self.b(x) if self.variant != 1 else F.relu(self.b(x))
        y = torch.cat([F.relu(self.a(x)), b, self.p(pooled)], dim=1) + self.skip(x)
        y = F.relu(y)
        if self.variant == 2:  # overlapping windows in the second pool too
            y = F.max_pool2d(y, 3, stride=1, padding=1)
        y = F.max_pool2d(y, 2)
        return self.out(y.mean(dim=(2, 3)))


def pool_block(rng: np.random.Generator) -> tuple[nn.Module, tuple[int, ...]]:
    with torch_seeded(_torch_seed(rng)):
        c = int(rng.integers(1, 3))
        m = PoolBlock(c, int(rng.integers(1, 3)), int(rng.integers(0, 3)))
        return m.double().eval(), (c, int(rng.integers(4, 7)), int(rng.integers(4, 7)))
