"""PyTorch modules that maso understands, and seeded builders of networks.

[`Maxout`][maso.nn.Maxout] and [`Abs`][maso.nn.Abs] fill gaps in ``torch.nn``;
[`mlp_module`][maso.nn.mlp_module] and [`inception_toy`][maso.nn.inception_toy] build seeded random-init
networks for tests, benchmarks and the demo without touching torch's global RNG;
[`inception_v1`][maso.nn.inception_v1] builds InceptionV1 in the inception5h layout of interpretability work
(random init, or your weights file), whose part after any mixed layer
([`InceptionV1.tail`][maso.nn.InceptionV1.tail]) converts exactly;
[`inception5_tail`][maso.nn.inception5_tail] is its part after ``maxpool10``.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypedDict

import torch
from torch import nn

from maso._random import torch_seeded
from maso.errors import ParameterShapeError, ShapeError, SubnetworkError, WeightsFileError

__all__ = [
    "Abs",
    "ConvReLU",
    "InceptionBlock",
    "InceptionMixed",
    "InceptionV1",
    "Maxout",
    "inception5_tail",
    "inception_toy",
    "inception_v1",
    "mlp_module",
]


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
            raise ParameterShapeError(f"Maxout needs pieces >= 1. Got {pieces}.")
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
        raise ParameterShapeError(f"widths must be at least [d_in, d_out] of positive sizes. Got {widths}.")
    if activation not in _ACTIVATIONS:
        raise ParameterShapeError(f"activation must be one of {_ACTIVATIONS}. Got {activation!r}.")
    layers: list[nn.Module] = []
    with torch_seeded(seed):
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
    with torch_seeded(seed):
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
            # (running_* are None only for track_running_stats=False, which these layers are not)
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None and m.running_var is not None:
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
    return model.to(dtype).eval()


# ------------------------------------------------------------------------------------------------ InceptionV1
class _LRNAttributes(TypedDict):
    depth_radius: int
    bias: float
    alpha: float
    beta: float


#: The attributes of both LRN nodes (``localresponsenorm0`` and ``localresponsenorm1``) of the inception5h graph,
#: in TensorFlow's terms: ``x_c / (bias + alpha * sum(x_{c-r} ** 2, ..., x_{c+r} ** 2)) ** beta``, r = depth_radius.
_LRN_TF: _LRNAttributes = {"depth_radius": 5, "bias": 2.0, "alpha": 1e-4, "beta": 0.5}

#: Channels of the mixed layers of inception5h: input, 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce.
_MIXED = {
    "mixed3a": (192, 64, 96, 128, 16, 32, 32),
    "mixed3b": (256, 128, 128, 192, 32, 96, 64),
    "mixed4a": (480, 192, 96, 204, 16, 48, 64),
    "mixed4b": (508, 160, 112, 224, 24, 64, 64),
    "mixed4c": (512, 128, 128, 256, 24, 64, 64),
    "mixed4d": (512, 112, 144, 288, 32, 64, 64),
    "mixed4e": (528, 256, 160, 320, 32, 128, 128),
    "mixed5a": (832, 256, 160, 320, 48, 128, 128),
    "mixed5b": (832, 384, 192, 384, 48, 128, 128),
}
_BRANCHES = ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce")


def _tf_lrn(depth_radius: int, bias: float, alpha: float, beta: float) -> nn.LocalResponseNorm:
    """``torch.nn.LocalResponseNorm`` computing TensorFlow's ``tf.nn.local_response_normalization`` on NCHW.

    TF sums the squares over channels ``c - r ... c + r`` and scales the sum by ``alpha``; torch averages them
    over a window of ``size`` channels (``c - size // 2 ... c + (size - 1) // 2``, zero-padded where TF clips the
    window: the same sum) and scales the average by ``alpha``. So ``size = 2 r + 1``, torch's ``alpha`` is
    ``alpha * size``, and ``beta`` and ``k = bias`` carry over.
    """
    size = 2 * int(depth_radius) + 1
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=bias)


class ConvReLU(nn.Module):
    """A 2-D convolution followed by ReLU, InceptionV1's unit: ``conv`` (Lucid's ``<name>_pre_relu``) then
    ``relu``; the module's output is the activation Lucid calls ``<name>``.

    Parameters
    ----------
    c_in, c_out, kernel_size : int
    stride : int, default=1
    pad : tuple of 4 int, optional
        Explicit zero padding ``(left, right, top, bottom)`` before the convolution (a ``pad`` child,
        ``nn.ZeroPad2d``), for TensorFlow's asymmetric 'SAME' padding of strided convolutions. By default the
        convolution pads ``kernel_size // 2`` on every side ('SAME' for odd kernels and stride 1).

    Examples
    --------
    >>> ConvReLU(3, 4, 3)(torch.zeros(1, 3, 5, 5)).shape
    torch.Size([1, 4, 5, 5])
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, *, stride: int = 1,
                 pad: tuple[int, int, int, int] | None = None) -> None:
        super().__init__()
        if pad is not None:
            self.pad = nn.ZeroPad2d(pad)
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=0 if pad is not None else kernel_size // 2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


