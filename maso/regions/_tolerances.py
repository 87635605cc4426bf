"""The named tolerances of region enumeration and its certificate, each with what it guards.

Distances are in input units (rows normalised to unit norm); "numerical zero" scales with the domain's coordinate
magnitude (``_coord_scale`` in the engine). The public one is [`DEFAULT_TOL`][maso.regions.DEFAULT_TOL]; the
others are fixed by design (see the docs' page "Exact region enumeration").
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOL = 1e-9
"""Default ``tol`` of [`enumerate_regions`][maso.enumerate_regions] (an input-space distance): parts of a
cell thinner than this are slivers, counted apart."""
#: Below this (times the cell's coordinate scale, ``_coord_scale``), an input-space distance is numerical zero:
#: a hyperplane through a vertex, a vertex on a row. Also the smallest ``tol`` accepted.
_EPS = 1e-12
#: Two pieces of a unit are the same (or a unit is constant on a cell: dead, zero-weight, duplicated) when their
#: slopes differ by at most this fraction of the largest slope entry of the unit's layer on the cell.
_SAME = 1e-12
#: A component of a unit-norm row below this is zero for bound propagation (``_tighten``).
_COEF_ZERO = 1e-12
#: Outer bounding boxes are padded by this times the coordinate scale (they must contain the cell).
_BOX_PAD = 1e-9
#: Rows whose unit normals (and offsets, relative to ``1 + |offset|``) agree to this are the same hyperplane
#: (a unit whose boundary runs along a facet of the cell: ``_label_coincident``).
_COINCIDENT = 1e-10
#: A part of a polytope whose Chebyshev radius exceeds the domain's by more than this fraction cannot be right
#: (facets were lost to rounding): its facets are recomputed with LPs.
_RADIUS_SLACK = 1e-9
#: Redundancy LPs relax the tested row by this (input units): any positive amount keeps the LP bounded.
_RELAX = 1.0
#: The smallest positive normal float64: slopes are compared relative to it (``_UNDERFLOW``), and it floors the
#: rescaling of ``daqp.minrep``'s right-hand side (``irredundant``: a centre on a row must not divide by zero).
_TINY = float(np.finfo(np.float64).tiny)
#: Slopes below ``float64 tiny / _SAME`` are in the range where ``_SAME``-relative comparisons lose precision.
_UNDERFLOW = _TINY / _SAME
#: ``tol`` must exceed this many float64 spacings of the largest domain coordinate (else distances of ``tol``
#: are not resolved where the domain lies).
_TOL_ULPS = 64
