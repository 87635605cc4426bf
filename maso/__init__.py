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
    core as core,
    errors as errors,
    layers as layers,
    measures as measures,
    nn as nn,
    plotting as plotting,
    regions as regions,
    slices as slices,
    soft as soft,
    torch as torch,
)
from maso._version import __version__ as __version__
from maso.core import Box as Box, Network as Network, Polytope as Polytope
from maso.errors import MasoError as MasoError
from maso.regions import enumerate_regions as enumerate_regions, iter_regions as iter_regions
from maso.slices import (
    Plane as Plane,
    ray_crossings as ray_crossings,
    segment_crossings as segment_crossings,
    slice_regions as slice_regions,
)
from maso.torch import from_torch as from_torch, mlp as mlp

# Names that maso 0.2 exported at the top level and that now live in the module of their concept (records with
# the function that returns them, errors in maso.errors): an old spelling gets an error that names the new one.
_MOVED = {
    **{name: "maso.core" for name in ("Affine", "AffineOperator", "Node", "UnitGroup")},
    **{name: "maso.regions" for name in ("DEFAULT_TOL", "Region", "RegionSet", "Sliver", "VerificationReport")},
    **{name: "maso.slices" for name in ("SegmentCrossings", "SliceRegion", "SliceRegions")},
    "MASOLayer": "maso.layers",
    "SUPPORTED": "maso.torch",
    **{name: "maso.errors" for name in (
        "CheckpointError", "CheckpointWarning", "ConversionError", "DomainError", "InvalidWeightsError",
        "MemoryBudgetWarning", "NumericalWarning", "ParameterError", "ParameterShapeError", "ResourceError", "ShapeError", "SolverError",
        "SubnetworkError", "TrainingModeError", "UnsupportedLayerError", "WeightsFileError", "WorkerError")},
}


def __getattr__(name: str):
    # maso.exact pulls in sympy (~0.4 s); import it on first use only.
    if name == "exact":
        import importlib

        return importlib.import_module("maso.exact")
    if name in _MOVED:
        raise AttributeError(f"maso.{name} is {_MOVED[name]}.{name} (maso 0.3 keeps the top level to what users "
                             f"call; records and errors live in the module of their concept).")
    raise AttributeError(f"module 'maso' has no attribute {name!r}")


# maso.torch and maso.nn are left out of __all__: "from maso import *" must not shadow torch or torch.nn.
__all__ = [
    "Box",
    "MasoError",
    "Network",
    "Plane",
    "Polytope",
    "bounds",
    "core",
    "enumerate_regions",
    "errors",
    "exact",
    "from_torch",
    "iter_regions",
    "layers",
    "measures",
    "mlp",
    "plotting",
    "ray_crossings",
    "regions",
    "segment_crossings",
    "slice_regions",
    "slices",
    "soft",
]
