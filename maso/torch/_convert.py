"""Conversion of PyTorch modules into maso networks (torch.fx tracing plus a converter registry)."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from maso import layers as L, nn as mnn, soft as S
from maso._validation import check_float, check_int
from maso.core.network import Network
from maso.errors import (
    ConversionError,
    InvalidWeightsError,
    ParameterError,
    ParameterShapeError,
    ShapeError,
    TrainingModeError,
    UnsupportedLayerError,
)

__all__ = ["SUPPORTED", "from_torch", "mlp"]

SUPPORTED = (
    "Linear, Conv1d/2d/3d (any stride, padding, dilation, groups, padding mode), BatchNorm1d/2d/3d in eval "
    "mode (folded), ReLU, LeakyReLU, PReLU, ReLU6, Hardtanh, Hardsigmoid, MaxPool1d/2d/3d, AvgPool1d/2d/3d, "
    "AdaptiveAvgPool1d/2d/3d, Flatten, Unflatten, Dropout and Identity (eval), zero/constant/reflection/"
    "replication/circular padding, transformers' Conv1D, maso.nn.Abs, maso.nn.Maxout; "
    "functions: + - (of two activations or a constant), * and / by a constant, cat, flatten/view/reshape/"
    "squeeze/unsqueeze, slicing, mean over non-batch axes, relu, leaky_relu, abs, clamp/clip, hardtanh, "
    "relu6, maximum/minimum of two activations, max_pool, avg_pool, adaptive_avg_pool, linear, conv, pad, "
    "matmul/mm/addmm with a fixed matrix; in-place forms of these; "
    "as soft spline codes (maso.soft): GELU (erf and tanh), SiLU, Sigmoid, Tanh, transformers' NewGELU/"
    "FastGELU/GELU/QuickGELU/SiLU activation modules, and the functions gelu, silu, sigmoid, tanh"
)
"""What [`from_torch`][maso.from_torch] converts (layers, then functions of traced models), in one line
for messages and docs."""

#: Smooth units maso converts as soft spline layers (exact per-unit identity), by module class name: this also
#: covers activation classes of libraries maso does not import (transformers), checked by from_torch's final
#: comparison with the module.
_SOFT_MODULES: dict[str, Callable[[], L.Layer]] = {
    "SiLU": S.silu, "SiLUActivation": S.silu, "Swish": S.silu,
    "Sigmoid": S.sigmoid, "Tanh": S.tanh,
    "NewGELUActivation": lambda: S.gelu("tanh"), "FastGELUActivation": lambda: S.gelu("tanh"),
    "GELUTanh": lambda: S.gelu("tanh"), "PytorchGELUTanh": lambda: S.gelu("tanh"),
    "GELUActivation": S.gelu,
    "QuickGELUActivation": lambda: S.Soft(L.relu(), "logistic", 1 / 1.702),
}


def _soft_module(m: nn.Module) -> L.Layer | None:
    if isinstance(m, nn.GELU):
        return S.gelu(m.approximate)
    make = _SOFT_MODULES.get(type(m).__name__)
    return None if make is None else make()

_SMOOTH = {
    "Softplus", "ELU", "SELU", "CELU", "Mish", "Hardswish", "Softmax",
    "LogSoftmax", "Softmin", "Softsign", "Tanhshrink", "LogSigmoid", "GLU",
    "softplus", "elu", "selu", "celu", "mish", "hardswish", "softmax",
    "log_softmax", "softmin", "softsign", "logsigmoid", "glu", "exp", "log", "sqrt", "rsqrt", "pow", "sin",
    "cos", "erf", "reciprocal", "square",
}
_NORMS = {"LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm",
          "RMSNorm", "layer_norm", "group_norm", "instance_norm", "local_response_norm", "rms_norm", "normalize",
          "norm"}
_PRODUCTS = {"MultiheadAttention", "Transformer", "TransformerEncoderLayer", "TransformerDecoderLayer",
             "Bilinear", "matmul", "bmm", "baddbmm", "einsum", "scaled_dot_product_attention", "mm"}
_DISCONTINUOUS = {"Threshold", "Hardshrink", "threshold", "hardshrink", "sign", "round", "floor", "ceil",
                  "heaviside", "gt", "lt", "ge", "le"}
_RECURRENT = {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"}
_PA_NOT_YET = {"ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
               "AdaptiveMaxPool3d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
               "Softshrink", "MaxUnpool2d", "FractionalMaxPool2d", "LPPool2d", "permute", "transpose", "interpolate"}


#: Module classes maso refuses whatever their place in a model (for a bare module, before tracing it).
_REFUSED_MODULES = {k for k in (_SMOOTH | _NORMS | _PRODUCTS | _DISCONTINUOUS | _RECURRENT | _PA_NOT_YET)
                    if k[:1].isupper()} | {"Embedding", "EmbeddingBag"}


def _refused(m: nn.Module) -> bool:
    """Whether ``m`` is a torch module that maso refuses (not a user class that happens to share its name)."""
    return type(m).__name__ in _REFUSED_MODULES and type(m).__module__.startswith("torch.")


def _unsupported(kind: str, path: str) -> UnsupportedLayerError:
    where = f"{kind} at {path!r}" if path else f"{kind} (the model itself)"
    if kind in _SMOOTH:
        why = (f"{where} is a smooth function, not piecewise affine, and not one of the soft units maso reads as "
               "a probabilistic spline code (GELU, SiLU, Sigmoid, Tanh). Replace it with one of those or with a "
               "piecewise-linear unit (nn.ReLU, nn.LeakyReLU, nn.Hardtanh), or convert the part of the model "
               "before it (stop the traced module there).")
    elif kind in _NORMS:
        why = (f"{where} divides by a statistic of its own input, so it is not piecewise affine. Convert the "
               "part of the model after it (feed its outputs as inputs) or before it, or replace it by a fixed "
               "affine normaliser (eval-mode BatchNorm is supported).")
    elif kind in _PRODUCTS:
        why = (f"{where} multiplies activations with each other (attention, bilinear forms), which is not "
               "piecewise affine. Analyse the MLP blocks on sampled inputs instead, e.g. convert an MLP "
               "sub-module on its own.")
    elif kind in _DISCONTINUOUS:
        why = (f"{where} is discontinuous, so the network is not a continuous piecewise-affine function (a "
               "composition of max-affine splines). Replace it with a continuous unit.")
    elif kind in _RECURRENT:
        why = (f"{where} is a recurrent module with smooth gates; it is not piecewise affine. Unroll an RNN "
               "with ReLU cells by hand as a feed-forward module to convert it.")
    elif kind == "Embedding" or kind == "EmbeddingBag" or kind == "embedding":
        why = (f"{where} takes integer tokens, not a continuous input. Convert the model from the embedding "
               "output onwards.")
    elif kind in _PA_NOT_YET:
        why = (f"{where} is piecewise affine but maso does not convert it yet. Rewrite it with supported "
               "operations (e.g. Conv + Reshape) or open an issue.")
    else:
        why = (f"{where} is not a module or function maso knows to be piecewise affine. If it is, express it "
               "with supported ones.")
    return UnsupportedLayerError(f"{why} Supported: {SUPPORTED}.", kind=kind, path=path)


# --------------------------------------------------------------------------------------------------- helpers
def _np(t: torch.Tensor | None, like: int | None = None) -> np.ndarray:
    if t is None:
        return np.zeros(like or 0)
    return t.detach().to("cpu", torch.float64).numpy().copy()


def _channel_vector(v: np.ndarray, rank: int) -> np.ndarray:
    return v.reshape(v.shape[0], *([1] * (rank - 1)))


def _clamp_chain(lo: float | None, hi: float | None) -> list[L.Layer]:
    """``clamp(u, lo, hi)`` as affine maps and ReLUs: exact, with unit codes ``u > lo`` and ``u < hi``."""
    one = np.array(1.0)
    if lo is not None and hi is not None:
        if hi < lo:
            raise ConversionError(f"clamp with min {lo} above max {hi} is not supported.")
        head = [] if lo == 0 else [L.ElementwiseAffine(one, np.array(-lo))]
        return head + [L.relu(), L.ElementwiseAffine(-one, np.array(hi - lo)), L.relu(),
                       L.ElementwiseAffine(-one, np.array(hi))]
    if lo is not None:  # max(u, lo) = relu(u - lo) + lo
        if lo == 0:
            return [L.relu()]
        return [L.ElementwiseAffine(one, np.array(-lo)), L.relu(), L.ElementwiseAffine(one, np.array(lo))]
    if hi is not None:  # min(u, hi) = hi - relu(hi - u)
        return [L.ElementwiseAffine(-one, np.array(hi)), L.relu(), L.ElementwiseAffine(-one, np.array(hi))]
    return []


def _sizes(v: int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """A torch pooling size (an int, or one per axis) as a tuple; the layer repeats a 1-tuple over its axes."""
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),)


def _conv_layer(weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation, groups,
                padding_mode: str = "zeros", pad: Sequence[int] = ()) -> L.Conv:
    if isinstance(padding, str) and padding == "valid":
        padding = 0
    return L.Conv(_np(weight), _np(bias, weight.shape[0]), stride, padding, dilation, groups, padding_mode,
                  tuple(pad))


# -------------------------------------------------------------------------------------- module converters
def _convert_module(m: nn.Module, path: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[L.Layer]:
    kind = type(m).__name__
    rank = len(in_shape)
    if isinstance(m, nn.Linear):
        return [L.Dense(_np(m.weight), _np(m.bias, m.out_features))]
    if _is_conv1d(m):
        w = cast(torch.Tensor, m.weight)  # _is_conv1d checked it
        return [L.Dense(_np(w).T, _np(getattr(m, "bias", None), w.shape[1]))]
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        pad = m._reversed_padding_repeated_twice if m.padding_mode != "zeros" else ()
        return [_conv_layer(m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups, m.padding_mode, pad)]
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if m.running_mean is None or m.running_var is None:
            raise TrainingModeError(
                f"{kind} at {path!r} has no running statistics (track_running_stats=False), so it normalises "
                "with batch statistics even in eval mode: not a fixed affine map."
            )
        scale = 1.0 / np.sqrt(_np(m.running_var) + m.eps)
        if m.weight is not None:
            scale = scale * _np(m.weight)
        shift = -_np(m.running_mean) * scale
        if m.bias is not None:
            shift = shift + _np(m.bias)
        return [L.ElementwiseAffine(_channel_vector(scale, rank), _channel_vector(shift, rank))]
    if isinstance(m, nn.ReLU):
        return [L.relu()]
    if isinstance(m, nn.LeakyReLU):
        return [L.leaky_relu(m.negative_slope)]
    if isinstance(m, nn.PReLU):
        eta = _np(m.weight)
        if eta.size == 1:
            return [L.leaky_relu(float(eta[0]))]
        slopes = np.stack([eta, np.ones_like(eta)])
        return [L.Elementwise(slopes, np.zeros_like(slopes), sign=np.where(eta <= 1, 1.0, -1.0))]
    if isinstance(m, nn.ReLU6):
        return _clamp_chain(0.0, 6.0)
    if isinstance(m, nn.Hardtanh):
        return _clamp_chain(float(m.min_val), float(m.max_val))
    if isinstance(m, nn.Hardsigmoid):
        return [L.ElementwiseAffine(np.array(1 / 6), np.array(0.5))] + _clamp_chain(0.0, 1.0)
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        if m.return_indices:
            raise UnsupportedLayerError(f"{kind} at {path!r} returns indices; maso needs return_indices=False "
                                        "(the indices are the unit codes: use Network.codes).", kind=kind,
                                        path=path)
        nd = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}[type(m)]
        return [L.MaxPool(nd, _sizes(m.kernel_size), _sizes(m.stride), _sizes(m.padding), _sizes(m.dilation),
                          m.ceil_mode)]
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        nd = {nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3}[type(m)]
        return [L.AvgPool(nd, _sizes(m.kernel_size), _sizes(m.stride), _sizes(m.padding), m.ceil_mode,
                          m.count_include_pad,
                          getattr(m, "divisor_override", None))]
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        nd = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3}[type(m)]
        return [L.AdaptiveAvgPool(nd, m.output_size)]
    if isinstance(m, (nn.Flatten, nn.Unflatten)):
        return [] if out_shape == in_shape else [L.Reshape(out_shape)]
    if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)):
        return []
    if isinstance(m, nn.modules.padding._ConstantPadNd):
        return [_pad_layer(tuple(m.padding), "constant", float(m.value), path)]
    for base, mode in ((nn.modules.padding._ReflectionPadNd, "reflect"),
                       (nn.modules.padding._ReplicationPadNd, "replicate"),
                       (nn.modules.padding._CircularPadNd, "circular")):
        if isinstance(m, base):
            return [_pad_layer(tuple(m.padding), mode, 0.0, path)]
    if isinstance(m, mnn.Maxout):
        return [L.Maxout(m.pieces)]
    if isinstance(m, mnn.Abs):
        return [L.absolute()]
    soft = _soft_module(m)
    if soft is not None:
        return [soft]
    raise _unsupported(kind, path)


_MODULE_TYPES = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.LeakyReLU, nn.PReLU,
    nn.ReLU6, nn.Hardtanh, nn.Hardsigmoid, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.Flatten, nn.Unflatten,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity, mnn.Maxout, mnn.Abs,
    nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd, nn.modules.padding._ReplicationPadNd,
    nn.modules.padding._CircularPadNd,
)


def _prescan(gm: fx.GraphModule) -> None:
    """Refuse unsupported modules and smooth functions before running anything, with their paths."""
    for node in gm.graph.nodes:
        if node.op == "call_module":
            m = gm.get_submodule(str(node.target))
            if not isinstance(m, _MODULE_TYPES) and _soft_module(m) is None and not _is_conv1d(m):
                raise _unsupported(type(m).__name__, str(node.target))
        elif node.op in ("call_function", "call_method"):
            name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
            name = name.strip("_")
            if name not in _FUNCTIONS and (name in _SMOOTH or name in _NORMS or name in _PRODUCTS):
                stack = node.meta.get("nn_module_stack")
                path = f"{list(stack.values())[-1][0]} ({node.name})" if stack else node.name
                raise _unsupported(name, path)


def _is_conv1d(m: nn.Module) -> bool:
    """transformers' ``Conv1D`` (GPT-2's MLP and attention projections): ``x @ weight + bias`` on the last axis,
    weight of shape (in, out), written with ``addmm`` on a flattened view (recognised by its class name and
    attributes, so transformers is never imported)."""
    w = m._parameters.get("weight")  # not getattr: while tracing, fx hands out proxies for parameters
    return (type(m).__name__ == "Conv1D" and isinstance(w, torch.Tensor) and w.dim() == 2
            and getattr(m, "nf", None) == w.shape[1])


class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[str] | None = None) -> None:
        super().__init__()
        self.leaves = leaves or set()

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.leaves:
            return True
        if isinstance(m, (mnn.Maxout, mnn.Abs)) or _soft_module(m) is not None or _is_conv1d(m):
            return True
        return super().is_leaf_module(m, qualname)


def _check_module(module: nn.Module) -> None:
    for path, m in module.named_modules():
        kind = type(m).__name__
        if m.training and isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise TrainingModeError(
                f"{kind} at {path!r} is in training mode: it normalises with the statistics of each batch, so "
                "the network is not a fixed function. Call model.eval() before maso.from_torch."
            )
        if m.training and isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            raise TrainingModeError(
                f"{kind} at {path!r} is in training mode: it zeroes random units. Call model.eval() first."
            )
    params = list(module.named_parameters())
    float_dtypes = set()
    for name, t in params + list(module.named_buffers()):
        is_param = any(t is q for _, q in params)
        if t.is_complex() or (is_param and not t.is_floating_point()):
            raise InvalidWeightsError(
                f"{'Parameter' if is_param else 'Buffer'} {name!r} has dtype {str(t.dtype).replace('torch.', '')}; "
                "maso needs real floating-point weights (float16, bfloat16, float32 or float64). A complex or "
                "integer (quantised) model has no piecewise-affine form over the reals: convert it with "
                "model.double() from real weights."
            )
        if is_param:
            float_dtypes.add(t.dtype)
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise InvalidWeightsError(
                f"{'Parameter' if is_param else 'Buffer'} {name!r} holds {bad} NaN or infinite value(s) out of "
                f"{t.numel()}; maso needs finite weights. Check the checkpoint or the training run that produced it."
            )
    if len(float_dtypes) > 1:
        names = sorted(str(d).replace("torch.", "") for d in float_dtypes)
        raise ConversionError(
            f"The model's parameters mix dtypes {names}; torch cannot run it as it is. Give it one dtype first, "
            "e.g. model.double()."
        )


# ------------------------------------------------------------------------------------------- conversion
class _Converter:
    """Walks a traced graph; every tensor value is a maso node name, everything else a Python constant."""

    def __init__(self, gm: fx.GraphModule, batch: int) -> None:
        self.gm = gm
        self.batch = batch
        self.spec: list[tuple[str, L.Layer, list[str]]] = []
        self.sources: dict[str, str] = {}
        self.shape_of: dict[str, tuple[int, ...]] = {}
        self.env: dict[fx.Node, tuple[str, Any]] = {}
        self.calls: dict[str, int] = {}

    # values --------------------------------------------------------------------------------------------
    def val(self, a: Any) -> tuple[str, Any]:
        if isinstance(a, fx.Node):
            return self.env[a]
        if isinstance(a, (list, tuple)):
            vals = [self.val(x) for x in a]
            if any(v[0] == "t" for v in vals):
                return ("list", vals)
            return ("c", type(a)(v[1] for v in vals))
        return ("c", a)

    def const(self, a: Any, node: fx.Node, what: str) -> Any:
        v = self.val(a)
        if v[0] == "c":
            return v[1]
        if v[0] == "shape":
            return None
        raise _unsupported(f"{node.target if isinstance(node.target, str) else getattr(node.target, '__name__', node.target)} "
                           f"with an activation as {what}", self.where(node))

    def where(self, node: fx.Node) -> str:
        stack = node.meta.get("nn_module_stack")
        if stack:
            return f"{list(stack.values())[-1][0]} ({node.name})" if node.op != "call_module" else str(node.target)
        return str(node.target) if node.op == "call_module" else node.name

    def out_shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise ConversionError(f"Node {node.name!r} does not produce a single tensor; maso needs one.")
        shape = tuple(meta.shape)
        if not shape or shape[0] != self.batch:
            raise ConversionError(
                f"{self.where(node)} changes the batch axis (shape {shape} for a batch of {self.batch}); maso "
                "networks map each sample on its own."
            )
        return shape[1:]

    def add_chain(self, node: fx.Node, chain: list[L.Layer], inputs: list[str], source: str) -> None:
        base = str(node.target) if node.op == "call_module" else node.name
        if node.op == "call_module":  # a module called again (ResNet's one `relu`): each call is its own node
            calls = self.calls.get(base, 0) + 1
            self.calls[base] = calls
            if calls > 1:
                base = f"{base}#{calls}"
        if not chain:
            if len(inputs) != 1:
                raise ConversionError(f"Internal: empty chain with {len(inputs)} inputs at {base!r}.")
            self.env[node] = ("t", inputs[0])
            return
        meta = node.meta.get("tensor_meta")
        if meta is not None and hasattr(meta, "shape"):  # per call: a module called twice has two shapes
            self.shape_of[base] = tuple(meta.shape[1:])
        prev = inputs
        for k, layer in enumerate(chain):
            name = base if k == len(chain) - 1 else f"{base}/{k}"
            self.spec.append((name, layer, list(prev)))
            self.sources[name] = source
            prev = [name]
        self.env[node] = ("t", base)

    # dispatch ------------------------------------------------------------------------------------------
    def run(self) -> str:
        inputs_seen = 0
        output_name = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if inputs_seen:
                    if node.args:  # a defaulted extra argument: a constant
                        self.env[node] = ("c", node.args[0])
                        continue
                    raise ConversionError(f"The module takes several inputs ({node.name!r}); maso needs one.")
                inputs_seen += 1
                self.env[node] = ("t", "input")
            elif node.op == "get_attr":
                obj: Any = self.gm
                for part in str(node.target).split("."):
                    obj = getattr(obj, part)
                self.env[node] = ("c", obj.detach() if isinstance(obj, torch.Tensor) else obj)
            elif node.op == "call_module":
                m = self.gm.get_submodule(str(node.target))
                src: tuple[str, Any] = self.val(node.args[0]) if node.args else ("c", None)
                if src[0] != "t" or len(node.args) != 1 or node.kwargs:
                    raise ConversionError(f"Module {node.target!r} must be called on one activation.")
                in_shape = self.out_shape(node.args[0])
                chain = _convert_module(m, str(node.target), in_shape, self.out_shape(node))
                self.add_chain(node, chain, [src[1]], f"{node.target} ({type(m).__name__})")
                if getattr(m, "inplace", False) is True:  # nn.ReLU(inplace=True): its input now holds the output
                    self.mutated(node)
            elif node.op in ("call_function", "call_method"):
                self.call(node)
            elif node.op == "output":
                out = self.val(node.args[0])
                if out[0] != "t":
                    raise ConversionError("The module must return one tensor computed from its input (got "
                                          f"{type(node.args[0]).__name__}).")
                output_name = out[1]
        if output_name is None:
            raise ConversionError("The traced module has no output.")
        return output_name

    def call(self, node: fx.Node) -> None:
        target = node.target
        name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        name = name.lstrip("_") if name not in ("__getitem__",) else "getitem"
        inplace = bool(node.kwargs.get("inplace", False))
        if name.endswith("_") and name[:-1] in _INPLACE_OK:
            name, inplace = name[:-1], True
        args = list(node.args)
        kwargs = dict(node.kwargs)
        vals = [self.val(a) for a in args]
        if not any(v[0] in ("t", "list") for v in vals) and not any(self.val(v)[0] == "t" for v in kwargs.values()):
            # Pure constants or shape arithmetic: evaluate if we can, otherwise mark as a shape value.
            if any(v[0] == "shape" for v in vals) or name in ("size", "dim"):
                self.env[node] = ("shape", None)
                return
            fn = getattr(torch.Tensor, target) if isinstance(target, str) else target
            try:
                self.env[node] = ("c", fn(*[v[1] for v in vals], **{k: self.val(v)[1] for k, v in kwargs.items()}))
            except Exception as e:  # pragma: no cover - exotic constant code
                raise ConversionError(f"Could not evaluate constant expression {node.name!r}: {e}") from e
            return
        if name in ("size", "dim") or (name == "getattr" and len(args) > 1 and args[1] in ("shape", "ndim")):
            self.env[node] = ("shape", None)
            return
        handler = _FUNCTIONS.get(name)
        if handler is None:
            raise _unsupported(name, self.where(node))
        chain_inputs = handler(self, node, vals, kwargs)
        if chain_inputs is None:
            return
        chain, ins = chain_inputs
        self.add_chain(node, chain, ins, f"{self.where(node)} ({name})")
        if inplace:
            self.mutated(node)

    def mutated(self, node: fx.Node) -> None:
        """An in-place operation changed its first argument: later reads of that tensor see the new value (the
        traced graph still names the old node there, as in ``z.add_(y); return z``)."""
        if node.args and isinstance(node.args[0], fx.Node) and self.env.get(node.args[0], ("",))[0] == "t":
            self.env[node.args[0]] = self.env[node]

    # helpers for handlers ------------------------------------------------------------------------------
    def tensor_arg(self, node: fx.Node, vals: list, i: int = 0) -> str:
        v = vals[i]
        if v[0] != "t":
            raise _unsupported(f"{node.name} on a non-activation argument", self.where(node))
        return v[1]

    def per_sample_const(self, c: Any, node: fx.Node) -> np.ndarray:
        arr = np.asarray(c.detach().cpu().double().numpy() if isinstance(c, torch.Tensor) else c, dtype=np.float64)
        shape = self.out_shape(node)
        if arr.ndim == len(shape) + 1:
            if arr.shape[0] != 1:
                raise _unsupported("a constant with a batch axis", self.where(node))
            arr = arr[0]
        try:
            np.broadcast_shapes(arr.shape, shape)
        except ValueError as e:
            raise ConversionError(f"{self.where(node)}: constant of shape {arr.shape} does not broadcast to "
                                  f"{shape}.") from e
        return arr


_INPLACE_OK = {"relu", "add", "sub", "mul", "div", "clamp", "abs", "neg", "hardtanh", "leaky_relu", "relu6", "sigmoid", "tanh", "silu",
               "clip"}


def _ewa(scale: Any, shift: Any) -> L.ElementwiseAffine:
    return L.ElementwiseAffine(np.asarray(scale, dtype=np.float64), np.asarray(shift, dtype=np.float64))


def _h_add(cv: _Converter, node, vals, kw, sign: float = 1.0):
    alpha = kw.get("alpha", 1.0)
    a, b = vals[0], vals[1]
    if a[0] == "t" and b[0] == "t":
        if cv.shape_of.get(a[1]) != cv.shape_of.get(b[1]):
            raise _unsupported("addition of activations of different shapes (broadcasting)", cv.where(node))
        return [L.Sum((1.0, sign * alpha))], [a[1], b[1]]
    if a[0] == "t":
        return [_ewa(1.0, sign * alpha * cv.per_sample_const(b[1], node))], [a[1]]
    return [_ewa(sign, cv.per_sample_const(a[1], node))], [b[1]]


def _h_mul(cv: _Converter, node, vals, kw, divide: bool = False):
    a, b = vals[0], vals[1]
    if a[0] == "t" and b[0] == "t":
        raise _unsupported("product of two activations" if not divide else "division by an activation",
                           cv.where(node))
    if divide and a[0] != "t":
        raise _unsupported("division by an activation", cv.where(node))
    t, c = (a, b) if a[0] == "t" else (b, a)
    arr = cv.per_sample_const(c[1], node)
    if divide:
        arr = 1.0 / arr
    return [_ewa(arr, np.zeros_like(arr))], [t[1]]


def _h_reshape(cv, node, vals, kw):
    src = cv.tensor_arg(node, vals)
    out = cv.out_shape(node)
    return ([] if out == cv.shape_of.get(src) else [L.Reshape(out)]), [src]


def _h_identity(cv, node, vals, kw):
    return [], [cv.tensor_arg(node, vals)]


def _h_dropout(cv, node, vals, kw):
    training = kw.get("training", vals[2][1] if len(vals) > 2 else True)
    p = kw.get("p", vals[1][1] if len(vals) > 1 else 0.5)
    if training and p:
        raise TrainingModeError(f"Dropout at {cv.where(node)!r} runs in training mode (training=True); call "
                                "model.eval() first.")
    return [], [cv.tensor_arg(node, vals)]


def _h_relu(cv, node, vals, kw):
    return [L.relu()], [cv.tensor_arg(node, vals)]


def _h_gelu(cv, node, vals, kw):
    approximate = kw.get("approximate", vals[1][1] if len(vals) > 1 else "none")
    return [S.gelu(str(approximate))], [cv.tensor_arg(node, vals)]


def _h_abs(cv, node, vals, kw):
    return [L.absolute()], [cv.tensor_arg(node, vals)]


def _h_leaky(cv, node, vals, kw):
    slope = kw.get("negative_slope", vals[1][1] if len(vals) > 1 else 0.01)
    return [L.leaky_relu(float(slope))], [cv.tensor_arg(node, vals)]


def _h_clamp(cv, node, vals, kw):
    lo = kw.get("min", vals[1][1] if len(vals) > 1 else None)
    hi = kw.get("max", vals[2][1] if len(vals) > 2 else None)
    for v in (lo, hi):
        if isinstance(v, (torch.Tensor, fx.Node)):
            raise _unsupported("clamp with tensor bounds", cv.where(node))
    return _clamp_chain(None if lo is None else float(lo), None if hi is None else float(hi)), [
        cv.tensor_arg(node, vals)]


def _h_hardtanh(cv, node, vals, kw):
    lo = kw.get("min_val", vals[1][1] if len(vals) > 1 else -1.0)
    hi = kw.get("max_val", vals[2][1] if len(vals) > 2 else 1.0)
    return _clamp_chain(float(lo), float(hi)), [cv.tensor_arg(node, vals)]


def _h_relu6(cv, node, vals, kw):
    return _clamp_chain(0.0, 6.0), [cv.tensor_arg(node, vals)]


def _h_neg(cv, node, vals, kw):
    return [_ewa(-1.0, 0.0)], [cv.tensor_arg(node, vals)]


def _h_maximum(cv, node, vals, kw, minimum: bool = False):
    a, b = vals[0], vals[1] if len(vals) > 1 else ("c", None)
    if a[0] != "t" or b[0] != "t":
        raise _unsupported("max/min of an activation and a constant (use clamp)" if b[0] == "c" and b[1] is not None
                           else "max/min reduction over an axis", cv.where(node))
    # max(a, b) = b + relu(a - b); min(a, b) = b - relu(b - a)
    base = node.name
    diff, act = f"{base}/diff", f"{base}/relu"
    cv.spec.append((diff, L.Sum((1.0, -1.0) if not minimum else (-1.0, 1.0)), [a[1], b[1]]))
    cv.spec.append((act, L.relu(), [diff]))
    cv.sources[diff] = cv.sources[act] = f"{cv.where(node)} ({'minimum' if minimum else 'maximum'})"
    return [L.Sum((1.0, -1.0 if minimum else 1.0))], [b[1], act]


def _h_cat(cv, node, vals, kw):
    items = vals[0]
    if items[0] != "list" or any(v[0] != "t" for v in items[1]):
        raise _unsupported("cat of constants and activations", cv.where(node))
    dim = int(kw.get("dim", vals[1][1] if len(vals) > 1 else 0))
    full_rank = len(cv.out_shape(node)) + 1
    dim = dim % full_rank
    if dim == 0:
        raise ConversionError(f"{cv.where(node)} concatenates along the batch axis; maso maps samples one by one.")
    return [L.Concat(dim - 1)], [v[1] for v in items[1]]


def _h_mean(cv, node, vals, kw):
    src = cv.tensor_arg(node, vals)
    dims = kw.get("dim", vals[1][1] if len(vals) > 1 else None)
    keep = bool(kw.get("keepdim", vals[2][1] if len(vals) > 2 else False))
    full_rank = len(cv.shape_of[src]) + 1
    if dims is None:
        raise ConversionError(f"{cv.where(node)} averages over the batch axis; give the axes (e.g. dim=(2, 3)).")
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = tuple(d % full_rank for d in dims)
    if 0 in dims:
        raise ConversionError(f"{cv.where(node)} averages over the batch axis; maso maps samples one by one.")
    return [L.Mean(tuple(d - 1 for d in dims), keep)], [src]


def _pool_nd(name: str) -> int:
    return int(name[-2])


def _h_maxpool(cv, node, vals, kw):
    name = str(getattr(node.target, "__name__", node.target)).lstrip("_")
    nd = _pool_nd(name.replace("_with_indices", ""))
    get = _arg_getter(vals, kw)
    if get(6, "return_indices", False):
        raise _unsupported("max_pool with return_indices=True", cv.where(node))
    k = get(1, "kernel_size")
    return [L.MaxPool(nd, k, get(2, "stride", None) or k, get(3, "padding", 0), get(4, "dilation", 1),
                      bool(get(5, "ceil_mode", False)))], [cv.tensor_arg(node, vals)]


def _h_avgpool(cv, node, vals, kw):
    name = str(getattr(node.target, "__name__", node.target)).lstrip("_")
    nd = _pool_nd(name)
    get = _arg_getter(vals, kw)
    k = get(1, "kernel_size")
    return [L.AvgPool(nd, k, get(2, "stride", None) or k, get(3, "padding", 0), bool(get(4, "ceil_mode", False)),
                      bool(get(5, "count_include_pad", True)), get(6, "divisor_override", None))], [
        cv.tensor_arg(node, vals)]


def _h_adaptive_avg(cv, node, vals, kw):
    name = str(getattr(node.target, "__name__", node.target)).lstrip("_")
    nd = _pool_nd(name)
    return [L.AdaptiveAvgPool(nd, _arg_getter(vals, kw)(1, "output_size"))], [cv.tensor_arg(node, vals)]


def _h_linear(cv, node, vals, kw):
    get = _arg_getter(vals, kw)
    w, b = get(1, "weight"), get(2, "bias", None)
    if not isinstance(w, torch.Tensor) or (b is not None and not isinstance(b, torch.Tensor)):
        raise _unsupported("linear with activation-dependent weights", cv.where(node))
    return [L.Dense(_np(w), _np(b, w.shape[0]))], [cv.tensor_arg(node, vals)]


def _h_conv(cv, node, vals, kw):
    get = _arg_getter(vals, kw)
    w, b = get(1, "weight"), get(2, "bias", None)
    if not isinstance(w, torch.Tensor):
        raise _unsupported("conv with activation-dependent weights", cv.where(node))
    return [_conv_layer(w, b, get(3, "stride", 1), get(4, "padding", 0), get(5, "dilation", 1),
                        get(6, "groups", 1))], [cv.tensor_arg(node, vals)]


def _h_matmul(cv, node, vals, kw):
    """``x @ W`` with a fixed ``W`` of shape (in, out): a dense layer on the last axis."""
    src = cv.tensor_arg(node, vals)
    w = vals[1][1] if len(vals) > 1 and vals[1][0] == "c" else None
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise _unsupported("matmul of two activations (or with a non-matrix constant)", cv.where(node))
    return [L.Dense(_np(w).T, np.zeros(w.shape[1]))], [src]


def _h_addmm(cv, node, vals, kw):
    """``addmm(bias, x, W)`` (``beta * bias + alpha * x @ W``) with fixed ``bias`` and ``W``."""
    get = _arg_getter(vals, kw)
    b, w = get(0, "input"), get(2, "mat2")
    beta, alpha = get(3, "beta", 1), get(4, "alpha", 1)
    if vals[1][0] != "t" or not isinstance(w, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise _unsupported("addmm with activation-dependent weights or bias", cv.where(node))
    bias = np.broadcast_to(float(beta) * _np(b), (w.shape[1],))
    return [L.Dense(float(alpha) * _np(w).T, np.array(bias))], [vals[1][1]]


def _pad_layer(pad: tuple, mode: str, value: float, where: str) -> L.Pad:
    if not np.isfinite(value):
        raise _unsupported(f"padding with {value} (an infinite value: before a max-pool, use ceil_mode or the pool's "
                           "own padding instead)", where)
    return L.Pad(tuple(int(v) for v in pad), mode, float(value))


def _h_pad(cv, node, vals, kw):
    get = _arg_getter(vals, kw)
    pad, mode, value = get(1, "pad"), get(2, "mode", "constant"), get(3, "value", None)
    return [_pad_layer(tuple(pad), mode, 0.0 if value is None else float(value), cv.where(node))], \
        [cv.tensor_arg(node, vals)]


def _h_getitem(cv, node, vals, kw):
    src = cv.tensor_arg(node, vals)
    idx = vals[1][1]
    idx = idx if isinstance(idx, tuple) else (idx,)
    if not idx or not (isinstance(idx[0], slice) and idx[0] == slice(None)):
        raise _unsupported("indexing that selects along the batch axis", cv.where(node))
    if any(isinstance(i, torch.Tensor) or i is None or i is Ellipsis for i in idx[1:]):
        raise _unsupported("advanced indexing (tensors, None, ...)", cv.where(node))
    return [L.Index(tuple(idx[1:]))], [src]


def _arg_getter(vals: list, kw: dict) -> Callable[..., Any]:
    def get(i: int, key: str, default: Any = ...) -> Any:
        if key in kw:
            v = kw[key]
            return v[1] if isinstance(v, tuple) and len(v) == 2 and v[0] == "c" else v
        if i < len(vals):
            return vals[i][1]
        if default is ...:
            raise ConversionError(f"Missing argument {key!r}.")
        return default

    return get


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "add": _h_add, "iadd": _h_add,
    "sub": lambda cv, n, v, k: _h_add(cv, n, v, k, sign=-1.0), "isub": lambda cv, n, v, k: _h_add(cv, n, v, k, -1.0),
    "mul": _h_mul, "imul": _h_mul,
    "truediv": lambda cv, n, v, k: _h_mul(cv, n, v, k, divide=True),
    "div": lambda cv, n, v, k: _h_mul(cv, n, v, k, divide=True),
    "neg": _h_neg,
    "flatten": _h_reshape, "view": _h_reshape, "reshape": _h_reshape, "squeeze": _h_reshape,
    "unsqueeze": _h_reshape, "unflatten": _h_reshape,
    "contiguous": _h_identity, "clone": _h_identity, "detach": _h_identity,
    "dropout": _h_dropout, "dropout1d": _h_dropout, "dropout2d": _h_dropout, "dropout3d": _h_dropout,
    "relu": _h_relu, "abs": _h_abs, "leaky_relu": _h_leaky, "clamp": _h_clamp, "clip": _h_clamp,
    "hardtanh": _h_hardtanh, "relu6": _h_relu6,
    "gelu": _h_gelu, "silu": lambda cv, n, v, k: ([S.silu()], [cv.tensor_arg(n, v)]),
    "sigmoid": lambda cv, n, v, k: ([S.sigmoid()], [cv.tensor_arg(n, v)]),
    "tanh": lambda cv, n, v, k: ([S.tanh()], [cv.tensor_arg(n, v)]),
    "maximum": _h_maximum, "max": _h_maximum, "fmax": _h_maximum,
    "minimum": lambda cv, n, v, k: _h_maximum(cv, n, v, k, minimum=True),
    "min": lambda cv, n, v, k: _h_maximum(cv, n, v, k, minimum=True),
    "cat": _h_cat, "concat": _h_cat, "concatenate": _h_cat,
    "mean": _h_mean,
    "max_pool1d": _h_maxpool, "max_pool2d": _h_maxpool, "max_pool3d": _h_maxpool,
    "max_pool1d_with_indices": _h_maxpool, "max_pool2d_with_indices": _h_maxpool,
    "avg_pool1d": _h_avgpool, "avg_pool2d": _h_avgpool, "avg_pool3d": _h_avgpool,
    "adaptive_avg_pool1d": _h_adaptive_avg, "adaptive_avg_pool2d": _h_adaptive_avg,
    "adaptive_avg_pool3d": _h_adaptive_avg,
    "linear": _h_linear, "matmul": _h_matmul, "mm": _h_matmul, "addmm": _h_addmm, "conv1d": _h_conv, "conv2d": _h_conv, "conv3d": _h_conv,
    "getitem": _h_getitem, "pad": _h_pad,
}


def _fold_batchnorm(spec: list, output: str) -> tuple[list, str]:
    """Fold per-channel ElementwiseAffine nodes into the Dense/Conv node they follow when nothing else reads it."""
    readers: dict[str, int] = {}
    for _, _, ins in spec:
        for s in ins:
            readers[s] = readers.get(s, 0) + 1
    readers[output] = readers.get(output, 0) + 1
    by_name = {name: i for i, (name, _, _) in enumerate(spec)}
    rename: dict[str, str] = {}
    out: list = []
    dropped: set[str] = set()
    new_layers: dict[str, L.Layer] = {}
    for name, layer, ins in spec:
        ins = [rename.get(s, s) for s in ins]
        if isinstance(layer, L.ElementwiseAffine) and len(ins) == 1 and ins[0] in by_name:
            prev_name = ins[0]
            prev = new_layers.get(prev_name, spec[by_name[prev_name]][1])
            folded = _fold(prev, layer)
            if folded is not None and readers.get(prev_name, 0) == 1 and prev_name not in dropped:
                new_layers[prev_name] = folded
                rename[name] = prev_name
                dropped.add(name)
                continue
        out.append([name, layer, ins])
    result = [(n, new_layers.get(n, lay), ins) for n, lay, ins in out]
    return result, rename.get(output, output)


def _fold(prev: L.Layer, ea: L.ElementwiseAffine) -> L.Layer | None:
    scale, shift = ea.scale, ea.shift
    if isinstance(prev, L.Dense):
        out = prev.weight.shape[0]
        if scale.ndim > 1 or shift.ndim > 1 or scale.size not in (1, out) or shift.size not in (1, out):
            return None
        s = np.broadcast_to(scale, (out,))
        return L.Dense(prev.weight * s[:, None], prev.bias * s + np.broadcast_to(shift, (out,)))
    if isinstance(prev, L.Conv):
        c = prev.weight.shape[0]
        nd = prev.ndim

        def chan(v: np.ndarray) -> np.ndarray | None:
            if v.size == 1:
                return np.full(c, float(v.reshape(-1)[0]))
            if v.ndim == nd + 1 and v.shape[0] == c and all(s == 1 for s in v.shape[1:]):
                return v.reshape(c)
            return None

        s_c, t_c = chan(scale), chan(shift)
        if s_c is None or t_c is None:
            return None
        return L.Conv(prev.weight * s_c.reshape(c, *([1] * (nd + 1))), prev.bias * s_c + t_c, prev.stride,
                      prev.padding,
                      prev.dilation, prev.groups, prev.padding_mode, prev.pad)
    return None


def _example_batch(example_input: Any, dtype: torch.dtype, device: torch.device, batch_dims: int = 1) -> torch.Tensor:
    """``example_input`` as a batch tensor of the model's dtype, refusing what cannot be one sample or more."""
    if isinstance(example_input, (tuple, list, torch.Size)) and example_input and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in example_input):
        shape = tuple(int(s) for s in example_input)
        if any(s < 1 for s in shape):
            raise ShapeError(f"example_input given as a shape must hold positive sizes. Got {shape}.")
        return torch.zeros((1, *shape), dtype=dtype, device=device)
    if isinstance(example_input, torch.Tensor):
        t = example_input.detach()
    else:
        try:
            a = np.asarray(example_input)
        except Exception as e:  # ragged lists and the like
            raise ShapeError(f"example_input must be a tensor or array of shape (n, *input_shape). "
                             f"Got {type(example_input).__name__}.") from e
        if a.dtype.kind not in "biuf":
            raise ShapeError(f"example_input must hold real numbers. Got dtype {a.dtype} "
                             f"({type(example_input).__name__}).")
        t = torch.from_numpy(np.array(a, dtype=np.float64 if a.dtype.kind != "f" else a.dtype))
    if not (t.is_floating_point() or t.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise ShapeError(f"example_input must hold real numbers. Got dtype {str(t.dtype).replace('torch.', '')}.")
    if t.dim() < 2:
        raise ShapeError(
            f"example_input must be a batch of shape (n, *input_shape); got shape {tuple(t.shape)}. "
            "Add a batch axis, e.g. x.unsqueeze(0)."
        )
    if t.numel() == 0:
        raise ShapeError(
            f"example_input of shape {tuple(t.shape)} is empty; from_torch needs at least one sample of a "
            "non-empty shape to trace the model and check the conversion, e.g. torch.zeros(1, *input_shape)."
        )
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ShapeError("example_input contains NaN or infinite values; the conversion is checked on it, so "
                         "give finite values (zeros do).")
    return _flatten_batch(t.to(device=device, dtype=dtype), batch_dims)


def from_torch(module: nn.Module, example_input: Any, *, start: str | None = None, stop: str | None = None,
               batch_dims: int = 1, rtol: float = 1e-9) -> Network:
    """Convert a piecewise-affine PyTorch module (or the part of a model between two named modules) into a
    [`maso.Network`][].

    The module is traced with ``torch.fx`` (``nn.Sequential`` and modules with residual or concatenation
    graphs alike; a module called twice, such as ResNet's one ``relu``, gives two nodes; in-place operations are
    read as the out-of-place ones), shapes are propagated with ``example_input``, eval-mode batch normalisation
    is folded into the convolution or linear layer before it, and dropout/identity are removed. transformers'
    ``Conv1D`` (GPT-2), ``addmm`` and products with a fixed matrix are dense layers. The result is checked
    against a float64 copy of the module on ``example_input``.

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode, with finite weights.
    example_input : tensor or array of shape (n, *input_shape), or a tuple input_shape
        A batch the module accepts (its values only matter for the final check, which uses its first 64
        samples). With ``start``/``stop``: the
        whole model's usual input (images, token ids...).
    start : str, optional
        Convert the part of ``module`` after the submodule of this name (a path of ``module.named_modules()``,
        e.g. ``"mixed4a"`` or ``"transformer.h.5.ln_2"``): the network's input is that submodule's output.
        What comes before it (a stem that is not piecewise affine: local response normalisation, embeddings,
        LayerNorm) is cut away. The part must depend on the model's input only through that output.
    stop : str, optional
        End at the output of the submodule of this name instead of the model's output (cuts away heads that are
        not piecewise affine, such as softmax).
    batch_dims : int, default=1
        Leading axes of the (cut) example that are batch axes. Transformer activations ``(batch, seq, d)`` act
        token by token: ``batch_dims=2`` converts the module on ``(d,)``, so each token is one input. (With 1,
        the whole sequence ``(seq, d)`` is one input.) The network then accepts any number of leading batch
        axes: ``net.codes(acts)`` of ``(batch, seq, d)`` activations gives ``(batch, seq, n_units)``.
    rtol : float, default=1e-9
        Tolerance of the final check, relative to the output's scale: the network must reproduce a float64 copy
        of the module (so a float32 model on a GPU with TF32, or a float16/bfloat16 model, is checked at float64
        precision, not at its own). Where no float64 copy can be made, the module itself is compared at its own
        precision (at least 16 units in the last place of its dtype).

    Returns
    -------
    Network

    Raises
    ------
    UnsupportedLayerError
        A module or function that is neither piecewise affine nor a supported soft unit (LayerNorm, softmax,
        attention, Softplus...), with its path in the model and what to do instead.
    SubnetworkError
        ``start``/``stop`` name no submodule, or the part between them also reads values from before ``start``.
    TrainingModeError
        Batch normalisation or dropout in training mode.
    InvalidWeightsError
        NaN or infinite parameters or buffers.
    ShapeError
        ``example_input`` does not fit the module.
    ConversionError
        The module cannot be traced (data-dependent control flow), mixes samples of a batch, or the converted
        network does not reproduce it.

    Examples
    --------
    >>> import torch, maso
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
    >>> net = maso.from_torch(model, torch.zeros(1, 2), stop="2")   # the logit, before the sigmoid
    >>> net.n_units, net.output_shape
    (8, (1,))
    >>> tail = maso.from_torch(model, torch.zeros(1, 2), start="1", stop="2")   # after the ReLU
    >>> tail.input_shape, tail.n_units
    ((8,), 0)
    """
    if not isinstance(module, nn.Module):
        raise ConversionError(f"from_torch needs a torch.nn.Module. Got {type(module).__name__}.")
    rtol = check_float(rtol, "rtol", "from_torch", minimum=0.0, maximum=1.0, strict=True)
    batch_dims = check_int(batch_dims, "batch_dims", "from_torch", minimum=1)
    for what, name in (("start", start), ("stop", stop)):
        if name is not None and not isinstance(name, str):
            raise ParameterError(f"The {what!r} parameter of from_torch must be a module name (str) or None. Got "
                                 f"{name!r} ({type(name).__name__}).")
    _check_module(module)
    param = next(iter(module.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    if start is None and stop is None:
        if _refused(module):  # a bare LSTM, LayerNorm...: say what it is, not how tracing failed
            raise _unsupported(type(module).__name__, "")
        example = _example_batch(example_input, dtype, device, batch_dims)
        fn: nn.Module = module
        gm = _trace(module, set())
        described = type(module).__name__
    else:
        from maso.torch._cut import cut

        gm, example = cut(module, example_input, start, stop, _trace)
        example = _flatten_batch(example, batch_dims)
        fn = gm
        described = f"{type(module).__name__} between {start or 'its input'} and {stop or 'its output'}"
    # tracing needs one sample and the check a few: a big batch of activations costs time, not confidence
    example = example[:_CHECK_SAMPLES]
    net = _convert(gm, example, described)
    _check_conversion(net, fn, example, rtol, described)
    return net


#: At most this many samples of ``example_input`` are traced and checked.
_CHECK_SAMPLES = 64


def _flatten_batch(t: torch.Tensor, batch_dims: int) -> torch.Tensor:
    if batch_dims == 1:
        return t
    if t.dim() <= batch_dims:
        raise ShapeError(f"batch_dims={batch_dims} leaves no per-input axes in an example of shape {tuple(t.shape)}.")
    return t.reshape(-1, *t.shape[batch_dims:])


def _trace(module: nn.Module, leaves: set[str]) -> fx.GraphModule:
    """The module as an fx graph; submodules named in ``leaves`` stay single calls (they are cut away later)."""
    tracer = _Tracer(leaves)
    try:
        graph = tracer.trace(module)
    except Exception as e:
        for path, m in module.named_modules():  # a refused module inside is the likely reason: name it
            if path and _refused(m) and path not in leaves:
                raise _unsupported(type(m).__name__, path) from e
        raise ConversionError(
            f"torch.fx could not trace {type(module).__name__}: {e}. Models with data-dependent control flow "
            "cannot be converted; move the branching out of forward() or convert the piecewise-affine parts."
        ) from e
    return fx.GraphModule(tracer.root, graph)


def _convert(gm: fx.GraphModule, example: torch.Tensor, described: str) -> Network:
    _prescan(gm)
    try:
        # ShapeProp prints the traceback of a failing node to stderr before raising: keep it for the message only
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(example)
    except Exception as e:
        cause = e.__cause__ if e.__cause__ is not None else e
        raise ShapeError(
            f"example_input of shape {tuple(example.shape)} does not fit {described}: "
            f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
        ) from e
    cv = _Converter(gm, int(example.shape[0]))
    cv.shape_of["input"] = tuple(example.shape[1:])
    for n in gm.graph.nodes:  # remember the shape of every tensor value
        meta = n.meta.get("tensor_meta")
        if meta is not None and hasattr(meta, "shape"):
            cv.shape_of[str(n.target) if n.op == "call_module" else n.name] = tuple(meta.shape[1:])
    output = cv.run()
    spec, output = _fold_batchnorm(cv.spec, output)
    return Network.from_graph(tuple(example.shape[1:]), spec, output, sources=cv.sources)


def _float64_copy(fn: nn.Module) -> nn.Module | None:
    """A float64 copy of ``fn`` on the CPU, or None where the module cannot be copied or cast."""
    try:
        return copy.deepcopy(fn).to(device="cpu", dtype=torch.float64)
    except Exception:  # noqa: BLE001  # pragma: no cover - exotic modules (custom __deepcopy__, non-castable buffers)
        return None


def _check_conversion(net: Network, fn: nn.Module, example: torch.Tensor, rtol: float, described: str) -> None:
    """The network must reproduce the module: a float64 copy of it at ``rtol``, else the module itself at its own
    precision. Raises ConversionError otherwise, and when the module's own output is not finite."""
    with torch.no_grad():
        raw = fn(example)
    if isinstance(raw, torch.Tensor) and raw.is_floating_point() and not bool(torch.isfinite(raw).all()):
        hint = ("Convert a float64 copy (model.double(), with a float64 example_input), or check the weights for "
                "huge values." if raw.dtype != torch.float64 else "Check the weights and the example for huge values.")
        raise ConversionError(
            f"{described}'s own output on example_input is not finite (in {raw.dtype}, whose largest value is "
            f"{torch.finfo(raw.dtype).max:.3g}), so the conversion cannot be checked. {hint}")
    ref = _float64_copy(fn)
    x64 = example.detach().to(device="cpu", dtype=torch.float64)
    with torch.no_grad():
        if ref is not None:
            want, tol, against = ref(x64), rtol, "a float64 copy of it"
        else:
            want = raw.detach().to(device="cpu", dtype=torch.float64)
            tol = max(rtol, 16 * torch.finfo(raw.dtype).eps)
            against = f"it (in {raw.dtype})"
        got = net(x64)
    assert isinstance(got, torch.Tensor)  # a tensor in, a tensor out
    scale = float(want.abs().max()) if want.numel() else 0.0
    if got.shape != want.shape or not torch.allclose(got, want, rtol=tol, atol=tol * (1 + scale)):
        err = float((got - want).abs().max()) if got.shape == want.shape and got.numel() else float("nan")
        raise ConversionError(
            f"The converted network does not reproduce {described} on example_input: against {against}, the "
            f"largest difference is {err:.3g} (tolerance {tol:g} of the output scale {scale:.3g}; shapes "
            f"{tuple(got.shape)} vs {tuple(want.shape)}). This is a maso bug or an operation whose semantics maso "
            "misread; please report it with the model."
        )


def mlp(widths: Sequence[int], *, seed: int, activation: str = "relu", **kwargs: Any) -> Network:
    """A toy fully connected network with torch's default initialisation (see [`maso.nn.mlp_module`][]).

    Parameters
    ----------
    widths : sequence of int
        ``[d_in, hidden_1, ..., d_out]``.
    seed : int
        Seed (torch's global RNG is left untouched).
    activation : {"relu", "leaky_relu", "abs", "maxout"}
    **kwargs
        ``negative_slope`` or ``pieces``, passed to [`maso.nn.mlp_module`][].

    Examples
    --------
    >>> net = maso.mlp([2, 16, 16, 1], seed=0)
    >>> net.n_units, net.input_dim, net.output_dim
    (32, 2, 1)
    """
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__") or len(widths) < 2 or any(
            isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)) or w < 1 for w in widths):
        raise ParameterShapeError(f"widths must be a sequence [d_in, hidden..., d_out] of at least two positive "
                                  f"integers. Got {widths!r}.")
    seed = check_int(seed, "seed", "maso.mlp", minimum=0, maximum=2**64 - 1)
    module = mnn.mlp_module(widths, seed=seed, activation=activation, dtype=torch.float64, **kwargs)
    return from_torch(module, torch.zeros(1, int(widths[0]), dtype=torch.float64))

