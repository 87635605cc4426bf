"""Network values on affine families of inputs (lines, planes) without rerunning the affine head.

Every node computed before the first spline layer is an affine function of the input, so on a line or a plane
it is an affine function of the coordinates: its values follow from a forward pass at ``k + 1`` anchor points.
Only the layers after that head are run at the many points of a walk or a mesh, which keeps a slice of a
40,000-dimensional input as cheap as a 2-D network.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from maso.network import Network

_CHUNK_ELEMENTS = 1 << 25


class Anchored:
    """Values of ``net`` at ``origins[i] + coords @ directions[i]`` for many families ``i`` at once.

    Parameters
    ----------
    net : Network
    origins : ndarray of shape (n, input_dim)
    directions : ndarray of shape (n, k, input_dim)
    """

    def __init__(self, net: Network, origins: np.ndarray, directions: np.ndarray) -> None:
        self.net = net
        n, k, _ = directions.shape
        self.n, self.k = n, k
        front = net._affine_frontier()
        shape = net.input_shape
        o = torch.from_numpy(np.ascontiguousarray(origins, dtype=np.float64))
        u = torch.from_numpy(np.ascontiguousarray(directions, dtype=np.float64))
        pts = torch.cat([o] + [o + u[:, j] for j in range(k)]).reshape(n * (k + 1), *shape)
        with torch.no_grad():
            _, _, kept = net._forward(pts, keep=front)
        self.base = {j: kept[j][:n] for j in front}
        self.slopes = {j: torch.stack([kept[j][n * (c + 1):n * (c + 2)] - kept[j][:n] for c in range(k)], dim=1)
                       for j in front}
        self._per_sample = sum(math.prod(node.shape) for node in net.nodes) + 1

    def _seeds(self, which: np.ndarray | None, coords: np.ndarray) -> dict[int, torch.Tensor]:
        c = torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float64))
        out = {}
        for j, b in self.base.items():
            g = self.slopes[j]
            if which is None:  # one family: broadcast instead of gathering
                out[j] = b + torch.tensordot(c, g[0], dims=([1], [0]))
            else:
                w = torch.from_numpy(which)
                out[j] = b[w] + torch.einsum("nk,nk...->n...", c, g[w])
        return out

    def _chunks(self, n: int) -> list[slice]:
        size = max(1, _CHUNK_ELEMENTS // self._per_sample)
        return [slice(s, min(n, s + size)) for s in range(0, n, size)]

    def value(self, which: np.ndarray | None, coords: np.ndarray, node: int) -> np.ndarray:
        """Values of ``node`` at the points, shape ``(N, *node_shape)``."""
        parts = []
        with torch.no_grad():
            for sl in self._chunks(len(coords)):
                w = None if which is None else which[sl]
                parts.append(self.net._evaluate(self._seeds(w, coords[sl]), node)[0].numpy())
        if not parts:
            return np.zeros((0, *self.net.nodes[node].shape))
        return np.concatenate(parts)

    def scores(self, which: np.ndarray | None, coords: np.ndarray, node: int) -> np.ndarray:
        """Piece scores ``(N, U, R)`` of spline node ``node`` at the points (code = argmax, lowest on ties)."""
        net = self.net
        src = net.nodes[node].inputs[0]
        in_shape = net.nodes[src].shape
        x = torch.from_numpy(self.value(which, coords, src))
        layer = net.nodes[node].layer
        with torch.no_grad():
            _, Q = layer.scores(torch.zeros((x.shape[0], 1, *in_shape), dtype=x.dtype), x, in_shape)
        return Q.numpy()

    def codes(self, which: np.ndarray | None, coords: np.ndarray) -> np.ndarray:
        """Code rows ``(N, n_units)`` at the points, as :meth:`Network.codes` gives them."""
        net = self.net
        out = np.zeros((len(coords), net.n_units), dtype=net._code_dtype)
        if not net.n_units:
            return out
        with torch.no_grad():
            for sl in self._chunks(len(coords)):
                w = None if which is None else which[sl]
                _, icodes = net._evaluate(self._seeds(w, coords[sl]), net.units[-1].node, need_codes=True)
                for g in net.units:
                    out[sl, g.columns] = net._public(g, icodes).reshape(sl.stop - sl.start, -1).numpy()
        return out