class InceptionMixed(nn.Module):
    """An InceptionV1 mixed layer as in the inception5h graph (no batch normalisation, a ReLU after every
    convolution, a true 5x5 branch): four branches concatenated on channels, in this order.

    Children (attribute and ``named_modules`` names): ``_1x1``; ``_3x3_bottleneck`` -> ``_3x3``;
    ``_5x5_bottleneck`` -> ``_5x5``; ``_pool`` (3x3 max-pool, stride 1, 'SAME') -> ``_pool_reduce``. Each
    ``_<branch>`` is a [`ConvReLU`][maso.nn.ConvReLU]; Lucid's activation ``mixed4a_3x3`` is ``mixed4a._3x3``
    here and ``mixed4a_3x3_pre_relu`` is ``mixed4a._3x3.conv``.

    Parameters
    ----------
    c_in, c1, c3r, c3, c5r, c5, cp : int
        Input channels; 1x1; 3x3 bottleneck and 3x3; 5x5 bottleneck and 5x5; pool reduce. The output has
        ``c1 + c3 + c5 + cp`` channels (``out_channels``).

    Examples
    --------
    >>> InceptionMixed(8, 2, 3, 4, 1, 2, 2)(torch.zeros(1, 8, 6, 6)).shape
    torch.Size([1, 10, 6, 6])
    """

    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> None:
        super().__init__()
        self._1x1 = ConvReLU(c_in, c1, 1)
        self._3x3_bottleneck = ConvReLU(c_in, c3r, 1)
        self._3x3 = ConvReLU(c3r, c3, 3)
        self._5x5_bottleneck = ConvReLU(c_in, c5r, 1)
        self._5x5 = ConvReLU(c5r, c5, 5)
        self._pool = nn.MaxPool2d(3, stride=1, padding=1)
        self._pool_reduce = ConvReLU(c_in, cp, 1)
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._1x1(x), self._3x3(self._3x3_bottleneck(x)), self._5x5(self._5x5_bottleneck(x)),
                          self._pool_reduce(self._pool(x))], dim=1)


#: Lucent's state-dict names (``mixed4a_3x3_pre_relu_conv.weight``) and those of its auxiliary heads.
_LUCENT_CONV = re.compile(r"(conv2d[0-2]|mixed[345][a-e])(?:_(" + "|".join(_BRANCHES)
                          + r"))?_pre_relu_conv\.(weight|bias)")
_LUCENT_HEAD = re.compile(r"softmax2_pre_activation_matmul\.(weight|bias)")
_LUCENT_AUX = re.compile(r"(head[01]_bottleneck_pre_relu_conv|nn[01]_pre_relu_matmul"
                         r"|softmax[01]_pre_activation_matmul)\.(weight|bias)")


