"""A piecewise-affine network as a DAG of affine operators and max-affine spline operators."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast, overload

import numpy as np
import torch

from maso._gates import check_temperature
from maso._validation import Batch, as_batch, check_bool, check_fits, real_vector
from maso.core import _program as evaluator
from maso.core._program import Node, Program, UnitGroup
from maso.core.affine import Affine, AffineOperator, Array
from maso.core.polytope import Polytope
from maso.errors import ShapeError, SubnetworkError
from maso.layers import AffineLayer, Layer, MASOLayer, SplineLayer

__all__ = ["Network", "Node", "UnitGroup"]

Shape = tuple[int, ...]


class Network:
    """A continuous piecewise-affine network: a DAG of affine operators and max-affine spline operators.

    Build one with [`maso.from_torch`][], [`maso.mlp`][], [`Network.sequential`][maso.Network.sequential] or
    [`Network.from_graph`][maso.Network.from_graph]. A network is immutable.

    Inputs may be NumPy arrays (results come back as NumPy, computed in the input's float precision) or
    torch tensors (results stay on the tensor's device and dtype). An input is one sample of shape
    [`input_shape`][maso.Network.input_shape] or a batch ``(n, *input_shape)``. Affine maps and regions act on
    the flattened input (``x.reshape(-1)``), of dimension [`input_dim`][maso.Network.input_dim].

    Examples
    --------
    >>> import numpy as np, maso
    >>> net = maso.mlp([2, 4, 1], seed=0)
    >>> x = np.array([0.3, -0.2])
    >>> f = net.affine_at(x)
    >>> bool(np.allclose(f(x), net(x)))
    True
    >>> bool(net.region_at(x).contains(x))
    True
    """

    def __init__(self, nodes: Sequence[Node], output: int | None = None) -> None:
        self._program = Program.of(nodes, output)

    # ------------------------------------------------------------------------------------------------ build
    @classmethod
    def sequential(
        cls, input_shape: Sequence[int], layers: Sequence[Layer], names: Sequence[str] | None = None
    ) -> Network:
        """A chain of layers.

        Parameters
        ----------
        input_shape : sequence of int
            Per-sample input shape, e.g. ``(784,)`` or ``(3, 32, 32)``.
        layers : sequence of Layer
        names : sequence of str, optional
            Node names; ``"0"``, ``"1"``, ... by default.

        Examples
        --------
        >>> import numpy as np, maso
        >>> from maso.layers import Dense, relu
        >>> net = maso.Network.sequential((2,), [Dense(np.eye(2), np.zeros(2)), relu()])
        >>> net.n_units
        2
        """
        names = [str(i) for i in range(len(layers))] if names is None else list(names)
        if len(names) != len(layers):
            raise ShapeError(f"Got {len(layers)} layers but {len(names)} names.")
        spec = [(nm, layer, [names[i - 1] if i else "input"]) for i, (nm, layer) in enumerate(zip(names, layers))]
        return cls.from_graph(input_shape, spec)

    @classmethod
    def from_graph(
        cls,
        input_shape: Sequence[int],
        spec: Iterable[tuple[str, Layer, Sequence[str]]],
        output: str | None = None,
        *,
        input_name: str = "input",
        sources: dict[str, str] | None = None,
    ) -> Network:
        """A DAG from ``(name, layer, input_names)`` triples in topological order.

        The input node is called ``input_name``. Shapes are inferred by running one zero sample.

        Examples
        --------
        >>> import numpy as np, maso
        >>> from maso.layers import Dense, Sum, relu
        >>> spec = [("fc", Dense(np.eye(2), np.zeros(2)), ["input"]), ("act", relu(), ["fc"]),
        ...         ("res", Sum((1.0, 1.0)), ["act", "input"])]
        >>> net = maso.Network.from_graph((2,), spec)
        >>> net(np.array([-1.0, 2.0]))
        array([-1.,  4.])
        """
        input_shape = tuple(int(s) for s in input_shape)
        if any(s < 1 for s in input_shape):
            raise ShapeError(f"input_shape must hold positive sizes. Got {input_shape}.")
        sources = sources or {}
        nodes = [Node(input_name, None, (), input_shape, "input")]
        index = {input_name: 0}
        values = [torch.zeros((1, *input_shape), dtype=torch.float64)]
        for name, layer, ins in spec:
            if not isinstance(layer, Layer):
                raise ShapeError(f"Node {name!r}: expected a maso layer, got {type(layer).__name__}.")
            if name in index:
                raise ShapeError(f"Node names must be unique; {name!r} appears twice.")
            missing = [s for s in ins if s not in index]
            if missing:
                raise ShapeError(f"Node {name!r} reads unknown node(s) {missing}; inputs must come first.")
            want = layer.n_inputs
            if (want and len(ins) != want) or not ins:
                raise ShapeError(f"Node {name!r} ({type(layer).__name__}) takes {want or 'one or more'} "
                                 f"input(s); got {len(ins)}.")
            idx = tuple(index[s] for s in ins)
            p = {k: evaluator.param_tensor(v, torch.float64, "cpu") for k, v in layer.arrays().items()}
            try:
                with torch.no_grad():
                    if isinstance(layer, SplineLayer):
                        y, _ = layer.forward(values[idx[0]], p, True)
                    else:
                        y = cast(AffineLayer, layer).forward([values[j] for j in idx], p)
            except (RuntimeError, ValueError, IndexError) as e:
                shapes = [nodes[j].shape for j in idx]
                raise ShapeError(f"Node {name!r} ({layer!r}) does not accept input shape(s) {shapes}: {e}") from e
            index[name] = len(nodes)
            nodes.append(Node(name, layer, idx, tuple(y.shape[1:]), sources.get(name, type(layer).__name__)))
            values.append(y)
        out = len(nodes) - 1 if output is None else index.get(output)
        if out is None:
            raise ShapeError(f"Unknown output node {output!r}.")
        return cls(nodes, out)

    # ------------------------------------------------------------------------------------------ structure
    @property
    def program(self) -> Program:
        """The evaluator record of this network, for maso's algorithms (internal API).

        A frozen ``maso.core._program.Program``: the nodes, the output, the last reader of every value, the unit
        groups, the code dtype. This network's methods, region enumeration, slices and exact paths all compute
        through the passes over it in ``maso.core._program`` (``forward``, ``frozen_pass``, ``pullback``,
        ``evaluate``), so none of them reaches into the network itself.

        Examples
        --------
        >>> net = maso.mlp([2, 3, 1], seed=0)
        >>> net.program.nodes is net.nodes, net.program.output
        (True, 3)
        """
        return self._program

    @property
    def nodes(self) -> tuple[Node, ...]:
        """All nodes in topological order; node 0 is the input."""
        return self._program.nodes

    @property
    def units(self) -> tuple[UnitGroup, ...]:
        """The spline layers, in order, with the columns of their units in a code row."""
        return self._program.units

    @property
    def n_units(self) -> int:
        """Total number of spline units (the length of a code row)."""
        return self._program.n_units

    @property
    def is_piecewise_linear(self) -> bool:
        """False if the network has soft (smooth) spline layers (GELU, SiLU, sigmoid, tanh, β-VQ).

        Exact geometry ([`affine_at`][maso.Network.affine_at], [`region_at`][maso.Network.region_at], region
        enumeration, slices, exact paths) needs a piecewise-linear network; soft networks have
        [`soft_codes`][maso.Network.soft_codes] and [`expected_affine_at`][maso.Network.expected_affine_at].

        Examples
        --------
        >>> maso.mlp([2, 3, 1], seed=0).is_piecewise_linear
        True
        """
        return evaluator.first_soft_node(self._program) is None

    @property
    def input_shape(self) -> Shape:
        """Per-sample input shape."""
        return self._program.input_shape

    @property
    def output_shape(self) -> Shape:
        """Per-sample output shape."""
        return self._program.output_shape

    @property
    def input_dim(self) -> int:
        """Flattened input dimension (columns of an affine map)."""
        return math.prod(self.input_shape)

    @property
    def output_dim(self) -> int:
        """Flattened output dimension (rows of an affine map)."""
        return math.prod(self.output_shape)

    def node_index(self, name: str | int) -> int:
        """Index of a node given by name or index."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if not -len(self.nodes) <= name < len(self.nodes):
                raise SubnetworkError(f"Node index {name} is out of range (network has {len(self.nodes)} nodes).")
            return int(name) % len(self.nodes)
        for i, node in enumerate(self.nodes):
            if node.name == name:
                return i
        close = [n.name for n in self.nodes if str(name) in n.name][:5]
        raise SubnetworkError(
            f"No node named {name!r}. " + (f"Did you mean one of {close}? " if close else "")
            + "See Network.summary() for the node names."
        )

    def summary(self) -> str:
        """A table of the nodes: name, operator, inputs, output shape and unit count.

        Examples
        --------
        >>> print(maso.mlp([2, 3, 1], seed=0).summary())  # doctest: +NORMALIZE_WHITESPACE
        node   operator    inputs  shape  units
        input  input               (2,)
        0      Dense       input   (3,)
        1      Elementwise 0       (3,)   3 x 2 pieces
        2      Dense       1       (1,)
        """
        rows = [("node", "operator", "inputs", "shape", "units")]
        for node in self.nodes:
            op = "input" if node.layer is None else type(node.layer).__name__
            ins = ",".join(self.nodes[j].name for j in node.inputs)
            units = (f"{math.prod(node.shape)} x {node.layer.n_pieces} pieces"
                     if isinstance(node.layer, SplineLayer) else "")
            rows.append((node.name, op, ins, str(node.shape), units))
        widths = [max(len(r[k]) for r in rows) for k in range(5)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def __repr__(self) -> str:
        return (f"Network(input_shape={self.input_shape}, output_shape={self.output_shape}, "
                f"nodes={len(self.nodes)}, spline_layers={len(self.units)}, units={self.n_units})")

    # ---------------------------------------------------------------------------------------- computation
    def _batch(self, x: Any, caller: str, finite_check: Literal["now", "later"] = "now") -> Batch:
        return as_batch(x, self.input_shape, caller=caller, finite_check=finite_check)

    # ---------------------------------------------------------------------------------------------- public
    def __call__(self, x: Any) -> Array:
        """Forward pass.

        Parameters
        ----------
        x : array or tensor of shape input_shape or (n, *input_shape)
            More leading axes are batch axes too (tokens: ``(batch, seq, d)`` for a network on ``(d,)``): codes,
            outputs and activations keep them; maps, operators and regions come flat, one per input in
            row-major order.

        Returns
        -------
        array or tensor of shape output_shape or (n, *output_shape)
            NumPy in, NumPy out; torch in, torch out (same device and dtype).

        Examples
        --------
        >>> net = maso.mlp([2, 3, 1], seed=0)
        >>> net(np.zeros((4, 2))).shape
        (4, 1)
        """
        batch = self._batch(x, "Network.__call__")
        t = batch.tensor
        n = t.shape[0]
        self._check_output_fits(n, self.output_dim, t, "Network.__call__", "outputs")
        blocks = evaluator.chunks(n, self._program.sample_size)
        with torch.no_grad():
            if len(blocks) <= 1:
                return batch.out(evaluator.forward(self._program, t)[0])
            y = torch.empty((n, *self.output_shape), dtype=t.dtype, device=t.device)
            for sl in blocks:  # a big batch of a wide network must not hold all its activations at once
                y[sl] = evaluator.forward(self._program, t[sl])[0]
        return batch.out(y)

    def _check_output_fits(self, n: int, per_input: int, t: torch.Tensor, caller: str, what: str,
                           item: int | None = None) -> None:
        """Refuse before any work a result of ``n * per_input`` numbers that cannot fit in memory."""
        item = t.element_size() if item is None else item
        check_fits(n * per_input * item, f"{caller}: the {what} of {n:,} inputs ({per_input:,} numbers each)",
                   lambda budget: f"Pass at most {budget // max(1, per_input * item):,} inputs at a time.", t.device)

    @overload
    def codes(self, x: Any, *, by_layer: Literal[False] = ...) -> Array: ...
    @overload
    def codes(self, x: Any, *, by_layer: Literal[True]) -> dict[str, Array]: ...
    @overload
    def codes(self, x: Any, *, by_layer: bool) -> Array | dict[str, Array]: ...

    def codes(self, x: Any, *, by_layer: bool = False) -> Array | dict[str, Array]:
        """Hard spline codes: the piece each unit is on.

        ReLU-like units give a bit (1 = ``u > 0``); max-pool and maxout units give the index of the winning
        position in their window (ties go to the lowest index).

        Parameters
        ----------
        x : array or tensor of shape input_shape or (n, *input_shape)
            More leading axes are batch axes too (tokens: ``(batch, seq, d)`` for a network on ``(d,)``): codes,
            outputs and activations keep them; maps, operators and regions come flat, one per input in
            row-major order.
        by_layer : bool, default=False
            Return a dict ``{layer name: codes of shape (n, *unit_shape)}`` instead of one row per input.

        Returns
        -------
        array or tensor of shape (n, n_units), or dict
            Columns follow [`units`][maso.Network.units]; dtype ``uint8`` (``int32`` if a unit has over 255
            pieces).

        Examples
        --------
        >>> net = maso.mlp([2, 3, 1], seed=0)
        >>> net.codes(np.zeros((5, 2))).shape
        (5, 3)
        >>> list(net.codes(np.zeros(2), by_layer=True))
        ['1']
        """
        by_layer = check_bool(by_layer, "by_layer", "Network.codes")
        batch = self._batch(x, "Network.codes", finite_check="later")  # (tested as the result is returned)
        n = batch.tensor.shape[0]
        self._check_output_fits(n, self.n_units, batch.tensor, "Network.codes", "codes",
                                item=np.dtype(self._program.code_dtype).itemsize)
        # in blocks of inputs: a big batch of a wide network must not hold all its activations at once
        blocks = evaluator.chunks(n, self._program.sample_size) or [slice(0, 0)]
        with torch.no_grad():
            if by_layer:
                parts: dict[str, list[torch.Tensor]] = {g.name: [] for g in self.units}
                for sl in blocks:
                    icodes = evaluator.codes_pass(self._program, batch.tensor[sl])
                    for g in self.units:
                        parts[g.name].append(self._public(g, icodes))
                batch.ensure_finite()  # (here too: a network without spline layers returns {} and no out())
                return {name: batch.out(torch.cat(p)) for name, p in parts.items()}
            row = self._empty_code_rows(n, batch.tensor.device)
            for sl in blocks:
                # each layer writes its codes into the rows as the pass goes (no per-layer copy)
                evaluator.codes_pass(self._program, batch.tensor[sl],
                                     into={g.node: row[sl, g.columns] for g in self.units})
            return batch.out(row)

    def _public(self, g: UnitGroup, icodes: dict[int, torch.Tensor]) -> torch.Tensor:
        return self._program.spline_layer(g.node).public_code(icodes[g.node], self._program.input_shape_of(g.node))

    def _code_rows(self, icodes: dict[int, torch.Tensor], batch: Batch, keep_lead: bool = True) -> Array:
        row = self._empty_code_rows(batch.tensor.shape[0], batch.tensor.device)
        self._fill_code_rows(row, icodes)
        return batch.out(row, keep_lead=keep_lead)

    def _empty_code_rows(self, n: int, device: Any) -> torch.Tensor:
        tdtype = torch.uint8 if self._program.code_dtype == np.uint8 else torch.int32
        return torch.empty((n, self.n_units), dtype=tdtype, device=device)

    def _fill_code_rows(self, row: torch.Tensor, icodes: dict[int, torch.Tensor]) -> None:
        with torch.no_grad():
            for g in self.units:
                self._program.spline_layer(g.node).write_public_code(row[:, g.columns], icodes[g.node],
                                                                     self._program.input_shape_of(g.node))

    def activations(self, x: Any, names: Sequence[str | int] | None = None) -> dict[str, Array]:
        """Outputs of chosen nodes (all nodes by default), e.g. to feed a
        [`subnetwork`][maso.Network.subnetwork].

        Examples
        --------
        >>> net = maso.mlp([2, 3, 1], seed=0)
        >>> net.activations(np.zeros(2), ["1"])["1"].shape
        (3,)
        """
        batch = self._batch(x, "Network.activations")
        idx = list(range(len(self.nodes))) if names is None else [self.node_index(s) for s in names]
        t = batch.tensor
        n = t.shape[0]
        self._check_output_fits(n, sum(math.prod(self.nodes[i].shape) for i in set(idx)), t, "Network.activations",
                                "activations")
        blocks = evaluator.chunks(n, self._program.sample_size)
        with torch.no_grad():
            if len(blocks) <= 1:
                _, _, kept = evaluator.forward(self._program, t, keep=idx)
            else:
                kept = {i: torch.empty((n, *self.nodes[i].shape), dtype=t.dtype, device=t.device) for i in idx}
                for sl in blocks:
                    for i, v in evaluator.forward(self._program, t[sl], keep=idx)[2].items():
                        kept[i][sl] = v
        return {self.nodes[i].name: batch.out(kept[i]) for i in idx}

    @overload
    def affine_at(self, x: Any, *, dense: Literal[True] = ..., with_codes: Literal[False] = ...) -> Affine: ...
    @overload
    def affine_at(self, x: Any, *, dense: Literal[False], with_codes: Literal[False] = ...) -> AffineOperator: ...
    @overload
    def affine_at(self, x: Any, *, dense: Literal[True] = ..., with_codes: Literal[True]) -> tuple[Array, Affine]: ...
    @overload
    def affine_at(self, x: Any, *, dense: Literal[False], with_codes: Literal[True]
                  ) -> tuple[Array, AffineOperator]: ...
    @overload
    def affine_at(self, x: Any, *, dense: bool = ..., with_codes: bool = ...
                  ) -> Affine | AffineOperator | tuple[Array, Affine | AffineOperator]: ...

    def affine_at(self, x: Any, *, dense: bool = True, with_codes: bool = False
                  ) -> Affine | AffineOperator | tuple[Array, Affine | AffineOperator]:
        """The exact affine map of the region of ``x``: ``net(y) = A @ y + b`` for all ``y`` with x's code.

        ``A`` is computed by propagating through the network with every unit frozen on the piece that its
        code selects (reverse mode when the output is smaller than the input, forward mode otherwise), and
        ``b`` by a frozen pass at the origin, so ``b`` is not affected by cancellation in ``f(x) - A x``.

        Parameters
        ----------
        x : array or tensor of shape input_shape or (n, *input_shape)
            More leading axes are batch axes too (tokens: ``(batch, seq, d)`` for a network on ``(d,)``): codes,
            outputs and activations keep them; maps, operators and regions come flat, one per input in
            row-major order.
        dense : bool, default=True
            If False, return an [`AffineOperator`][maso.core.AffineOperator] that applies ``A`` and ``A^T`` by
            Jacobian-vector products without forming it (for large models); it costs one forward pass to make.
        with_codes : bool, default=False
            Also return the codes (as [`codes`][maso.Network.codes] gives them), from the same forward pass.

        Returns
        -------
        Affine or AffineOperator, or (codes, map) if ``with_codes``
            ``A`` of shape ``(output_dim, input_dim)`` (``(n, output_dim, input_dim)`` for a batch) on the
            flattened input, ``b`` of shape ``(output_dim,)`` or ``(n, output_dim)``.

        Notes
        -----
        Forming ``A`` for a batch costs ``n * min(d_in, d_out)`` Jacobian-vector products: for a
        784-256-256-10 MLP that is about 10x the arithmetic of a forward pass, which no implementation can
        avoid. The operator form skips it.

        Examples
        --------
        >>> net = maso.mlp([3, 5, 2], seed=1)
        >>> x = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]])
        >>> f = net.affine_at(x)
        >>> f.A.shape, bool(np.allclose(f(x), net(x)))
        ((2, 2, 3), True)
        """
        evaluator.require_piecewise_linear(self._program, "Network.affine_at")
        dense = check_bool(dense, "dense", "Network.affine_at")
        with_codes = check_bool(with_codes, "with_codes", "Network.affine_at")
        codes, f = self._affine_map(self._batch(x, "Network.affine_at"), dense, with_codes, soft=False,
                                    caller="Network.affine_at")
        return (codes, f) if codes is not None else f

    @overload
    def expected_affine_at(self, x: Any, *, dense: Literal[True] = ...) -> Affine: ...
    @overload
    def expected_affine_at(self, x: Any, *, dense: Literal[False]) -> AffineOperator: ...
    @overload
    def expected_affine_at(self, x: Any, *, dense: bool) -> Affine | AffineOperator: ...

    def expected_affine_at(self, x: Any, *, dense: bool = True) -> Affine | AffineOperator:
        """The soft-code-weighted affine map at ``x``: every unit frozen on its expected piece.

        Each unit is replaced by the affine map ``sum_r t_r l_r`` (its pieces weighted by its soft code at
        ``x``, see [`soft_codes`][maso.Network.soft_codes]) and these are composed. Exact identity: the map
        reproduces the network at ``x`` (``f(x) == net(x)``), and it equals the expectation of the hard region
        maps when each unit's piece is drawn independently from its soft code. It is not the Jacobian (the
        gates' derivatives are left out) and it holds at ``x`` only. For a piecewise-linear network it is
        [`affine_at`][maso.Network.affine_at].

        Parameters
        ----------
        x : array or tensor of shape input_shape or (n, *input_shape)
            More leading axes are batch axes too (tokens: ``(batch, seq, d)`` for a network on ``(d,)``): codes,
            outputs and activations keep them; maps, operators and regions come flat, one per input in
            row-major order.
        dense : bool, default=True
            If False, return an [`AffineOperator`][maso.core.AffineOperator] (Jacobian-vector products, nothing
            formed).

        Returns
        -------
        Affine or AffineOperator

        Examples
        --------
        >>> net = maso.soft.soften(maso.mlp([2, 4, 1], seed=0), beta=0.5)   # a SiLU network
        >>> x = np.array([0.4, -0.3])
        >>> f = net.expected_affine_at(x)
        >>> bool(np.allclose(f(x), net(x)))
        True
        """
        dense = check_bool(dense, "dense", "Network.expected_affine_at")
        return self._affine_map(self._batch(x, "Network.expected_affine_at"), dense, False, soft=True,
                                caller="Network.expected_affine_at")[1]

    @overload
    def soft_codes(self, x: Any, *, temperature: float | None = None, by_layer: Literal[False] = ...) -> Array: ...
    @overload
    def soft_codes(self, x: Any, *, temperature: float | None = None, by_layer: Literal[True]
                   ) -> dict[str, Array]: ...
    @overload
    def soft_codes(self, x: Any, *, temperature: float | None = None, by_layer: bool
                   ) -> Array | dict[str, Array]: ...

    def soft_codes(self, x: Any, *, temperature: float | None = None, by_layer: bool = False
                   ) -> Array | dict[str, Array]:
        """Soft spline codes: each unit's probability of being on each of its pieces.

        Soft layers (GELU, SiLU, β-VQ...) give their gate's probabilities; hard layers give one-hot rows (the
        hard code). Hard codes are the most probable pieces: ``codes(x) == soft_codes(x).argmax(-1)`` up to ties.

        Parameters
        ----------
        x : array or tensor of shape input_shape or (n, *input_shape)
            More leading axes are batch axes too (tokens: ``(batch, seq, d)`` for a network on ``(d,)``): codes,
            outputs and activations keep them; maps, operators and regions come flat, one per input in
            row-major order.
        temperature : float > 0, optional
            Evaluate every layer's gate at this temperature instead, on the network's own pre-activations (the
            network is not changed): GELU units give ``Phi(u / temperature)``, hard layers the softmax of their
            piece scores over ``temperature``. ``-> 0`` gives the hard code, 1 the network's own soft code.
        by_layer : bool, default=False
            Return ``{layer name: (n, *unit_shape, R_layer)}`` instead.

        Returns
        -------
        array or tensor of shape (n, n_units, R)
            Columns follow [`units`][maso.Network.units] as in [`codes`][maso.Network.codes]; ``R`` is the
            largest number of pieces of a unit and a unit's missing pieces have probability 0. For two-piece
            units ``[..., 1]`` is ``P(active)``. Float, in the input's precision.

        Examples
        --------
        >>> net = maso.soft.soften(maso.mlp([2, 3, 1], seed=0), beta=0.5)
        >>> p = net.soft_codes(np.zeros((5, 2)))
        >>> p.shape, bool(np.allclose(p.sum(-1), 1))
        ((5, 3, 2), True)
        >>> cold = maso.mlp([2, 3, 1], seed=0).soft_codes(np.ones(2), temperature=1e-9)
        >>> bool(np.array_equal(cold.argmax(-1), maso.mlp([2, 3, 1], seed=0).codes(np.ones(2))))
        True
        """
        if temperature is not None:
            temperature = check_temperature(temperature)
        by_layer = check_bool(by_layer, "by_layer", "Network.soft_codes")
        batch = self._batch(x, "Network.soft_codes", finite_check="later")  # (tested as the result is returned)
        t = batch.tensor
        n = t.shape[0]
        R = max((g.n_pieces for g in self.units), default=1)
        self._check_output_fits(n, self.n_units * R, t, "Network.soft_codes", "piece probabilities")
        parts: dict[str, torch.Tensor] = {}
        out: torch.Tensor | None = None
        with torch.no_grad():
            for sl in evaluator.chunks(n, self._program.sample_size) or [slice(0, 0)]:
                block = self._soft_block(t[sl], temperature)
                if not by_layer and out is None:
                    pr = next(iter(block.values()), None)
                    if len(block) == 1 and pr is not None and pr.shape == (n, self.n_units, R) \
                            and pr.is_contiguous():
                        out = pr  # one layer, one block: its probabilities are the result (no copy)
                        continue
                    out = torch.empty((n, self.n_units, R), dtype=t.dtype, device=t.device)
                for g, pr in block.items():
                    if out is not None:
                        out[sl, g.columns, :pr.shape[-1]] = pr
                        if pr.shape[-1] < R:
                            out[sl, g.columns, pr.shape[-1]:] = 0  # pieces this layer's units do not have
                        continue
                    if g.name not in parts:
                        parts[g.name] = torch.empty((n, g.size, pr.shape[-1]), dtype=t.dtype, device=t.device)
                    parts[g.name][sl] = pr
        batch.ensure_finite()  # (before any return: a network without spline layers has no out() to call)
        if out is None:
            return {g.name: batch.out(parts[g.name].reshape(n, *g.shape, parts[g.name].shape[-1]))
                    for g in self.units}
        return batch.out(out)

    def _soft_block(self, t: torch.Tensor, temperature: float | None) -> dict[UnitGroup, torch.Tensor]:
        """Piece probabilities ``(n, units, R_layer)`` of every spline layer at the inputs ``t`` (one block)."""
        n = t.shape[0]
        inputs = {g.node: self.nodes[g.node].inputs[0] for g in self.units}
        # only the spline layers' inputs: nothing after the last nonlinearity runs
        kept = evaluator.evaluate(self._program, {0: t}, sorted(set(inputs.values()))) if inputs else {}
        per_layer = {}
        for g in self.units:
            layer = self._program.spline_layer(g.node)
            z = kept[inputs[g.node]]
            p = evaluator.params(self._program, z.device, z.dtype)[g.node]
            probs = layer.piece_probabilities(z, p, self._program.input_shape_of(g.node), temperature)
            per_layer[g] = probs.reshape(n, g.size, probs.shape[-1]).to(t.dtype)
        return per_layer

    def _affine_map(self, batch: Batch, dense: bool, with_codes: bool, *, soft: bool, caller: str
                    ) -> tuple[Array | None, Affine | AffineOperator]:
        """The maps (dense or as an operator) of the inputs, and their code rows if ``with_codes`` (else None)."""
        prog = self._program
        t = batch.tensor
        n, m, d = t.shape[0], self.output_dim, self.input_dim
        if not dense:
            with torch.no_grad():
                icodes = evaluator.codes_pass(prog, t, soft=soft)
            op = self._operator(batch, icodes)
            return (self._code_rows(icodes, batch, keep_lead=False) if with_codes else None), op
        item = t.element_size()
        # Refuse up front what cannot fit, before any forward pass (A alone is n * m * d numbers).
        left = check_fits(
            n * m * (d + 1) * item,
            f"{caller}: the dense maps of {n:,} inputs (A of shape ({n}, {m}, {d}), {str(t.dtype).replace('torch.', '')})",
            lambda budget: f"Use {caller}(x, dense=False) for an AffineOperator that applies A by Jacobian-vector "
            f"products without forming it, or pass at most {budget // (m * (d + 1) * item):,} inputs at a time.",
            t.device)
        widest = max(math.prod(node.shape) for node in self.nodes)
        per_sample = max(prog.sample_size, min(m, d) * widest)
        # blocks of inputs: the intermediates of one block (a few tensors of per_sample numbers per input) must
        # fit next to the result
        most = evaluator.CHUNK_ELEMENTS
        limit = most if left is None else max(1, min(most, left // (8 * item)))
        with torch.no_grad():
            A = torch.empty((n, m, d), dtype=t.dtype, device=t.device)
            b = torch.empty((n, m), dtype=t.dtype, device=t.device)
            rows = self._empty_code_rows(n, t.device) if with_codes else None
            for sl in evaluator.chunks(n, per_sample, limit) or [slice(0, 0)]:
                k = sl.stop - sl.start
                ic = evaluator.codes_pass(prog, t[sl], soft=soft)
                if rows is not None:
                    self._fill_code_rows(rows[sl], ic)
                zero = torch.zeros((k, 1, *self.input_shape), dtype=t.dtype, device=t.device)
                b[sl] = evaluator.frozen_pass(prog, zero, ic, bias=True, zero_input=True)[0].reshape(k, m)
                if m <= d:
                    eye = torch.eye(m, dtype=t.dtype, device=t.device).reshape(1, m, *self.output_shape)
                    A[sl] = evaluator.pullback(prog, eye.expand(k, *eye.shape[1:]), ic).reshape(k, m, d)
                else:
                    eye = torch.eye(d, dtype=t.dtype, device=t.device).reshape(1, d, *self.input_shape)
                    AT = evaluator.frozen_pass(prog, eye.expand(k, *eye.shape[1:]), ic, bias=False)[0]
                    A[sl] = AT.reshape(k, d, m).transpose(1, 2)
        codes = batch.out(rows, keep_lead=False) if rows is not None else None
        if batch.was_single:
            A, b = A[0], b[0]
        f = Affine.from_owned(A.cpu().numpy(), b.cpu().numpy()) if batch.was_numpy else Affine(A, b)
        return codes, f

    def _operator(self, batch: Batch, icodes: dict[int, torch.Tensor]) -> AffineOperator:
        prog = self._program
        t = batch.tensor
        n, m, d = t.shape[0], self.output_dim, self.input_dim

        def to_tensor(v: Any, width: int, what: str) -> torch.Tensor:
            vt = torch.as_tensor(v, dtype=t.dtype, device=t.device)
            if batch.was_single and vt.shape == (width,):
                vt = vt.unsqueeze(0)
            if vt.shape != (n, width):
                raise ShapeError(f"AffineOperator.{what} expects shape ({n}, {width}). Got {tuple(vt.shape)}.")
            return vt

        def jvp(v: Any) -> Any:
            vt = to_tensor(v, d, "jvp").reshape(n, 1, *self.input_shape)
            with torch.no_grad():
                y = evaluator.frozen_pass(prog, vt, icodes, bias=False)[0]
                return batch.out(y.reshape(n, m), keep_lead=False)

        def vjp(w: Any) -> Any:
            wt = to_tensor(w, m, "vjp").reshape(n, 1, *self.output_shape)
            with torch.no_grad():
                return batch.out(evaluator.pullback(prog, wt, icodes).reshape(n, d), keep_lead=False)

        def offset() -> Any:
            zero = torch.zeros((n, 1, *self.input_shape), dtype=t.dtype, device=t.device)
            with torch.no_grad():
                y = evaluator.frozen_pass(prog, zero, icodes, bias=True, zero_input=True)[0]
                return batch.out(y.reshape(n, m), keep_lead=False)

        return AffineOperator(shape=(n, m, d), _jvp=jvp, _vjp=vjp, _offset=offset)

    def region_at(self, x: Any) -> Polytope | tuple[Polytope, ...]:
        """The region of ``x``: the inequalities its code imposes, in the (flattened) input space.

        Every unit contributes one row per competing piece: ``(piece_r - piece_q)(y) <= 0`` where ``q`` is
        the piece x's code selects, with all earlier units frozen on their pieces. Rows are not reduced:
        redundant rows (and the all-zero rows of units that are constant on the region) are kept. Computed
        in float64 whatever the input dtype.

        Ties: a unit whose competing pieces are equal on the whole region (a max-pool window over ReLU
        outputs that are all 0, say) keeps its lowest-index piece there, and gives all-zero rows with zero
        right-hand side. Such a unit changes its code together with the unit that breaks the tie, so a point
        just across a facet can differ in that facet's unit and in tied units downstream.

        Parameters
        ----------
        x : array or tensor of shape input_shape or (n, *input_shape)
            More leading axes are batch axes too (tokens: ``(batch, seq, d)`` for a network on ``(d,)``): codes,
            outputs and activations keep them; maps, operators and regions come flat, one per input in
            row-major order.

        Returns
        -------
        Polytope or tuple of Polytope
            With ``units[i] = (code column, competing piece)`` for each row.

        Examples
        --------
        >>> net = maso.mlp([2, 4, 4, 1], seed=0)
        >>> x = np.array([0.2, -0.1])
        >>> P = net.region_at(x)
        >>> P.n_constraints, bool(P.contains(x))
        (8, True)
        """
        prog = self._program
        evaluator.require_piecewise_linear(prog, "Network.region_at")
        batch = self._batch(x, "Network.region_at")
        t = batch.tensor.to(torch.float64)
        d = self.input_dim
        record = [g.node for g in self.units]
        out = []
        with torch.no_grad():
            _, icodes, _ = evaluator.forward(prog, t, need_codes=True)
            p = evaluator.params(prog, t.device, t.dtype)
            eye = torch.eye(d, dtype=t.dtype, device=t.device).reshape(1, d, *self.input_shape)
            zero = torch.zeros((1, 1, *self.input_shape), dtype=t.dtype, device=t.device)
            for s in range(t.shape[0]):
                ic = {k: v[s:s + 1] for k, v in icodes.items()}
                _, G = evaluator.frozen_pass(prog, eye, ic, bias=False, record=record)
                _, O = evaluator.frozen_pass(prog, zero, ic, bias=True, record=record)
                rows, rhs, units = [], [], []
                for g in self.units:
                    layer = prog.spline_layer(g.node)
                    r, h, u, pc = layer.facets(G[g.node][0], O[g.node][0, 0], ic[g.node][0], p[g.node],
                                               prog.input_shape_of(g.node))
                    order = torch.argsort(u * g.n_pieces + pc)  # rows grouped by unit, then piece
                    rows.append(r[order])
                    rhs.append(h[order])
                    units.append(torch.stack([u + g.offset, pc], dim=1)[order])
                if rows:
                    A = torch.cat(rows).cpu().numpy()
                    bb = torch.cat(rhs).cpu().numpy()
                    uu = torch.cat(units).cpu().numpy()
                else:
                    A, bb, uu = np.zeros((0, d)), np.zeros(0), np.zeros((0, 2), dtype=np.int64)
                out.append(Polytope(A, bb, uu))
        return out[0] if batch.was_single else tuple(out)

    # -------------------------------------------------------------------------------------- sub-networks
    def subnetwork(self, start: str | int | None = None, stop: str | int | None = None) -> Network:
        """The part of the network from the output of node ``start`` to the output of node ``stop``.

        Its input space is the activation space after ``start`` (the whole input by default), and its
        units, codes, maps and regions are those of the layers after ``start`` up to ``stop`` ("layer L to
        output", as the polytope lens uses them). Code columns keep the layer names of this network.

        Raises
        ------
        SubnetworkError
            If a name is unknown, ``stop`` does not depend on ``start``, or ``start`` does not separate the
            graph (a later node also reads a node before ``start``, e.g. a skip connection around it).

        Examples
        --------
        >>> net = maso.mlp([2, 4, 4, 1], seed=0)
        >>> tail = net.subnetwork(start="1")          # after the first ReLU
        >>> h = net.activations(np.ones(2), ["1"])["1"]
        >>> bool(np.allclose(tail(h), net(np.ones(2))))
        True
        """
        s = 0 if start is None else self.node_index(start)
        e = self._program.output if stop is None else self.node_index(stop)
        desc = {s}
        for i in range(s + 1, len(self.nodes)):
            if any(j in desc for j in self.nodes[i].inputs):
                desc.add(i)
        anc = {e}
        for i in range(e, -1, -1):
            if i in anc:
                anc.update(self.nodes[i].inputs)
        if e not in desc:
            raise SubnetworkError(
                f"Node {self.nodes[e].name!r} does not depend on node {self.nodes[s].name!r}: no sub-network "
                "runs from the first to the second."
            )
        keep = sorted((desc & anc) - {s})
        new_index = {s: 0}
        nodes = [Node(self.nodes[s].name, None, (), self.nodes[s].shape, "input")]
        for i in keep:
            node = self.nodes[i]
            outside = [self.nodes[j].name for j in node.inputs if j not in new_index]
            if outside:
                raise SubnetworkError(
                    f"Node {self.nodes[s].name!r} does not separate the network: node {node.name!r} also reads "
                    f"{outside}, which the sub-network would not have. Start at a node that all paths pass "
                    "through (e.g. the output of a whole residual or Inception block)."
                )
            new_index[i] = len(nodes)
            nodes.append(Node(node.name, node.layer, tuple(new_index[j] for j in node.inputs), node.shape,
                              node.source))
        return Network(nodes, new_index[e])

    def restrict(self, origin: Any, directions: Any) -> Network:
        """The network on the affine subspace ``y(s) = origin + s @ directions`` (coordinates ``s``, shape ``(k,)``).

        The parametrisation becomes a new first layer (a ``Dense`` from ``k`` to ``input_dim``, reshaped to
        [`input_shape`][maso.Network.input_shape]), so codes, maps and regions of the result live in ``k``
        dimensions and computing them costs what a ``k``-dimensional input costs: no ``input_dim``-dimensional
        vertex is ever formed. Node names are kept, so code columns match this network's.

        Parameters
        ----------
        origin : array of shape input_shape (or input_dim,)
        directions : array of shape (k, input_dim) (or (k, *input_shape))

        Examples
        --------
        >>> net = maso.mlp([3, 4, 1], seed=0)
        >>> line = net.restrict(np.zeros(3), np.array([[1.0, 2.0, 0.0]]))   # y(s) = s * (1, 2, 0)
        >>> bool(np.allclose(line(np.array([0.5])), net(np.array([0.5, 1.0, 0.0]))))
        True
        """
        o = real_vector(origin, "origin", "Network.restrict").reshape(-1)
        U = real_vector(directions, "directions", "Network.restrict")
        U = U.reshape(U.shape[0], -1) if U.ndim > 1 else U.reshape(1, -1)
        if o.shape != (self.input_dim,) or U.shape[1] != self.input_dim:
            raise ShapeError(
                f"restrict needs origin with {self.input_dim} entries and directions of shape (k, {self.input_dim}). "
                f"Got {np.shape(origin)} and {np.shape(directions)}."
            )
        from maso.layers import Dense, Reshape

        k = U.shape[0]
        names = {n.name for n in self.nodes}
        base = "restrict"
        while base in names or base + "/reshape" in names:
            base = "_" + base
        head = [Node(self.nodes[0].name, None, (), (k,), "subspace coordinates"),
                Node(base, Dense(U.T, o), (0,), (self.input_dim,), "subspace parametrisation")]
        shift = 1
        if self.input_shape != (self.input_dim,):
            head.append(Node(base + "/reshape", Reshape(self.input_shape), (1,), self.input_shape, "reshape"))
            shift = 2
        nodes = head + [Node(n.name, n.layer, tuple(j + shift if j else shift for j in n.inputs), n.shape, n.source)
                        for n in self.nodes[1:]]
        return Network(nodes, self._program.output + shift)

    # ---------------------------------------------------------------------------------- canonical form
    def maso_layers(self) -> tuple[MASOLayer, ...]:
        """The network as a chain of dense canonical MASO layers (theory: ``S[A^(l), B^(l)]``).

        Each spline layer absorbs the affine operators before it; trailing affine operators become a
        final one-piece layer. Dense arrays are formed here only, so keep this to small networks.

        Raises
        ------
        SubnetworkError
            If the network is not a chain (residual or concatenation graphs have no such form).

        Examples
        --------
        >>> net = maso.mlp([2, 3, 1], seed=0)
        >>> layers = net.maso_layers()
        >>> [l.A.shape for l in layers]
        [(3, 2, 2), (1, 1, 3)]
        >>> chain = maso.Network.sequential((2,), layers)
        >>> bool(np.allclose(chain(np.ones(2)), net(np.ones(2))))
        True
        """
        evaluator.require_piecewise_linear(self._program, "Network.maso_layers")
        for i, node in enumerate(self.nodes[1:], 1):
            if node.inputs != (i - 1,):
                raise SubnetworkError(f"maso_layers needs a chain of layers; node {node.name!r} is not one.")
        if self._program.output != len(self.nodes) - 1:
            raise SubnetworkError("maso_layers needs the output to be the last node.")
        out: list[MASOLayer] = []
        shape = self.input_shape
        W = np.eye(math.prod(shape))
        b = np.zeros(math.prod(shape))
        pending = False
        with torch.no_grad():
            for i, node in enumerate(self.nodes[1:], 1):
                layer = node.layer
                p = evaluator.params(self._program, "cpu", torch.float64)[i]
                if isinstance(layer, SplineLayer):
                    A, B = layer.to_maso(W, b, shape)
                    out.append(MASOLayer(A, B))
                    shape = node.shape  # MASOLayer outputs are this shape, flattened in C order
                    W, b, pending = np.eye(A.shape[0]), np.zeros(A.shape[0]), False
                else:
                    assert isinstance(layer, AffineLayer)
                    cols = torch.as_tensor(W.T.reshape(W.shape[1], *shape))
                    W = layer.linear([cols], p).reshape(W.shape[1], -1).numpy().T.copy()
                    b = layer.forward([torch.as_tensor(b.reshape(1, *shape))], p).reshape(-1).numpy().copy()
                    shape = node.shape
                    pending = True
        if pending:
            out.append(MASOLayer(W[:, None, :], b[:, None]))
        return tuple(out)
