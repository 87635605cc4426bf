"""Network values on affine families of inputs (lines, planes) without rerunning the affine head.

Every node computed before the first spline layer is an affine function of the input, so on a line or a plane
it is an affine function of the coordinates: its values follow from a forward pass at ``k + 1`` anchor points.
Only the layers after that head are run at the many points of a walk or a mesh, which keeps a slice of a
40,000-dimensional input as cheap as a 2-D network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from maso._validation import memory_budget
from maso.core import _program
from maso.core._program import affine_frontier, chunks, evaluate, params
from maso.core.network import Network
from maso.layers import (
    Dense,
    Elementwise,
    MaxPool,
    Reshape,
    _pieces_per_unit,
    _window_index,
)


def _two_piece(net: Network, node: int) -> bool:
    layer = net.nodes[node].layer
    return isinstance(layer, Elementwise) and layer.n_pieces == 2


def _like(a: np.ndarray, x: Any) -> Any:
    """``a`` as ``x`` holds its numbers: itself for a NumPy ``x``, a tensor on ``x``'s device for a tensor."""
    return torch.tensor(np.asarray(a), device=x.device) if isinstance(x, torch.Tensor) else a


def piece_scores(net: Network, node: int, x: Any, units: np.ndarray | None = None) -> Any:
    """Piece scores ``(N, U, R)`` of spline node ``node`` given its input values ``x`` ``(N, *in_shape)``.

    NumPy in, NumPy out; a tensor in, a tensor on its device out (the same arithmetic). ``units``: only these
    units' scores ``(N, len(units), R)`` (max-pooling then gathers only their windows).
    """
    in_shape = net.nodes[net.nodes[node].inputs[0]].shape
    layer = net.program.spline_layer(node)
    if units is not None:
        if isinstance(layer, MaxPool) and isinstance(x, torch.Tensor):
            return _pool_scores(layer, x, in_shape, units)
        Q = piece_scores(net, node, x)
        return Q.index_select(1, torch.from_numpy(units).to(Q.device)) if isinstance(Q, torch.Tensor) else Q[:, units]
    if isinstance(layer, Elementwise):  # direct: the generic path also forms slopes we do not need
        X = x.reshape(len(x), -1)
        S = _like(_pieces_per_unit(layer.slopes, in_shape).T, x)  # (U, R)
        C = _like(_pieces_per_unit(layer.intercepts, in_shape).T, x)
        sg = _like(_pieces_per_unit(layer.sign[None], in_shape)[0], x)
        return sg[None, :, None] * (X[:, :, None] * S[None] + C[None])
    tensor = isinstance(x, torch.Tensor)
    xt = x if tensor else torch.from_numpy(np.ascontiguousarray(x))
    with torch.no_grad():
        Q = layer.piece_scores(xt, params(net.program, xt.device, xt.dtype)[node], in_shape)
    return Q if tensor else Q.numpy()