def _inception_key(key: str) -> str | None:
    """The [`InceptionV1`][maso.nn.InceptionV1] name of a state-dict key in maso's or Lucent's naming; None
    for a key of Lucent's auxiliary heads (not part of the model)."""
    m = _LUCENT_CONV.fullmatch(key)
    if m:
        layer, branch, param = m.groups()
        return f"{layer}._{branch}.conv.{param}" if branch else f"{layer}.conv.{param}"
    m = _LUCENT_HEAD.fullmatch(key)
    if m:
        return f"softmax2_pre_activation.{m.group(1)}"
    return None if _LUCENT_AUX.fullmatch(key) else key


def _listed(keys: Sequence[str], limit: int = 8, *, quote: bool = True) -> str:
    shown = ", ".join(repr(k) if quote else k for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


class InceptionV1(nn.Module):
    """InceptionV1 (GoogLeNet) in the layout of the ``inception5h`` TensorFlow graph that Lucid, Lucent and the
    circuits / polytope-lens work study; build it with [`inception_v1`][maso.nn.inception_v1].

    The children, in order, are the graph's layers under its names (``layer_names``): ``conv2d0`` (7x7/2,
    TensorFlow 'SAME' padding: 2 left/top, 3 right/bottom), ``maxpool0`` (3x3/2), ``localresponsenorm0``,
    ``conv2d1`` (1x1), ``conv2d2`` (3x3), ``localresponsenorm1``, ``maxpool1``, ``mixed3a``, ``mixed3b``,
    ``maxpool4``, ``mixed4a`` ... ``mixed4e``, ``maxpool10``, ``mixed5a``, ``mixed5b``, ``avgpool0`` (global
    average), ``flatten`` and ``softmax2_pre_activation`` (1024 -> 1008): ``forward`` returns the **logits**;
    apply ``torch.softmax(logits, 1)`` for the graph's ``softmax2``. Every path of ``named_modules()`` is a
    layer name of the graph: Lucid's ``<name>`` is the module ``<name>`` with ``_<branch>`` inside a mixed layer
    (``mixed4a_3x3`` is ``mixed4a._3x3``, see [`InceptionMixed`][maso.nn.InceptionMixed]), and
    ``<name>_pre_relu`` is ``<name>.conv`` (``conv2d0_pre_relu`` is ``conv2d0.conv``).

    The max-pools of stride 2 use ``ceil_mode=True``, which is TensorFlow's 'SAME' (one row and column of
    padding at the right and bottom on even sizes): 224 -> 112 -> 56 -> 28 -> 14 -> 7. The LRNs are
    ``torch.nn.LocalResponseNorm(11, alpha=1.1e-3, beta=0.5, k=2)``: the graph's LRN attributes, depth radius
    5, bias 2, alpha 1e-4 and beta 0.5, with torch's window ``size = 2 * radius + 1`` and torch's alpha
    ``alpha * size`` (torch scales the mean of the squares, TensorFlow their sum). Lucent's port uses
    ``size=9, alpha=1e-4, beta=0.5, k=1``, so its stem activations differ slightly from the graph's and from
    this model's with the same weights. The padding of ``conv2d0`` is TensorFlow's 'SAME' for even image sizes.
    Inputs are RGB images, NCHW, in the graph's value range (pixel values 0-255 minus 117).

    The stem (through ``maxpool1``) is not piecewise affine (LRN); everything after it is (Conv2d, ReLU,
    MaxPool2d, cat, AdaptiveAvgPool2d, Flatten, Linear) and converts exactly, from images with
    ``maso.from_torch(model, images, start="mixed4a")`` or from activations with
    ``maso.from_torch(model.tail(after="mixed4a"), activations)``.

    Attributes
    ----------
    activation_shapes : dict of str to tuple of int
        Each layer's output shape (without the batch axis) for 224x224 images.
    """

    activation_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "conv2d0": (64, 112, 112), "maxpool0": (64, 56, 56), "localresponsenorm0": (64, 56, 56),
        "conv2d1": (64, 56, 56), "conv2d2": (192, 56, 56), "localresponsenorm1": (192, 56, 56),
        "maxpool1": (192, 28, 28), "mixed3a": (256, 28, 28), "mixed3b": (480, 28, 28), "maxpool4": (480, 14, 14),
        "mixed4a": (508, 14, 14), "mixed4b": (512, 14, 14), "mixed4c": (512, 14, 14), "mixed4d": (528, 14, 14),
        "mixed4e": (832, 14, 14), "maxpool10": (832, 7, 7), "mixed5a": (832, 7, 7), "mixed5b": (1024, 7, 7),
        "avgpool0": (1024, 1, 1), "flatten": (1024,), "softmax2_pre_activation": (1008,),
    }

    def __init__(self) -> None:
        super().__init__()
        self.conv2d0 = ConvReLU(3, 64, 7, stride=2, pad=(2, 3, 2, 3))
        self.maxpool0 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.localresponsenorm0 = _tf_lrn(**_LRN_TF)
        self.conv2d1 = ConvReLU(64, 64, 1)
        self.conv2d2 = ConvReLU(64, 192, 3)
        self.localresponsenorm1 = _tf_lrn(**_LRN_TF)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name, spec in _MIXED.items():
            if name == "mixed4a":
                self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if name == "mixed5a":
                self.maxpool10 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.add_module(name, InceptionMixed(*spec))
        self.avgpool0 = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.softmax2_pre_activation = nn.Linear(1024, 1008)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The names of the top-level layers, in order (the points where [`tail`][maso.nn.InceptionV1.tail]
        can cut)."""
        return tuple(name for name, _ in self.named_children())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x

    def tail(self, after: str, *, upto: str | None = None) -> nn.Sequential:
        """The part of the model after the layer ``after``, as a module of its own from that layer's activation.

        Parameters
        ----------
        after : str
            A top-level layer name (``layer_names``), e.g. ``"mixed4a"`` or ``"maxpool10"``.
        upto : str, optional
            The last layer included (default: the logits, ``softmax2_pre_activation``).

        Returns
        -------
        torch.nn.Sequential
            The layers after ``after`` through ``upto``, under the same names, sharing their parameters with
            this model (a view: use ``copy.deepcopy`` for an independent copy). After any mixed layer or
            max-pool from ``maxpool1`` on it is piecewise affine and converts exactly with
            [`maso.from_torch`][].

        Raises
        ------
        SubnetworkError
            ``after`` or ``upto`` is not a layer name, or ``upto`` does not come after ``after``.

        Examples
        --------
        >>> model = inception_v1()
        >>> tail = model.tail(after="mixed5a")
        >>> list(tail._modules)
        ['mixed5b', 'avgpool0', 'flatten', 'softmax2_pre_activation']
        >>> tail(torch.zeros(2, *model.activation_shapes["mixed5a"])).shape
        torch.Size([2, 1008])
        """
        names = self.layer_names
        for what, name in (("after", after), ("upto", upto)):
            if name is not None and name not in names:
                hint = ""
                if isinstance(name, str) and name.split(".")[0] in names:
                    hint = (" The branches inside a mixed layer run in parallel, so only whole layers have a tail; "
                            "cut after the mixed layer itself.")
                raise SubnetworkError(f"{what}={name!r} is not a layer of InceptionV1.{hint} Layers: "
                                      f"{', '.join(names)}.")
        i = names.index(after)
        j = len(names) - 1 if upto is None else names.index(upto)
        if j <= i:
            raise SubnetworkError(f"upto={upto!r} must come after after={after!r} (layers: {', '.join(names)}).")
        part = nn.Sequential(OrderedDict((name, getattr(self, name)) for name in names[i + 1 : j + 1]))
        part.training = self.training
        return part

    def load_weights(self, weights: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> InceptionV1:
        """Load a state dict (a file written by ``torch.save(state_dict, path)``, or the dict itself), in this
        model's naming or in Lucent's; values are cast to the model's dtype.

        Lucent's keys map as ``<layer>_pre_relu_conv.*`` -> ``<layer>.conv.*`` (``conv2d0``, ``conv2d1``,
        ``conv2d2``), ``<mixed>_<branch>_pre_relu_conv.*`` -> ``<mixed>._<branch>.conv.*`` and
        ``softmax2_pre_activation_matmul.*`` -> ``softmax2_pre_activation.*``; the keys of Lucent's auxiliary
        heads (``head0_*``, ``nn0_*``, ``softmax0_*`` and ``1``) are skipped. Files are read with
        ``torch.load(path, map_location="cpu", weights_only=True)`` (no code runs).

        Returns
        -------
        InceptionV1
            The model itself.

        Raises
        ------
        WeightsFileError
            The file cannot be read, does not hold a mapping of names to tensors, or its names or shapes differ
            from the model's (the message lists the missing and unexpected keys and the shape mismatches), or it
            holds NaN or infinite values. Nothing is loaded then.

        Examples
        --------
        >>> a, b = inception_v1(seed=0), inception_v1(seed=1)
        >>> x = torch.zeros(1, *a.activation_shapes["mixed5b"])
        >>> bool(torch.equal(b.load_weights(a.state_dict()).tail(after="mixed5b")(x), a.tail(after="mixed5b")(x)))
        True
        """
        state = self._read_weights(weights)
        with torch.no_grad():
            own = dict(self.named_parameters())
            for key, value in state.items():
                own[key].copy_(value)
        return self

    def _read_weights(self, weights: Any) -> dict[str, torch.Tensor]:
        path = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else ""
        where = f" in {path!r}" if path else ""
        if path:
            try:
                weights = torch.load(path, map_location="cpu", weights_only=True)
            except FileNotFoundError as e:
                raise WeightsFileError(f"No weights file {path!r}.", path=path) from e
            except Exception as e:  # unpickling errors, truncated files, objects that weights_only refuses
                first = (str(e).splitlines() or [""])[0]
                raise WeightsFileError(
                    f"Cannot read {path!r} as a torch state dict ({type(e).__name__}: {first}). Save weights "
                    "with torch.save(model.state_dict(), path).", path=path) from e
        if not isinstance(weights, Mapping):
            raise WeightsFileError(f"The weights{where} are a {type(weights).__name__}, not a state dict (a "
                                   "mapping of parameter names to tensors).", path=path)
        bad = [k if isinstance(k, str) else repr(k) for k, v in weights.items()
               if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if bad:
            raise WeightsFileError(f"The weights{where} are not a state dict: {len(bad)} entries are not name -> "
                                   f"tensor ({_listed(bad)}). Pass model.state_dict() (unwrap a checkpoint's "
                                   "'state_dict' entry).", path=path)
        expected = {k: tuple(v.shape) for k, v in self.named_parameters()}
        state: dict[str, torch.Tensor] = {}
        origin: dict[str, str] = {}
        unexpected: list[str] = []
        twice: list[str] = []
        for key, value in weights.items():
            name = _inception_key(key)
            if name is None:  # Lucent's auxiliary heads
                continue
            if name not in expected:
                unexpected.append(key)
            elif name in state:
                twice.append(f"{origin[name]!r} and {key!r}")
            else:
                state[name], origin[name] = value, key
        missing = [k for k in expected if k not in state]
        mismatched = [f"{origin[k]}: {tuple(v.shape)}, expected {expected[k]}" for k, v in state.items()
                      if tuple(v.shape) != expected[k]]
        if missing or unexpected or mismatched or twice:
            lines = [f"The weights{where} do not fit InceptionV1 (the inception5h layout):"]
            if missing:
                lines.append(f"missing {len(missing)} of {len(expected)} keys: {_listed(missing)};")
            if unexpected:
                lines.append(f"unexpected keys: {_listed(unexpected)};")
            if mismatched:
                lines.append(f"shape mismatches: {_listed(mismatched, quote=False)};")
                if any(v.dim() == 4 and tuple(v.shape[i] for i in (3, 2, 0, 1)) == expected[k]
                       for k, v in state.items()):
                    lines.append("(TensorFlow kernels (kh, kw, in, out) need .permute(3, 2, 0, 1));")
            if twice:
                lines.append(f"keys given twice (in both namings): {_listed(twice, quote=False)};")
            lines.append("keys are this model's (model.state_dict()) or Lucent's (e.g. "
                         "'mixed3a_1x1_pre_relu_conv.weight').")
            raise WeightsFileError(" ".join(lines), path=path, missing=missing, unexpected=unexpected,
                                   mismatched=mismatched)
        bad = [origin[k] for k, v in state.items() if not v.is_floating_point()]
        if not bad and not bool(torch.isfinite(torch.cat([v.reshape(-1) for v in state.values()])).all()):
            bad = [origin[k] for k, v in state.items() if not bool(torch.isfinite(v).all())]  # (one pass if fine)
        if bad:
            raise WeightsFileError(f"The weights{where} hold NaN, infinite or non-floating-point values in "
                                   f"{_listed(bad)}.", path=path)
        return state


def inception_v1(weights: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None, *, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> InceptionV1:
    """InceptionV1 (GoogLeNet) in the inception5h layout of interpretability work, in eval mode.

    See [`InceptionV1`][maso.nn.InceptionV1] for the layers and their names. The part after any mixed layer
    converts exactly with [`maso.from_torch`][]; [`InceptionV1.tail`][maso.nn.InceptionV1.tail] cuts it out as
    a module of its own.

    Parameters
    ----------
    weights : str or os.PathLike or mapping, optional
        A state dict, or the path of a file holding one (``torch.save(state_dict, path)``), in this model's
        naming or in Lucent's (see [`InceptionV1.load_weights`][maso.nn.InceptionV1.load_weights]). Default:
        random weights (torch's default initialisation, drawn in float32 from ``seed``: the same values in
        every dtype). maso never downloads anything. Trained weights: Lucent's port of the inception5h graph,
        ``inception5h.pth`` (published with github.com/ProGamerGov/pytorch-old-tensorflow-models;
        ``lucent.modelzoo.inceptionv1(pretrained=True)`` saves it in torch's hub cache,
        ``~/.cache/torch/hub/checkpoints/``), loads as it is.
    seed : int, default=0
        Seed of the random initialisation (torch's global generator is left as it was).
    dtype : torch.dtype, default=torch.float32

    Returns
    -------
    InceptionV1

    Raises
    ------
    WeightsFileError
        ``weights`` cannot be read or does not fit (missing, unexpected or misshapen keys).

    Examples
    --------
    >>> model = inception_v1(seed=0)
    >>> model(torch.zeros(2, 3, 64, 64)).shape     # logits; 224x224 is the graph's size
    torch.Size([2, 1008])
    >>> net = maso.from_torch(model.tail(after="mixed5b"), torch.zeros(1, 1024, 7, 7))
    >>> net.input_shape, net.output_shape
    ((1024, 7, 7), (1008,))
    """
    with torch_seeded(seed):
        model = InceptionV1()
    model = model.to(dtype)
    if weights is not None:
        model.load_weights(weights)
    return model.eval()


def inception5_tail(*, seed: int, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """InceptionV1 after ``maxpool10`` (random init, seeded): ``mixed5a``, ``mixed5b``, average pooling and the
    1008-way logits, at their real sizes: ``inception_v1(seed=seed, dtype=dtype).tail(after="maxpool10")``.

    Its input, ``(832, 7, 7)``, is the 40,768-dimensional space that the polytope-lens article slices (the
    input of ``inception5a`` in its naming); for trained weights, load them into
    [`inception_v1`][maso.nn.inception_v1] and take its tail.

    Examples
    --------
    >>> tail = inception5_tail(seed=0)
    >>> tail(torch.zeros(1, 832, 7, 7)).shape
    torch.Size([1, 1008])
    """
    return inception_v1(seed=seed, dtype=dtype).tail(after="maxpool10")
