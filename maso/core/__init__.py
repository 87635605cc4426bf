"""The core: a network as a graph of affine layers and max-affine spline operators, and what one input gives.

[`Network`][maso.Network] holds the graph and answers the per-input questions (codes, the affine map of
the input's region, the region's inequalities); [`Affine`][maso.core.Affine] and
[`AffineOperator`][maso.core.AffineOperator] are those maps, dense or applied by products;
[`Polytope`][maso.Polytope] and [`Box`][maso.Box] are regions and domains. Every algorithm of maso
evaluates networks through one internal evaluator, ``maso.core._program`` (a frozen ``Program`` record and free
functions over it), never through `Network`'s private members.

Examples
--------
>>> import numpy as np, maso
>>> net = maso.mlp([2, 4, 1], seed=0)
>>> isinstance(net, maso.core.Network), type(net.affine_at(np.zeros(2))).__name__
(True, 'Affine')
"""

from maso.core.affine import Affine, AffineOperator
from maso.core.domain import Box
from maso.core.network import Network, Node, UnitGroup
from maso.core.polytope import Polytope

__all__ = ["Affine", "AffineOperator", "Box", "Network", "Node", "Polytope", "UnitGroup"]