def _pool_scores(layer: MaxPool, x: torch.Tensor, in_shape: tuple[int, ...], units: np.ndarray) -> torch.Tensor:
    """`MaxPool.piece_scores` of some units only: each gathers its own window (-inf in the padding)."""
    win = _window_index(layer, in_shape, x.device)  # (L, R), cached
    L = len(win)
    u = torch.from_numpy(units).to(x.device)
    w = win[u % L]  # (k, R)
    flat = (u // L)[:, None] * math.prod(in_shape[1:]) + w.clamp(min=0)
    Q = x.reshape(len(x), -1).index_select(1, flat.reshape(-1)).reshape(len(x), len(units), -1)
    if bool((w < 0).any()):
        Q = Q.masked_fill((w < 0)[None], float("-inf"))
    return Q


def pool_first_within(net: Network, node: int, x: torch.Tensor, slack: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """For a max-pool node: each unit's best score and the first piece (public-code order) within ``slack`` of
    it, ``(N, U)`` each, from its input ``x`` ``(N, *in_shape)`` (a tensor).

    The same numbers as the argmax of ``piece_scores(...) >= best - slack``, without forming the ``(N, U, R)``
    stack: the best is the layer's own pooling (exact: a max), and the pieces are compared one window position
    at a time. ``slack``: a number, or ``(N,)`` or ``(N, U)``, non-negative.
    """
    layer = net.program.spline_layer(node)
    assert isinstance(layer, MaxPool)
    in_shape = net.nodes[net.nodes[node].inputs[0]].shape
    n, C = len(x), in_shape[0]
    win = _window_index(layer, in_shape, x.device)  # (L, R), cached
    L, R = win.shape
    with torch.no_grad():
        best = layer.forward(x, {}, False)[0].reshape(n, C * L)
        if isinstance(slack, torch.Tensor) and slack.dim() == 1:
            slack = slack[:, None]
        floor = (best - slack).reshape(n, C, L)
        flat = x.reshape(n, C, -1)
        first = torch.full((n, C, L), R, dtype=torch.int64, device=x.device)
        for r in range(R - 1, -1, -1):  # from the last piece down: the lowest one within the slack stays
            col = win[:, r]
            hit = flat[:, :, col.clamp(min=0)] >= floor
            if bool((col < 0).any()):
                hit &= (col >= 0)[None, None]  # padding is no piece
            first.masked_fill_(hit, r)
    return best, first.reshape(n, C * L)


def pool_scores_at(net: Network, node: int, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """For a max-pool node: each unit's score ``(N, U)`` on its piece ``code`` ``(N, U)`` (-inf on padding)."""
    layer = net.program.spline_layer(node)
    assert isinstance(layer, MaxPool)
    in_shape = net.nodes[net.nodes[node].inputs[0]].shape
    n, C = len(x), in_shape[0]
    win = _window_index(layer, in_shape, x.device)  # (L, R)
    L = len(win)
    S = math.prod(in_shape[1:])
    pos = win[torch.arange(L, device=x.device).repeat(C)[None], code.long()]  # (N, U): input position
    at = torch.arange(C, device=x.device).repeat_interleave(L)[None] * S + pos.clamp(min=0)
    out = x.reshape(n, -1).gather(1, at)
    return out.masked_fill(pos < 0, float("-inf"))


def breakpoints(net: Network, node: int) -> np.ndarray:
    """For a two-piece elementwise layer: the input value ``(U,)`` where each unit changes piece."""
    in_shape = net.nodes[net.nodes[node].inputs[0]].shape
    layer = net.nodes[node].layer
    assert isinstance(layer, Elementwise)  # callers check `_two_piece` first
    if layer.kind in ("relu", "leaky", "abs"):
        return np.zeros(math.prod(in_shape))
    S = _pieces_per_unit(layer.slopes, in_shape)
    C = _pieces_per_unit(layer.intercepts, in_shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(S[1] != S[0], -(C[1] - C[0]) / (S[1] - S[0]), 0.0)


def piece_gap(net: Network, node: int, x: Any) -> Any:
    """For a two-piece elementwise layer: ``score_1 - score_0`` per unit ``(N, U)`` (code 1 where > 0).

    NumPy in, NumPy out; a tensor in, a tensor on its device out (the same arithmetic)."""
    in_shape = net.nodes[net.nodes[node].inputs[0]].shape
    layer = net.nodes[node].layer
    assert isinstance(layer, Elementwise)  # callers check `_two_piece` first
    X = x.reshape(len(x), -1)
    if layer.kind in ("relu", "leaky", "abs"):  # max(a u, u) with a < 1: the gap is (1 - a) u
        return X
    S = _pieces_per_unit(layer.slopes, in_shape)
    C = _pieces_per_unit(layer.intercepts, in_shape)
    sg = _pieces_per_unit(layer.sign[None], in_shape)[0]
    return _like(sg, x) * (_like(S[1] - S[0], x) * X + _like(C[1] - C[0], x))


def batch_limit(device: torch.device) -> int | None:
    """Numbers per batch of vertex (or path point) evaluations on ``device``: the default chunk on the CPU; on a
    GPU, an eighth of its free memory (in float64 numbers), so that thousands of points run per call."""
    if device.type != "cuda":
        return None
    free = memory_budget(device)
    return None if free is None else max(_program.CHUNK_ELEMENTS, free // 64)


class Anchored:
    """Values of ``net`` at ``origins[i] + coords @ directions[i]`` for many families ``i`` at once.

    Parameters
    ----------
    net : Network
    origins : ndarray of shape (n, input_dim)
    directions : ndarray of shape (n, k, input_dim)
    device : torch.device, optional
        Where the seeds (and everything evaluated from them) live; the head is evaluated on the CPU, in
        float64, at the ``n * (k + 1)`` anchors only.
    """

    def __init__(self, net: Network, origins: np.ndarray, directions: np.ndarray,
                 device: torch.device | None = None) -> None:
        self.net = net
        self.device = torch.device("cpu") if device is None else device
        n, k, _ = directions.shape
        self.n, self.k = n, k
        front = affine_frontier(net.program)
        shape = net.input_shape
        o = torch.from_numpy(np.ascontiguousarray(origins, dtype=np.float64)).reshape(n, *shape)
        u = torch.from_numpy(np.ascontiguousarray(directions, dtype=np.float64)).reshape(n * k, *shape)
        with torch.no_grad():  # only the head: the nodes up to the frontier
            self.base = evaluate(net.program, {0: o}, front)
            # slopes from the linear part itself, not as differences of values: with a large offset the
            # difference loses the slope's low digits (an offset 1e12 times the slope left it exact to 1e-4)
            lin = evaluate(net.program, {0: u}, front, bias=False)
        self.base = {j: v.to(self.device) for j, v in self.base.items()}
        self.slopes = {j: v.reshape(n, k, *v.shape[1:]).to(self.device) for j, v in lin.items()}
        self.per_sample = net.program.sample_size + 1

    def seeds(self, which: np.ndarray | None, coords: np.ndarray,
               nodes: Any = None) -> dict[int, torch.Tensor]:
        """Values of the head's frontier nodes (or of those in ``nodes``) at the points."""
        c = torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float64)).to(self.device)
        out = {}
        for j, b in self.base.items():
            if nodes is not None and j not in nodes:
                continue
            g = self.slopes[j]
            if which is None:  # one family: broadcast instead of gathering
                out[j] = b + torch.tensordot(c, g[0], dims=([1], [0]))
            else:
                w = torch.from_numpy(which).to(self.device)
                shape = (-1, *([1] * (g.dim() - 2)))
                v = b.index_select(0, w)  # a fresh tensor: accumulate into it
                for i in range(self.k):
                    v.addcmul_(g[:, i].index_select(0, w), c[:, i].reshape(shape))
                out[j] = v
        return out

    def value(self, which: np.ndarray | None, coords: np.ndarray, node: int) -> np.ndarray:
        """Values of ``node`` at the points, shape ``(N, *node_shape)``."""
        return self.tensor(which, coords, node).cpu().numpy()

    def tensor(self, which: np.ndarray | None, coords: np.ndarray, node: int) -> torch.Tensor:
        """Values of ``node`` at the points as a float64 tensor on the device, shape ``(N, *node_shape)``."""
        parts = []
        with torch.no_grad():
            for sl in chunks(len(coords), self.per_sample, batch_limit(self.device)):
                w = None if which is None else which[sl]
                parts.append(evaluate(self.net.program, self.seeds(w, coords[sl]), (node,))[node])
        if not parts:
            return torch.zeros((0, *self.net.nodes[node].shape), dtype=torch.float64, device=self.device)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def scores(self, which: np.ndarray | None, coords: np.ndarray, node: int) -> np.ndarray:
        """Piece scores ``(N, U, R)`` of spline node ``node`` at the points (code = argmax, lowest on ties)."""
        src = self.net.nodes[node].inputs[0]
        return piece_scores(self.net, node, self.value(which, coords, src))


class DenseChain:
    """NumPy values of a chain network at points of its input: what `Anchored` gives for one family.

    For chains of ``Dense`` and ``Reshape`` layers and two-piece elementwise units (MLPs, and their
    restrictions to a plane), where torch's cost per call dominates the small meshes of 2-D slices. The affine
    head (everything before the first spline layer, e.g. a plane's parametrisation and the first ``Dense``) is
    composed into one map once, so no input-dimensional value is formed. Build one with `of`.
    """

    def __init__(self, net: Network, head: int, W: np.ndarray | None, b: np.ndarray | None) -> None:
        self.net = net
        self._head, self._W, self._b = head, W, b
        self._ops: dict[int, Any] = {}
        for i in range(head + 1, len(net.nodes)):
            layer = net.nodes[i].layer
            if isinstance(layer, Dense):
                self._ops[i] = (np.asarray(layer.weight, dtype=np.float64).T,
                                np.asarray(layer.bias, dtype=np.float64))
            elif isinstance(layer, Elementwise):
                self._ops[i] = layer
        sizes = [math.prod(n.shape) for n in net.nodes]
        self._widest = [max(sizes[min(head, i):i + 1]) for i in range(len(sizes))]  # per node, from the head

    @classmethod
    def of(cls, net: Network) -> DenseChain | None:
        """The evaluator for ``net``, or None if it is not such a chain."""
        # the head's map so far; None: the identity (never formed for a wide input)
        W: np.ndarray | None = None
        b: np.ndarray | None = None
        head, in_head = 0, True
        for i, node in enumerate(net.nodes[1:], 1):
            layer = node.layer
            spline = isinstance(layer, Elementwise) and layer.n_pieces == 2
            if node.inputs != (i - 1,) or not (spline or isinstance(layer, (Dense, Reshape))):
                return None
            in_head &= not spline
            if in_head:
                head = i
                if isinstance(layer, Dense):
                    w = np.asarray(layer.weight, dtype=np.float64)
                    bias = np.asarray(layer.bias, dtype=np.float64)
                    W, b = (w, bias) if W is None or b is None else (w @ W, w @ b + bias)
        return cls(net, head, None if W is None else np.ascontiguousarray(W.T), b)

    def value(self, which: None, coords: np.ndarray, node: int) -> np.ndarray:
        """Values of ``node`` at the points ``coords`` ``(N, input_dim)``, shape ``(N, *node_shape)``."""
        net = self.net
        x = np.asarray(coords, dtype=np.float64).reshape(len(coords), -1)
        if node == 0:
            return x.reshape(len(x), *net.input_shape)
        if node < self._head:
            raise ValueError("DenseChain.value: nodes inside the composed head have no separate value.")
        rows = max(1, self._BLOCK // max(1, self._widest[node]))  # a wide hidden layer must not hold all points at once
        if len(x) > rows:
            return np.concatenate([self._value(x[s:s + rows], node) for s in range(0, len(x), rows)])
        return self._value(x, node)

    _BLOCK = 1 << 22  # floats per block of a hidden layer's values (32 MiB)

    def _value(self, x: np.ndarray, node: int) -> np.ndarray:
        net = self.net
        if self._W is not None and self._b is not None:  # None together: an identity head
            x = x @ self._W + self._b
        for i in range(self._head + 1, node + 1):
            op = self._ops.get(i)
            if op is None:  # a reshape: the flat values are the same
                continue
            if isinstance(op, tuple):
                x = x @ op[0] + op[1]
            else:
                x = _elementwise(op, x, net.nodes[net.nodes[i].inputs[0]].shape)
        return x.reshape(len(x), *net.nodes[node].shape)

    def scores(self, which: None, coords: np.ndarray, node: int) -> np.ndarray:
        """Piece scores ``(N, U, R)`` of spline node ``node`` at the points."""
        return piece_scores(self.net, node, self.value(which, coords, self.net.nodes[node].inputs[0]))


def _elementwise(layer: Elementwise, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """A two-piece ``Elementwise`` on flat values ``(N, U)``, as its torch ``forward`` computes it."""
    if layer.kind == "relu":
        return np.maximum(x, 0.0)
    if layer.kind == "abs":
        return np.abs(x)
    S = _pieces_per_unit(layer.slopes, in_shape)
    C = _pieces_per_unit(layer.intercepts, in_shape)
    if layer.kind == "leaky":
        return np.where(x > 0, x, S[0] * x)
    sg = _pieces_per_unit(layer.sign[None], in_shape)[0]
    l0, l1 = S[0] * x + C[0], S[1] * x + C[1]
    return np.where(sg * (l1 - l0) > 0, l1, l0)


_HOST_WALK = True  # walks on the CPU hold NumPy values (tests turn it off to run the device path there)


class Incremental:
    """Node values at a growing set of points, each node computed once.

    Points are added by interpolating between two existing points (`interpolate`), which is exact for
    every value held: they are affine between points as long as the points already include every breakpoint
    of the spline layers computed so far. `advance` computes the nodes up to a given one at all points. The
    values are float64 tensors on the anchors' device, where they stay; on the CPU they are NumPy arrays (the
    same operations, without torch's cost per call on the many small steps of a walk).

    Parameters
    ----------
    anch : Anchored
    which : ndarray of int or None
        Family of each point (``None``: one family).
    coords : ndarray of shape (N, k)
    """

    def __init__(self, anch: Anchored, which: np.ndarray | None, coords: np.ndarray) -> None:
        net = anch.net
        self.net = net
        self.device = anch.device
        self.host = self.device.type == "cpu" and _HOST_WALK
        seeds = anch.seeds(which, coords)
        self.vals: dict[int, Any] = {j: v.numpy() for j, v in seeds.items()} if self.host else dict(seeds)
        self.done = set(self.vals)
        readers: dict[int, set[int]] = {i: set() for i in range(len(net.nodes))}
        for i, node in enumerate(net.nodes):
            for j in node.inputs:
                readers[j].add(i)
        self.readers = readers
        need = {net.program.output} | {g.node for g in net.units}
        for i in range(len(net.nodes) - 1, -1, -1):
            if i in need and i not in self.done:
                need.update(net.nodes[i].inputs)
        self.need = need
        self.last = 0

    def interpolate(self, a: np.ndarray, b: np.ndarray, tau: np.ndarray, merge: Any,
                    exact: tuple[int, np.ndarray, np.ndarray] | None = None) -> None:
        """Add points ``(1 - tau) * point[a] + tau * point[b]``, placed by ``merge.apply(old, new)``.

        ``exact = (node, units, values)``: set those (flat) entries of the new points of ``node`` exactly (a
        unit's breakpoint at its crossing, instead of a value that rounding moved off it).
        """
        if self.host:
            for j, v in self.vals.items():
                va = v[a]
                w = tau.reshape(-1, *([1] * (v.ndim - 1)))
                new = va + w * (v[b] - va)
                if exact is not None and exact[0] == j and len(new):
                    new.reshape(len(new), -1)[np.arange(len(new)), exact[1]] = exact[2]
                self.vals[j] = merge.apply(v, new)
            return
        dev = self.device
        ia, ib = torch.from_numpy(np.asarray(a)).to(dev), torch.from_numpy(np.asarray(b)).to(dev)
        t = torch.from_numpy(np.ascontiguousarray(tau, dtype=np.float64)).to(dev)
        for j, vt in self.vals.items():
            vat = vt.index_select(0, ia)
            wt = t.reshape(-1, *([1] * (vt.dim() - 1)))
            nt = vat + wt * (vt.index_select(0, ib) - vat)  # the NumPy walk's operations, in its order
            if exact is not None and exact[0] == j and len(nt):
                flat = nt.reshape(len(nt), -1)
                flat[torch.arange(len(nt), device=dev), torch.from_numpy(exact[1]).to(dev)] = \
                    torch.from_numpy(np.ascontiguousarray(exact[2], dtype=np.float64)).to(dev)
            self.vals[j] = merge.apply(vt, nt)

    def select(self, idx: np.ndarray) -> None:
        """Keep (or permute) the points ``idx``."""
        if self.host:
            for j in self.vals:
                self.vals[j] = self.vals[j][idx]
            return
        i = torch.from_numpy(np.asarray(idx)).to(self.device)
        for j in self.vals:
            self.vals[j] = self.vals[j].index_select(0, i)

    def advance(self, stop: int) -> np.ndarray:
        """Value of node ``stop`` at all points, as NumPy (computing the needed nodes up to it on the device, in
        batches of points; they stay there)."""
        net = self.net
        todo = [i for i in range(self.last + 1, stop + 1) if i in self.need and i not in self.done]
        if todo:
            N = len(next(iter(self.vals.values())))
            parts: dict[int, list[torch.Tensor]] = {i: [] for i in todo}
            with torch.no_grad():
                for sl in chunks(N, net.program.sample_size, batch_limit(self.device)):
                    seeds = {j: torch.from_numpy(v[sl]) if self.host else v[sl] for j, v in self.vals.items()}
                    for i, y in evaluate(net.program, seeds, todo).items():
                        parts[i].append(y)
            for i in todo:
                p = parts[i]
                v = (p[0] if len(p) == 1 else torch.cat(p)) if p else torch.zeros(
                    (0, *net.nodes[i].shape), dtype=torch.float64, device=self.device)
                self.vals[i] = v.numpy() if self.host else v
                self.done.add(i)
            for i in todo:
                for j in set(net.nodes[i].inputs):
                    if self.readers[j] <= self.done and j != net.program.output:
                        self.vals.pop(j, None)
        self.last = max(self.last, stop)
        v = self.vals[stop]
        return v if self.host else v.cpu().numpy()


def interval_codes(net: Network, node: int, x: Any, k: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Codes ``(len(k), U)`` of spline node ``node`` on the intervals between points ``k`` and ``k + 1``.

    ``x`` holds the layer's input at the points; it is affine on each interval (the points hold every
    breakpoint of the earlier layers), so its value at the midpoint is the mean of the two ends. ``tie``
    ``(len(k),)``: for layers of more than two pieces, pieces within ``tie`` of the best count as tied and the
    lowest of them wins. Values interpolated at the points carry rounding, so two max-pool windows that hold the
    same input (an exact tie, which [`Network.codes`][maso.Network.codes] gives to the lower piece) need not
    stay bit-equal.
    """
    if isinstance(net.program.spline_layer(node), MaxPool):  # one window position at a time: no 9x stack
        xt = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
        kt = torch.from_numpy(np.asarray(k, dtype=np.int64)).to(xt.device)
        mid = 0.5 * (xt.index_select(0, kt) + xt.index_select(0, kt + 1))
        slack_t = 0.0 if tie is None else torch.from_numpy(np.asarray(tie, dtype=np.float64)).to(xt.device)
        return pool_first_within(net, node, mid, slack_t)[1].cpu().numpy().astype(net.program.code_dtype)
    if not isinstance(x, torch.Tensor):  # NumPy: the same operations, without torch's cost per call
        if _two_piece(net, node):
            g = piece_gap(net, node, x)
            return (np.add(g[:-1], g[1:]) > 0)[k].astype(net.program.code_dtype)  # slices: no float gathers
        Qn = piece_scores(net, node, 0.5 * (x[k] + x[k + 1]))  # (len(k), U, R), -inf for missing pieces
        top = Qn.max(axis=2, keepdims=True)
        tied = 0.0 if tie is None else tie[:, None, None]
        return np.argmax(Qn >= top - tied, axis=2).astype(net.program.code_dtype)  # pieces in public-code order
    code_dtype = torch.uint8 if net.program.code_dtype == np.uint8 else torch.int32
    kt = torch.from_numpy(np.asarray(k, dtype=np.int64)).to(x.device)
    if _two_piece(net, node):
        g = piece_gap(net, node, x)
        return ((g[:-1] + g[1:]) > 0).index_select(0, kt).to(code_dtype).cpu().numpy()  # no float gathers
    mid = 0.5 * (x.index_select(0, kt) + x.index_select(0, kt + 1))
    Q = piece_scores(net, node, mid)  # (len(k), U, R), -inf for missing pieces
    best = Q.amax(dim=2, keepdim=True)
    slack = 0.0 if tie is None else torch.from_numpy(np.asarray(tie, dtype=np.float64)).to(x.device)[:, None, None]
    # the first piece within the slack of the best: pieces in public-code order
    return torch.argmax((Q >= best - slack).to(torch.uint8), dim=2).to(code_dtype).cpu().numpy()
