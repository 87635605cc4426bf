"""The evaluator: a network's graph as a frozen `Program` record, and the passes maso's algorithms run over it.

Internal API. [`Network`][maso.Network] builds one `Program` (``net.program``) and its public methods, region
enumeration, slices and exact paths all compute through the functions here, never through ``Network``'s
private members.

Passes
------
- `forward`: the network at inputs ``(n, *input_shape)``, with the internal codes of its spline nodes.
- `frozen_pass`: the network with every unit frozen on a given piece, on ``T`` inputs per code at once;
  with ``bias=False`` the linear part of that affine map (forward-mode products with ``A``).
- `evaluate`: chosen nodes from the values of nodes that cut them off the input (anchored families).
- `pullback`: ``A^T`` of the frozen map applied to cotangents (reverse mode).

The first three are one walk over the nodes (`_walk`) that differ only in what a spline node and an affine
node do; dead values are freed after their last reader. `pullback` is the one reverse walk.

Internal codes (``icodes``) are what `SplineLayer.forward` returns with ``need_code=True``: ``{node index:
code tensor (n, ...)}``, one entry per spline node, batch-first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from maso.errors import ShapeError, SubnetworkError, UnsupportedLayerError
from maso.layers import AffineLayer, Layer, SplineLayer

__all__ = [
    "CHUNK_ELEMENTS",
    "Node",
    "Program",
    "UnitGroup",
    "affine_frontier",
    "affine_nodes",
    "chunks",
    "codes_pass",
    "evaluate",
    "first_soft_node",
    "forward",
    "frozen_pass",
    "param_tensor",
    "params",
    "pullback",
    "require_piecewise_linear",
]

Shape = tuple[int, ...]
Values = dict[int, torch.Tensor]

#: Intermediate tensors of batched computations are kept below this many elements by chunking the batch
#: (read at call time, so tests may lower it).
CHUNK_ELEMENTS = 1 << 27


@dataclass(frozen=True, eq=False)
class Node:
    """One node of a network graph.

    Attributes
    ----------
    name : str
        Unique name (the torch module path for converted models, e.g. ``"features.3"``).
    layer : Layer or None
        The operator; ``None`` for the input node.
    inputs : tuple of int
        Indices of the nodes it reads, all earlier in the topological order.
    shape : tuple of int
        Per-sample shape of its output.
    source : str
        Where it came from (module path and type), for messages.
    """

    name: str
    layer: Layer | None
    inputs: tuple[int, ...]
    shape: Shape
    source: str = ""


@dataclass(frozen=True)
class UnitGroup:
    """The units of one spline layer and where their codes sit in a row of
    [`Network.codes`][maso.Network.codes].

    Attributes
    ----------
    name : str
        The layer's node name.
    node : int
        The node index.
    shape : tuple of int
        Per-sample shape of the layer's units (its output shape).
    n_pieces : int
        Largest number of pieces of a unit (2 for ReLU-like units, the window size for max-pooling).
    offset : int
        First column of this layer's units in a code row.
    """

    name: str
    node: int
    shape: Shape
    n_pieces: int
    offset: int

    @property
    def size(self) -> int:
        """Number of units."""
        return math.prod(self.shape)

    @property
    def columns(self) -> slice:
        """The columns of this layer in a code row."""
        return slice(self.offset, self.offset + self.size)


@dataclass(frozen=True, eq=False)
class Program:
    """A network's graph, checked and annotated for evaluation. Build one with `Program.of`.

    Attributes
    ----------
    nodes : tuple of Node
        Topological order; node 0 is the input.
    output : int
        Index of the output node.
    last_use : tuple of int
        Per node, the index of the last node that reads it (0: none; ``len(nodes)`` for the output, which
        is never freed).
    live : tuple of int
        The nodes after the input that the output or another node reads, in order: what a pass runs.
    units : tuple of UnitGroup
        The spline nodes in order, with their columns in a code row.
    n_units : int
        Length of a code row.
    sample_size : int
        Numbers in the values of all nodes for one input: the memory unit of `chunks`.
    code_dtype : type
        ``np.uint8``, or ``np.int32`` if a unit has over 255 pieces.

    Examples
    --------
    >>> import maso
    >>> prog = maso.mlp([2, 3, 1], seed=0).program
    >>> prog.output, prog.last_use, prog.n_units, prog.sample_size
    (3, (1, 2, 3, 4), 3, 9)
    """

    nodes: tuple[Node, ...]
    output: int
    last_use: tuple[int, ...]
    live: tuple[int, ...]
    units: tuple[UnitGroup, ...]
    n_units: int
    sample_size: int
    code_dtype: type[np.integer[Any]]
    # The layers' arrays as tensors, per (device, dtype). A mutable memo inside a frozen record: it is derived
    # from `nodes` alone, so it never changes what the program computes, and it saves copying every weight to
    # the device on each call. Dropped on pickling (device tensors are rebuilt on demand).
    _params: dict[tuple[str, torch.dtype], list[dict[str, torch.Tensor]]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def of(cls, nodes: Sequence[Node], output: int | None = None) -> Program:
        """Check a graph (input first, unique names, inputs before readers) and annotate it.

        Parameters
        ----------
        nodes : sequence of Node
        output : int, optional
            The output node; the last node by default.

        Raises
        ------
        ShapeError
            If the graph is not a network in topological order.
        """
        nodes = tuple(nodes)
        if not nodes or nodes[0].layer is not None or nodes[0].inputs:
            raise ShapeError("A Network's first node must be its input (layer None, no inputs).")
        names = set()
        for i, node in enumerate(nodes):
            if node.name in names:
                raise ShapeError(f"Node names must be unique; {node.name!r} appears twice.")
            names.add(node.name)
            if i and node.layer is None:
                raise ShapeError(f"Only the first node may be an input; node {node.name!r} has no layer.")
            if any(not 0 <= j < i for j in node.inputs):
                raise ShapeError(f"Node {node.name!r} reads a node that does not come before it.")
        out = len(nodes) - 1 if output is None else int(output)
        last_use = [0] * len(nodes)
        for i, node in enumerate(nodes):
            for j in node.inputs:
                last_use[j] = i
        last_use[out] = len(nodes)
        groups, offset = [], 0
        for i, node in enumerate(nodes):
            if isinstance(node.layer, SplineLayer):
                g = UnitGroup(node.name, i, node.shape, node.layer.n_pieces, offset)
                groups.append(g)
                offset += g.size
        return cls(
            nodes=nodes,
            output=out,
            last_use=tuple(last_use),
            live=tuple(i for i in range(1, len(nodes)) if last_use[i]),  # the output's is len(nodes)
            units=tuple(groups),
            n_units=offset,
            sample_size=sum(math.prod(node.shape) for node in nodes),
            code_dtype=np.uint8 if max((g.n_pieces for g in groups), default=2) <= 255 else np.int32,
        )

    @property
    def input_shape(self) -> Shape:
        """Per-sample input shape."""
        return self.nodes[0].shape

    @property
    def output_shape(self) -> Shape:
        """Per-sample output shape."""
        return self.nodes[self.output].shape

    def spline_layer(self, i: int) -> SplineLayer:
        """The layer of spline node ``i`` (the ``node`` of a unit group), typed as such."""
        return cast(SplineLayer, self.nodes[i].layer)

    def input_shape_of(self, i: int) -> Shape:
        """Per-sample shape of node ``i``'s (first) input: the ``in_shape`` that spline layers take."""
        return self.nodes[self.nodes[i].inputs[0]].shape

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_params"] = {}
        return state


