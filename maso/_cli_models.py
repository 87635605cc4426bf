"""The ``maso`` command on users' own models: reading a model file, points and boxes, before any work.

A model file (``--model FILE``) is one of

* a whole module saved with ``torch.save(model, FILE)``: a pickle, so loading it runs code from the file (only
  open files you trust);
* a TorchScript module (``torch.jit.save``). [`maso.from_torch`][] traces Python modules with ``torch.fx``,
  which cannot read TorchScript, so the command rebuilds the Python module when the TorchScript one is a chain
  of ``torch.nn`` / ``maso.nn`` layers (an ``nn.Sequential``, or a module whose ``forward`` calls its submodules
  one after the other, nested as deep as you like), with each layer's settings read from the attributes that
  ``torch.jit.script`` keeps or from the constants of the operation that ``torch.jit.trace`` recorded, and checks
  the rebuilt module against the TorchScript one on random inputs;
* a state dict (``torch.save(model.state_dict(), FILE)``, read with ``weights_only=True``: no code runs) with a
  builder of [`maso.nn`][maso.nn] that makes the module to load it into: ``--builder mlp_module --builder-args
  '{"widths": [2, 8, 1]}'``.

Points (``--through``, ``--from``, ``--to``, the bounds of ``--box`` and ``--window``) are one argument each:
numbers separated by commas (``0.5,-1``; a single number is a scalar) or the path of a ``.npy`` file.

Every mistake is a `UsageError` with one line that says what was wrong and what
was expected; the command turns it into exit code 2.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where used: `maso --help` stays fast
    import torch

__all__ = ["LoadedModel", "UsageError", "builders", "input_shape_of", "load_model", "parse_point", "parse_shape",
           "to_network"]


class UsageError(Exception):
    """A user mistake found by the command itself: one line on stderr, exit code 2, before any work."""


# ------------------------------------------------------------------------------------------------- points
def parse_point(text: str, what: str) -> np.ndarray:
    """A point given on the command line: ``"0.5,-1"`` (comma-separated numbers), ``"2"`` (a scalar) or the
    path of a ``.npy`` file.

    Parameters
    ----------
    text : str
    what : str
        The option it came from, for messages (``"--from"``).

    Returns
    -------
    ndarray of float64
        0-d for a scalar, 1-d for a list of numbers, the file's shape for a ``.npy`` file.

    Raises
    ------
    UsageError
        Not numbers, not finite, an unreadable or empty file.

    Examples
    --------
    >>> parse_point("0.5,-1", "--from")
    array([ 0.5, -1. ])
    >>> parse_point("2", "--box").shape
    ()
    """
    t = text.strip()
    if t.lower().endswith(".npy") or os.path.sep in t:
        if not os.path.isfile(t):
            raise UsageError(f"{what} {text!r}: no such .npy file (a point is comma-separated numbers such as "
                             "0.5,-1, or a .npy file).")
        try:
            a = np.load(t, allow_pickle=False)
        except Exception as e:  # not a .npy file, a pickled object array, a damaged file
            raise UsageError(f"{what} {text!r} is not a readable .npy array of numbers "
                             f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}).") from None
        if a.dtype.kind not in "biuf":
            raise UsageError(f"{what} {text!r} holds {a.dtype} values; expected real numbers.")
        a = np.asarray(a, dtype=np.float64)
        if a.size == 0:
            raise UsageError(f"{what} {text!r} is an empty array; expected a point.")
    else:
        parts = t.split(",")
        try:
            a = np.array([float(p) for p in parts], dtype=np.float64)
        except ValueError:
            raise UsageError(f"{what} {text!r}: expected comma-separated numbers such as 0.5,-1 (no spaces), or "
                             "a .npy file.") from None
        if len(parts) == 1:
            a = a.reshape(())
    if not np.all(np.isfinite(a)):
        raise UsageError(f"{what} {text!r} holds NaN or infinite values; expected finite numbers.")
    return a


def parse_shape(text: str) -> tuple[int, ...]:
    """``--input-shape``: comma-separated positive sizes, without the batch axis (``"1,28,28"``).

    Examples
    --------
    >>> parse_shape("1,28,28")
    (1, 28, 28)
    """
    try:
        shape = tuple(int(p) for p in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise UsageError(f"--input-shape {text!r}: expected comma-separated positive sizes without the batch axis, "
                         "such as 3 or 1,28,28.")
    return shape


# ------------------------------------------------------------------------------------------------- models
@dataclass
class LoadedModel:
    """A model read from a file, as a Python ``torch.nn.Module`` in eval mode.

    Attributes
    ----------
    module : torch.nn.Module
    kind : str
        ``"module"`` (torch.save of a whole module), ``"torchscript"`` or ``"state_dict"``.
    path : str
    builder : str or None
        The ``maso.nn`` builder of a state dict.
    script : torch.jit.ScriptModule or None
        The TorchScript module that ``module`` was rebuilt from (checked against it by
        `to_network`).
    """

    module: Any
    kind: str
    path: str
    builder: str | None = None
    script: Any = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        """What the JSON output says about the model.

        Examples
        --------
        >>> import torch
        >>> LoadedModel(torch.nn.Linear(2, 1), "module", "net.pt").describe()["kind"]
        'module'
        """
        return {"file": self.path, "kind": self.kind, "builder": self.builder,
                "class": type(self.module).__name__ if self.script is None else self.script.original_name}


def builders() -> dict[str, Any]:
    """The ``maso.nn`` functions and classes that ``--builder`` accepts, by name.

    Examples
    --------
    >>> "mlp_module" in builders()
    True
    """
    import torch

    from maso import nn as mnn

    out = {}
    for name in mnn.__all__:
        obj = getattr(mnn, name)
        if inspect.isclass(obj) and issubclass(obj, torch.nn.Module) or inspect.isfunction(obj):
            out[name] = obj
    return out


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else 'no details'}"


def _is_torchscript(path: str) -> bool:
    """A TorchScript archive: a zip whose members include ``<name>/code/`` (torch.save's zips have none)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist()[:10_000])
    except (zipfile.BadZipFile, OSError):
        return False


def load_model(path: str, *, builder: str | None = None, builder_args: str | None = None) -> LoadedModel:
    """Read ``--model FILE`` (see the module docstring for the three kinds of file).

    Parameters
    ----------
    path : str
    builder : str, optional
        A name of `builders`, for a state dict.
    builder_args : str, optional
        A JSON object of keyword arguments of the builder (``dtype`` as a string such as ``"float64"``; ``seed``
        defaults to 0: the weights come from the file).

    Returns
    -------
    LoadedModel
        The module in eval mode (batch normalisation uses its running statistics, dropout is off).

    Raises
    ------
    UsageError
        A missing or unreadable file, a file that holds no model, a state dict without a builder or that does
        not fit it, a TorchScript module that cannot be rebuilt.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> with tempfile.TemporaryDirectory() as d:
    ...     torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU()), os.path.join(d, "m.pt"))
    ...     load_model(os.path.join(d, "m.pt")).kind
    'module'
    """
    import torch

    if builder_args is not None and builder is None:
        raise UsageError("--builder-args needs --builder (the maso.nn builder of a state dict).")
    if not os.path.exists(path):
        raise UsageError(f"--model {path!r}: no such file.")
    if os.path.isdir(path):
        raise UsageError(f"--model {path!r} is a directory; give the file written by torch.save or torch.jit.save.")
    if not os.access(path, os.R_OK):
        raise UsageError(f"--model {path!r}: permission denied.")
    if _is_torchscript(path):
        if builder is not None:
            raise UsageError(f"--model {path!r} is a TorchScript module, not a state dict: drop --builder.")
        try:
            with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; reading it is what was asked
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                script = torch.jit.load(path, map_location="cpu")
        except Exception as e:
            raise UsageError(f"--model {path!r}: torch.jit.load could not read it ({_first_line(e)}).") from None
        return LoadedModel(_rebuild(script, path), "torchscript", path, script=script)
    obj = _torch_load(path)
    if isinstance(obj, dict):  # a training checkpoint {"model_state_dict": ..., "epoch": ..., "optimizer...": ...}
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), (dict, torch.nn.Module)):
                obj = obj[key]
                break
    if isinstance(obj, torch.nn.Module):
        if builder is not None:
            raise UsageError(f"--model {path!r} holds a whole {type(obj).__name__} module, not a state dict: drop "
                             "--builder.")
        if isinstance(obj, torch.jit.ScriptModule):
            return LoadedModel(_rebuild(obj, path), "torchscript", path, script=obj)
        return LoadedModel(obj.eval(), "module", path)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if builder is None:
            raise UsageError(f"--model {path!r} holds a state dict (parameter names to tensors), not a module: name "
                             "the maso.nn builder of its module, e.g. --builder mlp_module --builder-args "
                             "'{\"widths\": [2, 8, 1]}' (see maso regions --help), or save the whole module with "
                             "torch.save(model, FILE).")
        return LoadedModel(_build(builder, builder_args, obj, path), "state_dict", path, builder=builder)
    what = f"a {type(obj).__name__}" if not isinstance(obj, dict) else "a dict that is not a state dict"
    raise UsageError(f"--model {path!r} holds {what}, not a model: expected torch.save(model), "
                     "torch.jit.save(scripted) or torch.save(model.state_dict()) with --builder.")


