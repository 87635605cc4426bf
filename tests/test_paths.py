"""Exact 1-D segments and subspace restriction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maso
from archs import random_inputs, random_model


@pytest.mark.parametrize("seed", range(8))
def test_crossings_equal_dense_sampling(seed):
    """Property: on 10^5 samples of the segment, the code changes exactly between the samples that bracket
    each crossing, and nowhere else (random models of every kind, images included)."""
    module, shape, _ = random_model(seed)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x0, x1 = random_inputs(seed, shape, 2)
    sc = maso.segment_crossings(net, x0, x1)
    ts = np.linspace(0.0, 1.0, 100_001)
    pts = x0[None] + ts.reshape(-1, *([1] * len(shape))) * (x1 - x0)[None]
    codes = net.codes(pts)
    change = np.nonzero(np.any(codes[1:] != codes[:-1], axis=1))[0]  # between ts[i] and ts[i+1]
    # every sampled change is bracketed by an exact crossing
    for i in change:
        assert np.any((sc.t >= ts[i] - 1e-12) & (sc.t <= ts[i + 1] + 1e-12)), (i, ts[i])
    # every exact crossing isolated by more than two sample spacings shows up as a sampled change
    gaps = np.diff(np.concatenate([[-1.0], sc.t, [2.0]]))
    isolated = (gaps[:-1] > 2e-5) & (gaps[1:] > 2e-5)
    sampled = set(change.tolist())
    for t in sc.t[isolated]:
        i = int(np.floor(t * 100_000))
        assert i in sampled or (i - 1) in sampled or (i + 1) in sampled, t
    # codes on the pieces are those of the samples in them
    mids = np.concatenate([[0.0], sc.t, [1.0]])
    for k in range(sc.n_pieces):
        m = 0.5 * (mids[k] + mids[k + 1])
        np.testing.assert_array_equal(sc.codes[k], net.codes((x0 + m * (x1 - x0))))


def test_one_layer_crossings_hit_the_hyperplanes():
    """For one ReLU layer the crossings are t_k = -(w_k.x0 + b_k) / (w_k.(x1 - x0)), inside (0, 1)."""
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(7, 3)), rng.normal(size=7)
    net = maso.Network.sequential((3,), [maso.layers.Dense(W, b), maso.layers.relu()])
    x0, x1 = rng.normal(size=3) * 3, rng.normal(size=3) * 3
    t = -(W @ x0 + b) / (W @ (x1 - x0))
    want = np.sort(t[(t > 0) & (t < 1)])
    sc = maso.segment_crossings(net, x0, x1)
    np.testing.assert_allclose(sc.t, want, rtol=0, atol=1e-12)
    for tk, units in zip(sc.t, sc.units):
        k = int(np.argmin(np.abs(t - tk)))
        assert list(units) == [k]


def test_restrict_and_batches_and_errors():
    net = maso.mlp([4, 6, 6, 2], seed=1)
    rng = np.random.default_rng(1)
    o, U = rng.normal(size=4), rng.normal(size=(2, 4))
    plane = net.restrict(o, U)
    s = rng.normal(size=(5, 2))
    np.testing.assert_allclose(plane(s), net(o + s @ U), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(plane.codes(s), net.codes(o + s @ U))
    np.testing.assert_allclose(plane.affine_at(s[0]).A, net.affine_at(o + s[0] @ U).A @ U.T, atol=1e-12)
    x0, x1 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    batch = maso.segment_crossings(net, x0, x1)
    assert len(batch) == 3
    for k in range(3):
        np.testing.assert_allclose(batch[k].t, maso.segment_crossings(net, x0[k], x1[k]).t)
    assert maso.segment_crossings(net, x0[0], x0[0]).n_pieces == 1
    with pytest.raises(maso.ShapeError, match="segment_crossings needs"):
        maso.segment_crossings(net, np.zeros(4), np.zeros(3))
    with pytest.raises(maso.ShapeError, match="restrict needs"):
        net.restrict(np.zeros(3), np.zeros((1, 4)))
