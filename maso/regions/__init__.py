r"""Exact enumeration of the linear regions of a network inside a bounded domain.

Algorithm (layer-wise subdivision). The spline layers are taken in topological order. A *cell* is a convex
polytope on which the codes of the layers handled so far are fixed, so the next layer's units have piece scores
that are affine in the input. Each unit splits each cell into the parts where each of its pieces wins. After the
last layer every cell is one region, with its affine map from a frozen pass through the network.

Two exact ways to cut cells and find facets (``method``): ``"vertices"`` carries each cell's vertices and their
row incidences (double description: exact decisions from vertex extents, edges by the combinatorial adjacency
test, facets from incidences, one LP per region for its Chebyshev centre); ``"lp"`` decides cuts from witness
points, outer bounding boxes and LPs, and reduces rows to facets with ``daqp.minrep`` plus LPs.

Exactness policy (see the docs' page "Exact region enumeration"):

* distances are in input units, rows are normalised to unit norm;
* a hyperplane cuts a cell only if both sides reach more than ``tol`` past it; parts thinner than ``tol`` are
  never made into regions and never dropped silently: they are listed as [`Sliver`][maso.regions.Sliver] and counted
  apart;
* identical pieces (duplicated units, a max-pool window of equal inputs) are merged, lowest index first; pieces
  whose difference is constant on a cell (zero-weight and dead units) decide their unit without a split;
* a facet on which several units' hyperplanes coincide lists all of them.
"""

from maso.regions._certificate import VerificationReport
from maso.regions._driver import enumerate_regions, iter_regions
from maso.regions._records import Region, RegionSet, Sliver
from maso.regions._tolerances import DEFAULT_TOL

__all__ = [
           "DEFAULT_TOL",
           "Region",
           "RegionSet",
           "Sliver",
           "VerificationReport",
           "enumerate_regions",
           "iter_regions",
]