def _torch_load(path: str) -> Any:
    """torch.load: first with ``weights_only=True`` (state dicts; no code runs), then, for a whole module, as the
    full pickle it is (which runs code from the file: --help says so)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower() and "weights_only" not in str(e):
            raise UsageError(f"--model {path!r} is not a file torch can read ({_first_line(e)}); expected "
                             "torch.save(model), torch.jit.save or a state dict.") from None
    except Exception as e:  # a text file, a truncated zip...
        raise UsageError(f"--model {path!r} is not a file torch can read ({_first_line(e)}); expected "
                         "torch.save(model), torch.jit.save or a state dict.") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as e:  # the pickle names a class that is not importable here
        raise UsageError(f"--model {path!r} could not be unpickled ({_first_line(e)}); a whole module needs its "
                         "class importable here (run from its project, or save it with torch.jit.script).") from None
    except Exception as e:  # not a pickle at all: a text file, a damaged file
        raise UsageError(f"--model {path!r} is not a file torch can read ({_first_line(e)}); expected "
                         "torch.save(model), torch.jit.save or a state dict.") from None


def _build(name: str, args_text: str | None, state: dict, path: str) -> Any:
    """The builder's module, with the state dict loaded (strict: every name and shape must match)."""
    import torch

    table = builders()
    if name not in table:
        raise UsageError(f"--builder {name!r}: not a maso.nn builder; known: {', '.join(sorted(table))}.")
    fn = table[name]
    try:
        kwargs = json.loads(args_text) if args_text is not None else {}
    except json.JSONDecodeError as e:
        raise UsageError(f"--builder-args is not JSON ({e.msg} at character {e.pos}); expected an object such "
                         "as '{\"widths\": [2, 8, 1]}'.") from None
    if not isinstance(kwargs, dict):
        raise UsageError(f"--builder-args must be a JSON object of keyword arguments; got {type(kwargs).__name__}.")
    if isinstance(kwargs.get("dtype"), str):
        dt = getattr(torch, kwargs["dtype"].replace("torch.", ""), None)
        if not isinstance(dt, torch.dtype):
            raise UsageError(f"--builder-args: dtype {kwargs['dtype']!r} is not a torch dtype (e.g. \"float64\").")
        kwargs["dtype"] = dt
    sig = inspect.signature(fn)
    if "seed" in sig.parameters and "seed" not in kwargs:
        kwargs["seed"] = 0  # the initial weights are replaced by the file's
    try:
        sig.bind(**kwargs)
    except TypeError as e:
        raise UsageError(f"--builder {name}: {e} (its arguments: {sig}).") from None
    try:
        module = fn(**kwargs)
    except Exception as e:
        raise UsageError(f"--builder {name} with {args_text}: {_first_line(e)}.") from None
    dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(dtypes) == 1 and "dtype" not in kwargs:  # load_state_dict would round float64 weights to float32
        module = module.to(dtypes.pop())
    try:
        module.load_state_dict(state, strict=True)
    except Exception as e:
        raise UsageError(f"--model {path!r} does not fit --builder {name} {args_text or ''}: "
                         f"{' '.join(str(e).split())}") from None
    return module.eval()


