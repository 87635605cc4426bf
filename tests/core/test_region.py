"""Regions: x lies in region_at(x); its interior shares code and map; crossing a facet flips its unit."""

from __future__ import annotations

import numpy as np
import torch
from archs import random_inputs, random_model
from hypothesis import given, settings, strategies as st

import maso

SEEDS = st.integers(0, 2**20)


def _ray_hits(P: maso.Polytope, x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Distance along d from x to each constraint hyperplane ahead (inf for rows the ray never meets)."""
    ad = P.A @ d
    slack = P.slack(x)
    t = np.full(P.n_constraints, np.inf)
    ahead = ad > 1e-12
    t[ahead] = slack[ahead] / ad[ahead]
    return t


@settings(max_examples=100)
@given(seed=SEEDS)
def test_region_contains_x_and_interior_is_constant(seed):
    """Property: points sampled inside region_at(x), up to its boundary, have x's code and x's affine map."""
    module, shape, _ = random_model(seed)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x = random_inputs(seed, shape, 1)[0].reshape(-1)
    P = net.region_at(x.reshape(shape))
    assert P.dim == net.input_dim
    assert P.contains(x)
    assert P.units is not None and P.units.shape == (P.n_constraints, 2)
    assert P.units[:, 0].max(initial=-1) < net.n_units
    code = net.codes(x.reshape(shape))
    f = net.affine_at(x.reshape(shape))
    rng = np.random.default_rng(seed)
    pts = []
    for _ in range(40):
        d = rng.normal(size=x.size)
        t = _ray_hits(P, x, d).min()
        t = min(t, 10.0)
        pts.append(x + rng.uniform(0.0, 0.999) * t * d)
    pts = np.array(pts)
    assert np.all(P.contains(pts))
    batch = pts.reshape(-1, *shape)
    np.testing.assert_array_equal(net.codes(batch), np.repeat(code[None], len(pts), axis=0))
    np.testing.assert_allclose(pts @ f.A.T + f.b, net(batch).reshape(len(pts), -1), rtol=1e-9, atol=1e-9)


@settings(max_examples=100)
@given(seed=SEEDS)
def test_crossing_a_facet_flips_its_unit(seed):
    """Property: just past the first hyperplane a ray meets, the code differs exactly in that row's unit,
    which moves to the row's competing piece."""
    module, shape, _ = random_model(seed)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x = random_inputs(seed, shape, 1)[0].reshape(-1)
    P = net.region_at(x.reshape(shape))
    code = net.codes(x.reshape(shape))
    rng = np.random.default_rng(seed + 1)
    checked = 0
    for _ in range(30):
        d = rng.normal(size=x.size)
        d /= np.linalg.norm(d)
        t = _ray_hits(P, x, d)
        order = np.argsort(t)
        t1 = t[order[0]]
        if not np.isfinite(t1):
            continue
        tied = np.abs(t - t1) <= 1e-9 * max(1.0, t1)
        t_next = np.min(t[~tied], initial=np.inf)
        if t_next - t1 < 1e-6:
            continue  # another boundary right behind: not a clean single crossing
        step = min(1e-7 * max(1.0, t1), (t_next - t1) / 2)
        y = x + (t1 + step) * d
        after = net.codes(y.reshape(shape))
        changed = set(np.nonzero(after != code)[0])
        expected = {int(u) for u, _ in P.units[tied]}
        assert changed & expected, (changed, expected)
        for u, r in P.units[tied]:
            if u in changed and sum(P.units[tied][:, 0] == u) == 1:
                assert after[u] == r
        # Any other change is a unit tied at x on a whole face (a max-pool window of ReLU outputs that are
        # all 0): its new piece had exactly the old piece's value at x.
        slack = P.slack(x)
        for u in changed - expected:
            rows = (P.units[:, 0] == u) & (P.units[:, 1] == after[u])
            assert rows.any() and np.all(slack[rows] == 0) and np.all(P.A[rows] == 0), u
        checked += 1
    assert checked > 0 or P.n_constraints == 0


def test_region_rows_are_the_layer_hyperplanes_in_layer_one():
    """For one ReLU layer, the rows are +-(W_k, b_k) with the sign of the code: the textbook arrangement."""
    net = maso.mlp([3, 5, 1], seed=4)
    W = net.nodes[1].layer.weight
    b = net.nodes[1].layer.bias
    x = np.array([0.2, -0.4, 0.9])
    P = net.region_at(x)
    q = net.codes(x)
    sign = np.where(q == 1, -1.0, 1.0)
    np.testing.assert_allclose(P.A, sign[:, None] * W, atol=1e-15)
    np.testing.assert_allclose(P.b, -sign * b, atol=1e-15)


def test_batched_regions():
    net = maso.mlp([2, 6, 6, 1], seed=1)
    xs = np.random.default_rng(0).normal(size=(5, 2))
    regions = net.region_at(xs)
    assert len(regions) == 5
    assert all(P.contains(x) for P, x in zip(regions, xs))