# ------------------------------------------------------------------------------------------------ structure
def params(program: Program, device: Any, dtype: torch.dtype) -> list[dict[str, torch.Tensor]]:
    """Every node's parameter tensors on ``device`` in ``dtype`` (index = node), converted once and memoised."""
    key = (str(device), dtype)
    p = program._params.get(key)
    if p is None:
        p = [{} if node.layer is None else {k: param_tensor(v, dtype, device) for k, v in node.layer.arrays().items()}
             for node in program.nodes]
        program._params[key] = p
    return p


def param_tensor(a: np.ndarray, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """A layer's parameter array as a tensor on ``device`` in ``dtype``."""
    # Parameters are read-only arrays; torch wants writable memory, so copy.
    return torch.from_numpy(np.array(a, copy=True)).to(device=device, dtype=dtype)


def affine_nodes(program: Program) -> frozenset[int]:
    """Nodes computed before any spline layer: affine functions of the input (node 0 included)."""
    affine = {0}
    for i, node in enumerate(program.nodes[1:], 1):
        if not isinstance(node.layer, SplineLayer) and all(j in affine for j in node.inputs):
            affine.add(i)
    return frozenset(affine)


def affine_frontier(program: Program) -> tuple[int, ...]:
    """Affine nodes (see `affine_nodes`) that a non-affine node reads, and the output if it is affine; sorted.

    Along a line or on a plane every such node is an affine function of the coordinates, so its values follow
    from a few anchor points: walks and slices interpolate them (seeds for `evaluate`) instead of rerunning the
    head.
    """
    affine = affine_nodes(program)
    front: set[int] = set()
    for i, node in enumerate(program.nodes):
        if i not in affine:
            front.update(j for j in node.inputs if j in affine)
    if program.output in affine:
        front.add(program.output)
    return tuple(sorted(front))


def first_soft_node(program: Program) -> Node | None:
    """The first node whose layer is a soft (smooth) spline layer, or None for a piecewise-linear network."""
    return next((node for node in program.nodes if node.layer is not None and node.layer.is_soft), None)


def require_piecewise_linear(program: Program, caller: str) -> None:
    """Raise `UnsupportedLayerError` (naming ``caller``) if a node is a soft spline layer: exact geometry needs a
    piecewise-linear network."""
    node = first_soft_node(program)
    if node is not None:
        raise UnsupportedLayerError(
            f"{caller} is exact geometry of a piecewise-linear network, but node {node.name!r} is a soft "
            f"spline layer ({node.layer!r}): the network is smooth and has no polytopes. Use "
            "maso.soft.harden(net) for its hard (temperature -> 0) limit, or Network.soft_codes and "
            "Network.expected_affine_at for the soft view.", kind="Soft", path=node.name)


def chunks(n: int, per_sample: int, limit: int | None = None) -> list[slice]:
    """Blocks of a batch of ``n`` inputs whose intermediates (``per_sample`` numbers each) stay below ``limit``
    numbers (default `CHUNK_ELEMENTS`); ``[]`` for ``n == 0``.

    Examples
    --------
    >>> chunks(5, 10, limit=20)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    size = max(1, (CHUNK_ELEMENTS if limit is None else limit) // max(1, per_sample))
    return [slice(s, min(n, s + size)) for s in range(0, n, size)]


# --------------------------------------------------------------------------------------------------- passes
SplineStep = Callable[[int, SplineLayer, torch.Tensor], torch.Tensor]
AffineStep = Callable[[int, AffineLayer, list[torch.Tensor]], torch.Tensor]


def _walk(program: Program, vals: Values, order: Iterable[int], spline: SplineStep, affine: AffineStep,
          keep: Collection[int] = ()) -> Values:
    """The node walk of every forward-direction pass: compute the nodes ``order`` (increasing) into ``vals``.

    ``spline(i, layer, input)`` and ``affine(i, layer, inputs)`` give node ``i``'s value. A value is freed after
    its last reader (`Program.last_use`) unless it is in ``keep``, so ``vals`` ends up holding the values still
    to be read, those in ``keep``, and those whose readers are not in ``order``.
    """
    nodes, last_use = program.nodes, program.last_use
    for i in order:
        node = nodes[i]
        layer = node.layer
        if isinstance(layer, SplineLayer):
            vals[i] = spline(i, layer, vals[node.inputs[0]])
        else:  # every other layer is affine (only the input node, never in `order`, has none)
            vals[i] = affine(i, layer, [vals[j] for j in node.inputs])  # type: ignore[arg-type]
        for j in set(node.inputs):
            if last_use[j] == i and j not in keep:
                del vals[j]
    return vals


def forward(program: Program, x: torch.Tensor, *, need_codes: bool = False, keep: Iterable[int] = (),
            soft: bool = False) -> tuple[torch.Tensor, Values, Values]:
    """The network at ``x`` ``(n, *input_shape)``; runs nothing that neither the output nor ``keep`` needs.

    Parameters
    ----------
    need_codes : bool
        Also return the internal codes ``{spline node: (n, ...)}``.
    keep : iterable of int
        Nodes whose values to return too (each ``(n, *node.shape)``).
    soft : bool
        With ``need_codes``, soft layers give their piece probabilities ``(n, U, R)`` instead of hard codes
        (what their ``frozen`` takes: the expected-piece map).

    Returns
    -------
    output : tensor of shape (n, *output_shape)
    icodes : dict
        Empty unless ``need_codes``.
    kept : dict
        ``{node: value}`` for the nodes in ``keep``.
    """
    keep = set(keep)
    p = params(program, x.device, x.dtype)
    icodes: Values = {}
    out = program.output

    def spline(i: int, layer: SplineLayer, z: torch.Tensor) -> torch.Tensor:
        c: torch.Tensor | None
        if soft and need_codes:
            y, c = layer.expected_forward(z, p[i])
        else:
            y, c = layer.forward(z, p[i], need_codes)
        if need_codes:
            assert c is not None  # a spline layer asked for its code returns one
            icodes[i] = c
        return y

    def affine(i: int, layer: AffineLayer, ins: list[torch.Tensor]) -> torch.Tensor:
        return layer.forward(ins, p[i])

    # dead nodes (nothing reads them) are skipped unless kept
    order = sorted(keep.union(program.live).difference((0,))) if keep else program.live
    vals = _walk(program, {0: x}, order, spline, affine, keep)
    return vals[out], icodes, {i: vals[i] for i in keep}


def codes_pass(program: Program, x: torch.Tensor, *, soft: bool = False,
               into: dict[int, torch.Tensor] | None = None) -> Values:
    """The internal codes ``{spline node: (n, ...)}`` at ``x`` ``(n, *input_shape)``, running only the nodes that
    lead to a spline layer: the pre-activations, not the layers after the last nonlinearity (a GPT-2 MLP
    block's output projection, a classifier's logits). ``soft``: as `forward`'s (soft layers give their piece
    probabilities). ``into`` (hard codes only): ``{spline node: (n, units) block of code rows}``; those nodes'
    public codes are written there (`SplineLayer.forward_into_code_rows`) and left out of the result."""
    assert not (soft and into)  # soft codes are probabilities, not code rows
    need = {g.node for g in program.units}
    for i in range(len(program.nodes) - 1, 0, -1):
        if i in need:
            need.update(program.nodes[i].inputs)
    p = params(program, x.device, x.dtype)
    icodes: Values = {}
    read = {j for i in need for j in program.nodes[i].inputs}  # the outputs some needed node reads

    def spline(i: int, layer: SplineLayer, z: torch.Tensor) -> torch.Tensor:
        if into is not None and i in into:
            y = layer.forward_into_code_rows(z, p[i], into[i], program.input_shape_of(i), i in read)
            return z.new_empty(0) if y is None else y  # (a placeholder nothing reads)
        if i not in read:  # the code alone (a last ReLU or GELU's output is never formed)
            icodes[i] = layer.expected_code(z, p[i]) if soft else layer.code(z, p[i])
            return z.new_empty(0)  # (a placeholder nothing reads)
        y, c = layer.expected_forward(z, p[i]) if soft else layer.forward(z, p[i], True)
        assert c is not None  # a spline layer asked for its code returns one
        icodes[i] = c
        return y

    def affine(i: int, layer: AffineLayer, ins: list[torch.Tensor]) -> torch.Tensor:
        return layer.forward(ins, p[i])

    _walk(program, {0: x}, sorted(need.difference((0,))), spline, affine)
    return icodes


def frozen_pass(program: Program, z: torch.Tensor, icodes: Values, *, bias: bool, record: Iterable[int] = (),
                until: int | None = None, zero_input: bool = False) -> tuple[torch.Tensor, Values]:
    """The network with every unit frozen on its coded piece: the affine map of a region, applied.

    Parameters
    ----------
    z : tensor of shape (n, T, *input_shape)
        ``T`` inputs for each of the ``n`` codes (e.g. the ``d`` columns of an identity to form ``A``).
    icodes : dict
        Internal codes with ``n`` rows (as `forward` gives them), for every spline node the pass runs.
    bias : bool
        True: the affine map ``A z + b``; False: its linear part ``A z`` alone.
    record : iterable of int
        Spline nodes whose (frozen) inputs to return, ``(n, T, *in_shape)`` each.
    until : int, optional
        Stop before node ``until`` and return its (first) input instead of the output: only the codes of the
        spline nodes before it are needed (the scores of stage ``until`` as affine functions of the input).
    zero_input : bool
        The caller promises ``z == 0`` (the offsets ``b``): the affine head before the first spline layer is then
        the same for every input and runs once, broadcast to the batch (a GPT-2 MLP block's first matrix
        product on a batch of zeros is skipped).

    Returns
    -------
    value : tensor of shape (n, T, *shape)
        The output (or ``until``'s input).
    recorded : dict
        ``{node: its input}`` for the nodes in ``record``.
    """
    record = set(record)
    p = params(program, z.device, z.dtype)
    n, T = z.shape[:2]
    nodes = program.nodes
    rec: Values = {}

    def spline(i: int, layer: SplineLayer, zin: torch.Tensor) -> torch.Tensor:
        if i in record:
            rec[i] = zin
        return layer.frozen(zin, icodes[i], p[i], program.input_shape_of(i), bias)

    def affine(i: int, layer: AffineLayer, ins: list[torch.Tensor]) -> torch.Tensor:
        node = nodes[i]
        flat = [v.reshape(n * T, *nodes[j].shape) for v, j in zip(ins, node.inputs)]
        fn = layer.forward if bias else layer.linear
        return fn(flat, p[i]).reshape(n, T, *node.shape)

    order = program.live if until is None else [i for i in program.live if i < until]
    vals: Values = {0: z}
    if zero_input and bias and n * T > 0:  # (an empty batch has no sample to run the head on)
        head = affine_nodes(program)
        first = [i for i in order if i in head]

        def affine_one(i: int, layer: AffineLayer, ins: list[torch.Tensor]) -> torch.Tensor:
            flat = [v.reshape(1, *nodes[j].shape) for v, j in zip(ins, nodes[i].inputs)]
            return layer.forward(flat, p[i]).reshape(1, 1, *nodes[i].shape)

        order = [i for i in order if i not in head]
        read_later = {j for i in order for j in nodes[i].inputs if j in head}  # not freed by the head's walk
        vals = _walk(program, {0: z[:1, :1]}, first, spline, affine_one, keep=read_later)
        vals = {j: v.expand(n, T, *v.shape[2:]) for j, v in vals.items()}
    vals = _walk(program, vals, order, spline, affine)
    return vals[program.output if until is None else nodes[until].inputs[0]], rec


def evaluate(program: Program, seeds: Values, stops: Iterable[int], *, bias: bool = True) -> Values:
    """Values of the nodes ``stops`` given the values ``seeds`` of nodes that cut them off the input.

    Only the nodes between the seeds and the stops run (plain forward, no codes). Seeds are batch-first
    ``(N, *node.shape)``, all of one ``N``, device and dtype; node 0 may be a seed.

    Parameters
    ----------
    bias : bool
        False: affine nodes apply their linear part alone (the slopes of an affine head along directions);
        then no spline node may lie between seeds and stops.

    Raises
    ------
    SubnetworkError
        If the seeds do not cut a stop off the input.
    """
    stops = tuple(stops)
    need = set(stops)
    for i in range(max(stops, default=0), -1, -1):
        if i in need and i not in seeds:
            need.update(program.nodes[i].inputs)
    if 0 in need and 0 not in seeds:
        raise SubnetworkError("evaluate: the seeds do not cut the node off the input.")
    x = next(iter(seeds.values()))
    p = params(program, x.device, x.dtype)

    def spline(i: int, layer: SplineLayer, z: torch.Tensor) -> torch.Tensor:
        if not bias:
            raise ValueError(f"evaluate(bias=False): node {i} is a spline layer, not affine in the seeds.")
        return layer.forward(z, p[i], False)[0]

    def affine(i: int, layer: AffineLayer, ins: list[torch.Tensor]) -> torch.Tensor:
        return (layer.forward if bias else layer.linear)(ins, p[i])

    vals = _walk(program, dict(seeds), sorted(need - seeds.keys()), spline, affine, keep=set(stops))
    return {i: vals[i] for i in stops}


def pullback(program: Program, cot: torch.Tensor, icodes: Values) -> torch.Tensor:
    """``A^T`` of the frozen map applied to cotangents: ``(n, m, *output_shape)`` -> ``(n, m, *input_shape)``.

    ``icodes`` as for `frozen_pass` (``n`` rows). The one reverse walk: from the output to the input, summing
    the cotangents of nodes read more than once.
    """
    p = params(program, cot.device, cot.dtype)
    n, m = cot.shape[:2]
    nodes = program.nodes
    cots = {program.output: cot}
    for i in range(program.output, 0, -1):
        c = cots.pop(i, None)
        if c is None:
            continue
        node = nodes[i]
        layer = node.layer
        if isinstance(layer, SplineLayer):
            grads = [layer.frozen_vjp(c, icodes[i], p[i], program.input_shape_of(i))]
        else:
            in_shapes = [nodes[j].shape for j in node.inputs]
            flat = cast(AffineLayer, layer).vjp(c.reshape(n * m, *node.shape), p[i], in_shapes)
            grads = [g.reshape(n, m, *s) for g, s in zip(flat, in_shapes)]
        for j, g in zip(node.inputs, grads):
            cots[j] = cots[j] + g if j in cots else g
    g0 = cots.get(0)
    if g0 is None:  # the output does not depend on the input
        g0 = torch.zeros((n, m, *program.input_shape), dtype=cot.dtype, device=cot.device)
    return g0