# --------------------------------------------------------------------------------------- TorchScript modules
def _chain(script: Any) -> list[str] | None:
    """The names of the submodules that ``script.forward`` calls one after the other, feeding each the previous
    one's output; None when its graph does anything else."""
    try:
        graph = script.graph
    except Exception:
        return None
    inputs = list(graph.inputs())
    if len(inputs) != 2:
        return None
    self_id, current = inputs[0].unique(), inputs[1].unique()
    owner: dict[int, str] = {}
    order: list[str] = []
    for node in graph.nodes():
        kind = node.kind()
        args = list(node.inputs())
        if kind == "prim::GetAttr" and len(args) == 1 and args[0].unique() == self_id:
            owner[node.output().unique()] = node.s("name")
        elif (kind == "prim::CallMethod" and node.s("name") == "forward" and len(args) == 2
              and args[0].unique() in owner and args[1].unique() == current):
            order.append(owner[args[0].unique()])
            current = node.output().unique()
        else:
            return None
    outputs = list(graph.outputs())
    return order if len(outputs) == 1 and outputs[0].unique() == current else None


def _python_class(script: Any) -> type[torch.nn.Module] | None:
    """The torch.nn or maso.nn class a TorchScript module was made from (only those namespaces: nothing is
    imported on the file's word)."""
    import torch

    try:
        qualified = script._c._type().qualified_name()
    except Exception:
        return None
    parts = [p for p in qualified.split(".") if not p.startswith("___torch_mangle")]
    if parts[:1] == ["__torch__"]:
        parts = parts[1:]
    module_name, cls_name = ".".join(parts[:-1]), parts[-1] if parts else ""
    if not (module_name.startswith("torch.nn.") or module_name == "maso.nn"):
        return None
    cls = getattr(sys.modules.get(module_name), cls_name, None)
    return cls if inspect.isclass(cls) and issubclass(cls, torch.nn.Module) else None


