"""The certificate of an enumeration (:meth:`RegionSet.verify`): codes, maps, facets and coverage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from maso.network import Network
from maso.regions._geometry import _bounding_box
from maso.regions._records import Region, VerificationReport

if TYPE_CHECKING:
    from maso.regions._records import RegionSet


def verify(rs: "RegionSet", *, n_points: int = 1000, atol: float = 1e-8, rng: Any = None) -> VerificationReport:
    """See :meth:`RegionSet.verify`."""
    self = rs
    net = self.network
    rng = np.random.default_rng(rng)
    regions = self._regions
    n = len(regions)
    if n == 0:
        return VerificationReport(0, 0, 0.0, 0, 0, n_points, 0, False)
    centers = np.stack([r.interior_point for r in regions])
    shape = net.input_shape
    codes = net.codes(centers.reshape(n, *shape))
    mism = int(np.sum(np.any(codes != self.codes, axis=1)))
    out = net(centers.reshape(n, *shape)).reshape(n, -1)
    pred = np.stack([r.affine.A @ c + r.affine.b for r, c in zip(regions, centers)])
    err = float(np.max(np.abs(out - pred)))
    facet_err = _check_facets(net, regions)
    # Coverage: random points of the domain's bounding box, kept if inside the domain.
    lo, hi = _bounding_box(self.domain)
    pts = rng.uniform(lo, hi, size=(4 * n_points, len(lo)))
    pts = pts[self.domain.contains(pts)][:n_points]
    counts = np.zeros(len(pts), dtype=np.int64)
    for r in regions:
        counts += r.polytope.contains(pts, atol=atol)
    # Maps at the random points, in the region their code names.
    pcodes = net.codes(pts.reshape(len(pts), *shape))
    pout = net(pts.reshape(len(pts), *shape)).reshape(len(pts), -1)
    for k, c in enumerate(pcodes):
        i = self._index.get(np.asarray(c, dtype=regions[0].code.dtype).tobytes())
        if i is None:
            counts[k] = min(counts[k], 0)  # its code names no region: uncovered
            continue
        f = regions[i].affine
        err = max(err, float(np.max(np.abs(f.A @ pts[k] + f.b - pout[k]))))
    unc = int(np.sum(counts == 0))
    multi = int(np.sum(counts > 1))
    ok = mism == 0 and err <= atol * 100 and facet_err == 0 and unc == 0 and multi == 0
    return VerificationReport(n, mism, err, facet_err, len(pts), unc, multi, ok)


def _check_facets(net: Network, regions: Sequence[Region]) -> int:
    """Count facets whose row is not (a positive multiple of) the labelled unit's constraint at the region."""
    bad = 0
    for r in regions:
        P = net.region_at(r.interior_point.reshape(net.input_shape))
        A = P.A
        norms = np.linalg.norm(A, axis=1)
        for i, (u, piece) in enumerate(r.polytope.units):
            if u < 0:
                continue
            rows = np.nonzero((P.units[:, 0] == u) & (P.units[:, 1] == piece))[0]
            if len(rows) != 1 or norms[rows[0]] == 0:
                bad += 1
                continue
            j = rows[0]
            if not (np.allclose(A[j] / norms[j], r.polytope.A[i], atol=1e-7)
                    and abs(P.b[j] / norms[j] - r.polytope.b[i]) <= 1e-7 * (1 + abs(P.b[j] / norms[j]))):
                bad += 1
    return bad
