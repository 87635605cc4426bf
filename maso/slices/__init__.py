"""Exact low-dimensional views of high-dimensional networks: 2-D slices (planes) and 1-D paths (segments, rays).

[`slice_regions`][maso.slice_regions] cuts the network's regions with a [`Plane`][maso.Plane] and
returns them as polygons ([`SliceRegions`][maso.slices.SliceRegions]);
[`segment_crossings`][maso.segment_crossings] and [`ray_crossings`][maso.ray_crossings] give the
exact points where a path crosses region boundaries ([`SegmentCrossings`][maso.slices.SegmentCrossings]).

Examples
--------
>>> import numpy as np, maso
>>> net = maso.mlp([2, 8, 1], seed=0)
>>> sl = maso.slice_regions(net, maso.Plane.through_points([0, 0], [1, 0], [0, 1]))
>>> isinstance(sl, maso.slices.SliceRegions), len(sl) > 1
(True, True)
"""

from maso.slices._paths import SegmentCrossings, ray_crossings, segment_crossings
from maso.slices._slice import (
    DEFAULT_SLICE_TOL,
    Plane,
    SliceCells,
    SliceRegion,
    SliceRegions,
    slice_regions,
)

__all__ = [
    "DEFAULT_SLICE_TOL",
    "Plane",
    "SegmentCrossings",
    "SliceCells",
    "SliceRegion",
    "SliceRegions",
    "ray_crossings",
    "segment_crossings",
    "slice_regions",
]