def _derived(name: str, state: dict[str, Any], groups: int) -> Any:
    """Constructor arguments that the weights' shapes give (torch.jit.trace keeps no hyper-parameters)."""
    w = state.get("weight")
    if name == "bias":
        return state.get("bias") is not None
    if w is None:
        rm = state.get("running_mean")
        return int(rm.shape[0]) if name == "num_features" and rm is not None else None
    if name in ("in_features",) and w.dim() == 2:
        return int(w.shape[1])
    if name in ("out_features", "out_channels", "num_features"):
        return int(w.shape[0])
    if name == "in_channels" and w.dim() >= 3:
        return int(w.shape[1]) * groups
    if name == "kernel_size" and w.dim() >= 3:
        return tuple(int(s) for s in w.shape[2:])
    if name == "num_parameters":
        return int(w.numel())
    return None


#: Where a traced layer's hyper-parameters sit among the inputs of its one aten operation (torch.jit.trace keeps
#: them only there, as constants): operation -> (argument index, constructor argument) pairs.
_TRACED_ARGS: dict[str, tuple[tuple[int, str], ...]] = {
    "aten::_convolution": ((3, "stride"), (4, "padding"), (5, "dilation"), (8, "groups")),
    "aten::leaky_relu": ((1, "negative_slope"),),
    "aten::hardtanh": ((1, "min_val"), (2, "max_val")),
    "aten::flatten": ((1, "start_dim"), (2, "end_dim")),
    "aten::batch_norm": ((6, "momentum"), (7, "eps")),
    **{f"aten::max_pool{n}d": ((1, "kernel_size"), (2, "stride"), (3, "padding"), (4, "dilation"), (5, "ceil_mode"))
       for n in (1, 2, 3)},
    **{f"aten::avg_pool{n}d": ((1, "kernel_size"), (2, "stride"), (3, "padding"), (4, "ceil_mode"),
                                (5, "count_include_pad")) for n in (1, 2, 3)},
}


