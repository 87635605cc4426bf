"""maso: the spline view of deep networks.

A network built from affine layers and piecewise-linear units is a composition of max-affine spline
operators (MASOs): it cuts its input space into convex polytopes and applies one affine map on each.
maso gives, for any input, its spline code, the exact affine map of its region and the region itself.

Examples
--------
>>> import numpy as np, maso
>>> net = maso.mlp([2, 8, 8, 1], seed=0)
>>> x = np.array([0.5, -0.25])
>>> code = net.codes(x)           # one entry per unit: 1 = active
>>> f = net.affine_at(x)          # net(y) == f.A @ y + f.b on x's region
>>> region = net.region_at(x)     # {y : region.A @ y <= region.b}
>>> bool(np.allclose(f(x), net(x))), bool(region.contains(x))
(True, True)
"""

from maso import layers as layers
from maso import nn as nn
from maso._from_torch import SUPPORTED as SUPPORTED
from maso._from_torch import from_torch as from_torch
from maso._from_torch import mlp as mlp
from maso.affine import Affine as Affine
from maso.affine import AffineOperator as AffineOperator
from maso.errors import (
    ConversionError as ConversionError,
    InvalidWeightsError as InvalidWeightsError,
    MasoError as MasoError,
    NumericalWarning as NumericalWarning,
    ShapeError as ShapeError,
    SubnetworkError as SubnetworkError,
    TrainingModeError as TrainingModeError,
    UnsupportedLayerError as UnsupportedLayerError,
)
from maso.layers import MASOLayer as MASOLayer
from maso.network import Network as Network
from maso.network import Node as Node
from maso.network import UnitGroup as UnitGroup
from maso.polytope import Polytope as Polytope

__version__ = "0.1.0"

__all__ = [
    "Affine",
    "AffineOperator",
    "ConversionError",
    "InvalidWeightsError",
    "MASOLayer",
    "MasoError",
    "Network",
    "Node",
    "NumericalWarning",
    "Polytope",
    "SUPPORTED",
    "ShapeError",
    "SubnetworkError",
    "TrainingModeError",
    "UnitGroup",
    "UnsupportedLayerError",
    "from_torch",
    "layers",
    "mlp",
    "nn",
]
