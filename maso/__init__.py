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

from maso import bounds as bounds
from maso import layers as layers
from maso import measures as measures
from maso import nn as nn
from maso import plotting as plotting
from maso import soft as soft
from maso._from_torch import SUPPORTED as SUPPORTED
from maso._from_torch import from_torch as from_torch
from maso._from_torch import mlp as mlp
from maso.affine import Affine as Affine
from maso.affine import AffineOperator as AffineOperator
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
from maso.domain import Box as Box
from maso.layers import MASOLayer as MASOLayer
from maso.regions import DEFAULT_TOL as DEFAULT_TOL
from maso.regions import Region as Region
from maso.regions import RegionSet as RegionSet
from maso.regions import Sliver as Sliver
from maso.regions import VerificationReport as VerificationReport
from maso.regions import enumerate_regions as enumerate_regions
from maso.regions import iter_regions as iter_regions
from maso.network import Network as Network
from maso.network import Node as Node
from maso.network import UnitGroup as UnitGroup
from maso.paths import SegmentCrossings as SegmentCrossings
from maso.paths import ray_crossings as ray_crossings
from maso.paths import segment_crossings as segment_crossings
from maso.slices import Plane as Plane
from maso.slices import SliceRegion as SliceRegion
from maso.slices import SliceRegions as SliceRegions
from maso.slices import slice_regions as slice_regions
from maso.polytope import Polytope as Polytope

__version__ = "0.2.0"


def __getattr__(name: str):
    # maso.exact pulls in sympy (~0.4 s); import it on first use only.
    if name == "exact":
        import importlib

        return importlib.import_module("maso.exact")
    raise AttributeError(f"module 'maso' has no attribute {name!r}")

__all__ = [
    "Affine",
    "Box",
    "CheckpointError",
    "CheckpointWarning",
    "DEFAULT_TOL",
    "DomainError",
    "Region",
    "RegionSet",
    "SegmentCrossings",
    "Sliver",
    "SolverError",
    "VerificationReport",
    "enumerate_regions",
    "iter_regions",
    "segment_crossings",
    "ray_crossings",
    "Plane",
    "SliceRegion",
    "SliceRegions",
    "slice_regions",
    "AffineOperator",
    "ConversionError",
    "InvalidWeightsError",
    "MASOLayer",
    "MasoError",
    "Network",
    "Node",
    "NumericalWarning",
    "ParameterError",
    "ParameterShapeError",
    "ResourceError",
    "Polytope",
    "SUPPORTED",
    "ShapeError",
    "SubnetworkError",
    "TrainingModeError",
    "UnitGroup",
    "UnsupportedLayerError",
    "WeightsFileError",
    "WorkerError",
    "from_torch",
    "bounds",
    "exact",
    "layers",
    "measures",
    "mlp",
    "nn",
    "plotting",
    "soft",
]