def _constant(value: Any) -> Any:
    """A graph value that is a constant or a list of constants, as Python; raises ValueError otherwise."""
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        return tuple(_constant(v) for v in node.inputs())
    raise ValueError(node.kind())


def _traced_settings(script: Any) -> dict[str, Any]:
    """Hyper-parameters of a layer read from the constants of its graph (what torch.jit.trace keeps of them)."""
    try:
        nodes = [n for n in script.graph.nodes() if n.kind().startswith("aten::")]
    except Exception:
        return {}
    found: dict[str, Any] = {}
    for node in nodes:
        args = list(node.inputs())
        for i, name in _TRACED_ARGS.get(node.kind(), ()):
            try:
                found[name] = _constant(args[i])
            except (IndexError, ValueError, RuntimeError):
                pass
    return found


def _rebuild_leaf(script: Any, where: str, path: str) -> Any:
    cls = _python_class(script)
    if cls is None:
        raise UsageError(f"--model {path!r} is a TorchScript module whose layer {where or '(the model)'} "
                         f"({getattr(script, 'original_name', '?')}) is not a torch.nn or maso.nn layer, so maso "
                         "cannot rebuild it as a Python module (maso.from_torch cannot read TorchScript): save the "
                         "Python model with torch.save(model, FILE), or its state_dict with --builder.")
    state = dict(script.state_dict())
    kwargs: dict[str, Any] = {}
    traced = _traced_settings(script)
    groups = script.groups if _has_attr(script, "groups") else traced.get("groups", 1)
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name in ("device", "dtype"):
            continue
        if name != "bias" and _has_attr(script, name):  # torch.jit.script keeps the layer's attributes
            value = getattr(script, name)
            kwargs[name] = tuple(value) if isinstance(value, list) else value
            continue
        if name in traced:  # torch.jit.trace keeps them as constants of the layer's operation
            kwargs[name] = traced[name]
            continue
        value = _derived(name, state, int(groups))
        if value is not None:
            kwargs[name] = value
        elif p.default is p.empty:
            raise UsageError(f"--model {path!r}: the TorchScript layer {where} ({cls.__name__}) does not keep its "
                             f"{name!r} (torch.jit.trace drops hyper-parameters), so maso cannot rebuild it: save "
                             "the model with torch.jit.script or torch.save(model, FILE), or its state_dict with "
                             "--builder.")
    try:
        leaf = cls(**kwargs)
        leaf.load_state_dict(state, strict=True)
    except Exception as e:
        raise UsageError(f"--model {path!r}: the TorchScript layer {where} ({cls.__name__}) could not be rebuilt "
                         f"({_first_line(e)}); save the model with torch.save(model, FILE) or its state_dict with "
                         "--builder.") from None
    first = next(iter(state.values()), None)
    return leaf.to(first.dtype) if first is not None and first.is_floating_point() else leaf


def _has_attr(script: Any, name: str) -> bool:
    try:
        getattr(script, name)
    except Exception:
        return False
    return True


def _rebuild(script: Any, path: str, where: str = "") -> Any:
    """A Python module computing what the TorchScript module computes (checked later, on inputs of the right
    shape, by `to_network`)."""
    import torch

    children = dict(script.named_children())
    if not children:
        return _rebuild_leaf(script, where, path).eval()
    order = _chain(script)
    if order is None:
        raise UsageError(f"--model {path!r} is a TorchScript module, which maso.from_torch cannot read, and "
                         f"{where or 'its forward'} is not a chain of layers that maso could rebuild (it does more "
                         "than call its submodules one after the other): save the Python model with "
                         "torch.save(model, FILE), or its state_dict with --builder.")
    seq = torch.nn.Sequential()
    for name in order:
        seq.add_module(name, _rebuild(children[name], path, f"{where}.{name}" if where else name))
    return seq.eval()


# ------------------------------------------------------------------------------------------------ shapes
def _first_linear_width(module: Any) -> int | None:
    """``in_features`` of the first layer with weights, when it is an ``nn.Linear`` (else None)."""
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            return int(m.in_features)
        if any(True for _ in m.parameters(recurse=False)):
            return None
    return None


