"""The part of a PyTorch model between two named submodules, as a module of its own (``from_torch(start=...)``).

The model is run once on its usual input with hooks that record the order in which submodules start and finish
and the tensors at the cut. It is then traced with ``torch.fx``, with everything that ran before ``start`` (and
after ``stop``) kept as opaque calls, so a stem that is not piecewise affine (local response normalisation,
embeddings) never has to be understood. The graph between ``start``'s output and ``stop``'s output is cut out;
it must reach the model's input only through ``start``. Where the whole model cannot be traced (transformers
models), the modules that ran between the two, if they form a chain (each reads the previous one's output),
are used instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from maso.errors import ConversionError, ShapeError, SubnetworkError


class _Record:
    """What one hooked run of the model saw: call order, and inputs and outputs of every submodule."""

    def __init__(self) -> None:
        self.clock = 0
        self.enter: dict[str, int] = {}
        self.exit: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}

    def pre(self, name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple) -> None:
            self.clock += 1
            self.calls[name] = self.calls.get(name, 0) + 1
            if name not in self.enter:
                self.enter[name] = self.clock
                self.inputs[name] = args[0] if args else None
        return hook

    def post(self, name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple, out: Any) -> None:
            self.clock += 1
            if name not in self.exit:
                self.exit[name] = self.clock
                self.outputs[name] = out
        return hook


def _model_input(example_input: Any, module: nn.Module) -> Any:
    param = next(iter(module.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    if isinstance(example_input, (tuple, list, torch.Size)) and example_input and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in example_input):
        return torch.zeros((1, *(int(s) for s in example_input)), dtype=dtype, device=device)
    t = example_input if isinstance(example_input, torch.Tensor) else torch.as_tensor(np.asarray(example_input))
    if t.is_complex():
        raise ShapeError("example_input must hold real numbers (or token ids).")
    t = t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)  # ids stay integers
    if t.dim() < 1 or t.numel() == 0:
        raise ShapeError(f"example_input must be a non-empty batch; got shape {tuple(t.shape)}.")
    return t


def _check_name(name: str, modules: dict[str, nn.Module], what: str) -> None:
    if name not in modules or name == "":
        near = difflib.get_close_matches(name, [m for m in modules if m], n=4)
        hint = f" Did you mean {', '.join(repr(m) for m in near)}?" if near else \
            " Names are the paths of model.named_modules(), such as 'layer3.1' or 'transformer.h.5.mlp'."
        raise SubnetworkError(f"from_torch({what}={name!r}): the model has no submodule of that name.{hint}")


def cut(module: nn.Module, example_input: Any, start: str | None, stop: str | None,
        trace: Callable[[nn.Module, set[str]], fx.GraphModule]) -> tuple[fx.GraphModule, torch.Tensor]:
    """The module computing ``stop``'s output (the model's output if None) from ``start``'s output (the model's
    input if None), and ``start``'s output on ``example_input``, the example of the part."""
    modules = dict(module.named_modules())
    for what, name in (("start", start), ("stop", stop)):
        if name is not None:
            _check_name(name, modules, what)
    rec = _Record()
    handles = []
    for name, m in modules.items():
        if name:
            handles.append(m.register_forward_pre_hook(rec.pre(name)))
            handles.append(m.register_forward_hook(rec.post(name)))
    x = _model_input(example_input, module)
    try:
        with torch.no_grad():
            model_out = module(x)
    except Exception as e:
        raise ShapeError(f"example_input of shape {tuple(x.shape)} does not fit {type(module).__name__} (with "
                         f"start/stop, give the whole model's usual input): {type(e).__name__}: {e}") from e
    finally:
        for h in handles:
            h.remove()
    for what, name in (("start", start), ("stop", stop)):
        if name is None:
            continue
        if name not in rec.exit:
            raise SubnetworkError(f"from_torch({what}={name!r}): that submodule did not run on example_input.")
        if rec.calls.get(name, 0) > 1:
            raise SubnetworkError(f"from_torch({what}={name!r}): that submodule runs {rec.calls[name]} times in "
                                  "one forward pass, so its output does not name one place; name one of its callers.")
        if not isinstance(rec.outputs[name], torch.Tensor):
            raise SubnetworkError(f"from_torch({what}={name!r}) returns {type(rec.outputs[name]).__name__}, not one "
                                  "tensor; name a submodule that returns a tensor (e.g. one inside it).")
    if start is not None and stop is not None and rec.exit[stop] <= rec.exit[start]:
        raise SubnetworkError(f"from_torch: stop={stop!r} finishes before start={start!r} does; the part between them "
                              "is empty.")
    act = rec.outputs[start].detach() if start is not None else x
    want = rec.outputs[stop] if stop is not None else model_out
    if not isinstance(want, torch.Tensor):
        raise SubnetworkError(f"{type(module).__name__} returns {type(want).__name__}, not one tensor; give stop=NAME, "
                              "the submodule whose output the network should end at.")
    if start is not None and not act.is_floating_point():
        raise SubnetworkError(f"from_torch(start={start!r}): its output has dtype {act.dtype}; start after a module "
                              "whose output is an activation (floating point), e.g. after an embedding.")
    # submodules that ran wholly before start, or wholly after stop, are kept as opaque calls
    s_enter = rec.enter[start] if start is not None else 0
    t_exit = rec.exit[stop] if stop is not None else rec.clock + 1
    leaves = {n for n in rec.exit if rec.exit[n] < s_enter or rec.enter[n] > t_exit}
    if start is not None:
        leaves.add(start)
    part: fx.GraphModule | None
    try:
        gm = trace(module, leaves)
        part = _graph_part(gm, x, start, stop, want)
    except (ConversionError, _NotInGraph) as e:
        part = _chain(rec, modules, start, stop, act, want, trace)
        if part is None:
            raise SubnetworkError(
                f"from_torch: could not cut {type(module).__name__} between {start or 'its input'} and "
                f"{stop or 'its output'}: tracing the whole model failed ({e}), and the modules that ran between them "
                "do not form a chain. Convert the submodule you need directly, with its input activations as "
                "example_input (hooks give them)."
            ) from e
    with torch.no_grad():
        back = part(act)
    if not (isinstance(back, torch.Tensor) and back.shape == want.shape and torch.allclose(
            back.to(torch.float64), want.to(torch.float64), rtol=1e-5, atol=1e-5 * (1 + float(want.abs().max())))):
        raise SubnetworkError(f"from_torch: the part of {type(module).__name__} between {start or 'its input'} and "
                              f"{stop or 'its output'} does not reproduce the model from the activation at the cut "
                              "alone (it reads something else from before the cut).")
    return part, act


