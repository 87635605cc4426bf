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

from maso import (
    bounds as bounds,
    layers as layers,
    measures as measures,
    nn as nn,
    plotting as plotting,
    soft as soft,
)
from maso._from_torch import SUPPORTED as SUPPORTED, from_torch as from_torch, mlp as mlp
from maso.affine import Affine as Affine, AffineOperator as AffineOperator
from maso.domain import Box as Box
from maso.errors import (
    CheckpointError as CheckpointError,
    CheckpointWarning as CheckpointWarning,
    ConversionError as ConversionError,
    DomainError as DomainError,
    InvalidWeightsError as InvalidWeightsError,
    MasoError as MasoError,
    NumericalWarning as NumericalWarning,
    ParameterError as ParameterError,
    ParameterShapeError as ParameterShapeError,
    ResourceError as ResourceError,
    ShapeError as ShapeError,
    SolverError as SolverError,
    SubnetworkError as SubnetworkError,
    TrainingModeError as TrainingModeError,
    UnsupportedLayerError as UnsupportedLayerError,
    WeightsFileError as WeightsFileError,
    WorkerError as WorkerError,
)
from maso.layers import MASOLayer as MASOLayer
from maso.network import Network as Network, Node as Node, UnitGroup as UnitGroup
from maso.paths import (
    SegmentCrossings as SegmentCrossings,
    ray_crossings as ray_crossings,
    segment_crossings as segment_crossings,
)
from maso.polytope import Polytope as Polytope
from maso.regions import (
    DEFAULT_TOL as DEFAULT_TOL,
    Region as Region,
    RegionSet as RegionSet,
    Sliver as Sliver,
    VerificationReport as VerificationReport,
    enumerate_regions as enumerate_regions,
    iter_regions as iter_regions,
)
from maso.slices import (
    Plane as Plane,
    SliceRegion as SliceRegion,
    SliceRegions as SliceRegions,
    slice_regions as slice_regions,
)

__version__ = "0.2.0"


def __getattr__(name: str):
    # maso.exact pulls in sympy (~0.4 s); import it on first use only.
    if name == "exact":
        import importlib

        return importlib.import_module("maso.exact")
    raise AttributeError(f"module 'maso' has no attribute {name!r}")

__all__ = [
    "DEFAULT_TOL",
    "SUPPORTED",
    "Affine",
    "AffineOperator",
    "Box",
    "CheckpointError",
    "CheckpointWarning",
    "ConversionError",
    "DomainError",
    "InvalidWeightsError",
    "MASOLayer",
    "MasoError",
    "Network",
    "Node",
    "NumericalWarning",
    "ParameterError",
    "ParameterShapeError",
    "Plane",
    "Polytope",
    "Region",
    "RegionSet",
    "ResourceError",
    "SegmentCrossings",
    "ShapeError",
    "SliceRegion",
    "SliceRegions",
    "Sliver",
    "SolverError",
    "SubnetworkError",
    "TrainingModeError",
    "UnitGroup",
    "UnsupportedLayerError",
    "VerificationReport",
    "WeightsFileError",
    "WorkerError",
    "bounds",
    "enumerate_regions",
    "exact",
    "from_torch",
    "iter_regions",
    "layers",
    "measures",
    "mlp",
    "nn",
    "plotting",
    "ray_crossings",
    "segment_crossings",
    "slice_regions",
    "soft",
]