def input_shape_of(loaded: LoadedModel, points: Sequence[tuple[str, np.ndarray]],
                   given: tuple[int, ...] | None) -> tuple[int, ...]:
    """The model's input shape (without the batch axis): ``--input-shape``, else a ``.npy`` point's shape or a
    list's length, else the first layer's ``in_features``; every non-scalar point must have as many numbers.

    Raises
    ------
    UsageError
        Points of different sizes, or of another size than the shape or the first layer; no way to tell.

    Examples
    --------
    >>> import torch
    >>> m = LoadedModel(torch.nn.Linear(3, 1), "module", "m.pt")
    >>> input_shape_of(m, [("--box", np.array(1.0))], None)
    (3,)
    """
    vectors = [(what, p) for what, p in points if p.ndim > 0]
    shape = given
    if shape is None:
        nd = [p for _, p in vectors if p.ndim > 1]
        if nd:
            shape = tuple(nd[0].shape)
        elif vectors:
            shape = (int(vectors[0][1].size),)
    first = _first_linear_width(loaded.module)
    if shape is None:
        if first is None:
            raise UsageError("cannot tell the model's input shape (its first layer is not nn.Linear and every point "
                             "is a scalar): give --input-shape (e.g. 1,28,28) or points with all their coordinates.")
        shape = (first,)
    size = math.prod(shape)
    for what, p in vectors:
        if p.size != size:
            raise UsageError(f"{what} has {p.size} numbers; the model's input {_shape_text(shape)} needs {size} "
                             f"(wrong dimension).")
    if first is not None and len(shape) == 1 and first != size:
        said = f"{vectors[0][0]} has {size} numbers" if vectors else f"--input-shape says {size} coordinates"
        raise UsageError(f"{said} but the model's first layer (nn.Linear) takes {first} (wrong dimension).")
    return shape


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"of shape {shape}" if len(shape) > 1 else f"of dimension {shape[0]}"


def to_network(loaded: LoadedModel, shape: tuple[int, ...]) -> Any:
    """The model as a [`maso.Network`][] on inputs of ``shape``, via [`maso.from_torch`][] (checked by it on
    random inputs). A module rebuilt from TorchScript is first checked against the TorchScript module.

    Raises
    ------
    UsageError
        The rebuilt module differs from the TorchScript one; the model does not take inputs of ``shape``.
    maso.errors.UnsupportedLayerError
        A layer that is not piecewise affine (its message says which and what to do).

    Examples
    --------
    >>> import torch
    >>> m = LoadedModel(torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU()), "module", "m.pt")
    >>> to_network(m, (2,)).n_units
    4
    """
    import torch

    import maso

    module = loaded.module
    param = next(iter(module.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    g = torch.Generator().manual_seed(0)
    example = torch.randn((8, *shape), generator=g, dtype=torch.float64).to(dtype)
    if loaded.script is not None:
        with torch.no_grad():
            try:
                want = loaded.script(example)
            except Exception as e:
                raise UsageError(f"the model does not take inputs {_shape_text(shape)}: {_first_line(e)}") from None
            try:
                got = module(example)
            except Exception:  # a rebuilt layer without its hyper-parameters (say a traced conv's padding)
                got = None
        tol = 1e-5 if dtype != torch.float64 else 1e-10
        if not (isinstance(want, torch.Tensor) and got is not None and got.shape == want.shape
                and torch.allclose(got, want, rtol=tol, atol=tol * (1 + float(want.abs().max())))):
            raise UsageError(f"--model {loaded.path!r}: the Python module rebuilt from the TorchScript one does not "
                             "reproduce it (a layer's hyper-parameters were not kept by torch.jit.trace, or a layer "
                             "computes something else): save the model with torch.jit.script or "
                             "torch.save(model, FILE), or its state_dict with --builder.")
    try:
        return maso.from_torch(module, example)
    except maso.errors.ShapeError as e:
        raise UsageError(f"the model does not take inputs {_shape_text(shape)} (give --input-shape, or points "
                         f"of the right size): {' '.join(str(e).split())}") from None