class _NotInGraph(Exception):
    """The cut points are not single nodes of the traced graph."""


def _values(gm: fx.GraphModule, x: torch.Tensor) -> dict[fx.Node, Any]:
    env: dict[fx.Node, Any] = {}

    class Keep(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            out = super().run_node(n)
            env[n] = out
            return out

    with torch.no_grad():
        Keep(gm).run(x)
    return env


def _in_scope(n: fx.Node, name: str) -> bool:
    if n.op == "call_module" and (str(n.target) == name or str(n.target).startswith(name + ".")):
        return True
    stack = n.meta.get("nn_module_stack") or {}
    return any(path == name or str(path).startswith(name + ".") for path, _ in stack.values())


def _graph_part(gm: fx.GraphModule, x: torch.Tensor, start: str | None, stop: str | None,
                want: torch.Tensor) -> fx.GraphModule:
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if start is not None:
        hits = [n for n in nodes if n.op == "call_module" and str(n.target) == start]
        if len(hits) != 1:
            raise _NotInGraph(f"{start!r} is not one call in the traced graph")
        first = hits[0]
    else:
        if len(placeholders) < 1:
            raise _NotInGraph("the traced graph has no input")
        first = placeholders[0]
    vals = _values(gm, x)
    if stop is not None:
        cands = [n for n in nodes if _in_scope(n, stop) and isinstance(vals.get(n), torch.Tensor)
                 and vals[n].shape == want.shape and torch.equal(vals[n], want)]
        if not cands:
            raise _NotInGraph(f"no node of the traced graph computes {stop!r}'s output")
        last = cands[-1]
    else:
        out = next(n for n in nodes if n.op == "output")
        last = out.args[0]
        if not isinstance(last, fx.Node):
            raise _NotInGraph("the model's output is not one traced value")
    # the nodes the output needs, back to the cut; none of them may read the input another way
    need: set[fx.Node] = set()
    todo = [last]
    while todo:
        n = todo.pop()
        if n in need:
            continue
        need.add(n)
        if n is not first:
            todo.extend(n.all_input_nodes)
    reads_input = {p: True for p in placeholders}
    after_cut: dict[fx.Node, bool] = {first: True}
    for n in nodes:
        if n is first or n.op == "placeholder":
            continue
        ins = n.all_input_nodes
        reads_input[n] = any(reads_input.get(i, False) for i in ins)
        after_cut[n] = any(after_cut.get(i, False) for i in ins)
    for n in nodes:
        if n in need and n is not first and (n.op == "placeholder" or (reads_input.get(n) and not after_cut.get(n))):
            where = n.meta.get("nn_module_stack") or {}
            path = list(where.values())[-1][0] if where else (str(n.target) if n.op == "call_module" else n.name)
            raise SubnetworkError(
                f"from_torch: the part after {start or 'the input'} also reads {path!r} ({n.name}), computed from the "
                "model's input without passing through it (a skip connection around the cut); start the part "
                "earlier, or at a module whose output is all the rest depends on."
            )
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {first: graph.placeholder("x")}
    for n in nodes:
        if n in need and n is not first:
            env[n] = graph.node_copy(n, lambda a: env[a])
    graph.output(env[last])
    return fx.GraphModule(gm, graph)


def _chain(rec: _Record, modules: dict[str, nn.Module], start: str | None, stop: str | None, act: torch.Tensor,
           want: torch.Tensor, trace: Callable[[nn.Module, set[str]], fx.GraphModule]) -> fx.GraphModule | None:
    """The modules that ran between start and stop as a Sequential, if each reads the previous one's output."""
    if stop is None:
        return None
    s_exit = rec.exit[start] if start is not None else 0
    inside = [n for n in rec.enter if rec.enter[n] > s_exit and rec.exit.get(n, 1 << 62) <= rec.exit[stop]]
    top = [n for n in inside if not any(n.startswith(o + ".") for o in inside)]
    top.sort(key=lambda n: rec.enter[n])
    if not top or (top[-1] != stop and rec.outputs[top[-1]] is not want):
        return None
    prev = act
    for n in top:
        inp = rec.inputs[n]
        if not (inp is prev or (isinstance(inp, torch.Tensor) and isinstance(prev, torch.Tensor)
                                and inp.shape == prev.shape and torch.equal(inp, prev))):
            return None
        prev = rec.outputs[n]
    if not (prev is want or (isinstance(prev, torch.Tensor) and torch.equal(prev, want))):
        return None
    return trace(nn.Sequential(*[modules[n] for n in top]), set())
