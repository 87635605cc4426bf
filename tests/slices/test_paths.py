"""Exact 1-D segments and subspace restriction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from archs import random_inputs, random_model

import maso


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
        np.testing.assert_array_equal(sc.codes[k], net.codes(x0 + m * (x1 - x0)))


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
    with pytest.raises(maso.errors.ShapeError, match="segment_crossings needs"):
        maso.segment_crossings(net, np.zeros(4), np.zeros(3))
    with pytest.raises(maso.errors.ShapeError, match="restrict needs"):
        net.restrict(np.zeros(3), np.zeros((1, 4)))


@pytest.mark.parametrize("seed", range(8, 16))
def test_walk_equals_lp_on_random_models(seed):
    """The batched walk and the per-segment LP enumeration give the same crossings and flipping units."""
    module, shape, _ = random_model(seed)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x0, x1 = random_inputs(seed, shape, 2)
    walk = maso.segment_crossings(net, x0, x1)
    lp = maso.segment_crossings(net, x0, x1, method="lp")
    np.testing.assert_allclose(walk.t, lp.t, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(walk.codes, lp.codes)
    assert [u.tolist() for u in walk.units] == [u.tolist() for u in lp.units]


def test_crossings_equal_a_million_samples():
    """On 10^6 samples of a segment through a 784-[64]x3 MLP: the sampled code changes are exactly the
    crossings (none closer together than the sample spacing here), and the pieces' codes match."""
    net = maso.mlp([784, 64, 64, 64, 10], seed=3)
    rng = np.random.default_rng(3)
    x0, x1 = rng.random(784), rng.random(784)
    sc = maso.segment_crossings(net, x0, x1)
    n = 1_000_000
    ts = (np.arange(n) + 0.5) / n
    change = []
    for s in range(0, n, 100_000):  # chunks keep memory small
        t = ts[s:s + 100_001]
        c = net.codes(x0 + t[:, None] * (x1 - x0))
        change.extend((s + np.flatnonzero(np.any(c[1:] != c[:-1], axis=1))).tolist())
    change = np.unique(change)
    assert np.min(np.diff(sc.t)) > 2.0 / n
    assert len(change) == len(sc.t)
    assert np.all((ts[change] < sc.t) & (sc.t < ts[change + 1]))


def test_rays_and_scaling_density():
    """Rays: t is the scale s; a bias-free ReLU net is positively homogeneous, so no code changes along s * a
    for s > 0 (zero scaling density), while the same net with biases has crossings."""
    rng = np.random.default_rng(2)
    hidden = [(rng.normal(size=(8, 3)), np.zeros(8)), (rng.normal(size=(8, 8)), np.zeros(8))]
    layers = []
    for W, b in hidden:
        layers += [maso.layers.Dense(W, b), maso.layers.relu()]
    net = maso.Network.sequential((3,), layers)
    a = rng.normal(size=(20, 3))
    for rc in maso.ray_crossings(net, a, 0.01, 50.0):
        assert rc.n_pieces == 1 and rc.density() == 0.0
    biased = maso.mlp([3, 8, 8, 1], seed=2)
    rays = maso.ray_crossings(biased, a, 0.5, 4.0)
    segs = maso.segment_crossings(biased, 0.5 * a, 4.0 * a)
    for r, s in zip(rays, segs):
        np.testing.assert_allclose(r.t, 0.5 + 3.5 * s.t, atol=1e-9)
        assert r.length == pytest.approx(3.5 * np.linalg.norm(r.direction))
        np.testing.assert_allclose(r.points(), biased_points(r), atol=1e-12)
    assert sum(r.n_pieces for r in rays) > len(rays)
    with pytest.raises(maso.errors.ShapeError, match="s_min < s_max"):
        maso.ray_crossings(biased, a[0], 1.0, 1.0)


def biased_points(r):
    return r.origin + r.t[:, None] * r.direction


def test_concurrent_crossings_are_one_event():
    """Duplicated units (and a max-pool window turning on with them) flip at one t, listed together."""
    W = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    net = maso.Network.sequential((2,), [maso.layers.Dense(W, np.array([-0.3, -0.3, 0.2])), maso.layers.relu()])
    sc = maso.segment_crossings(net, np.array([-1.0, 0.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(sc.t, [0.65], atol=1e-12)
    assert sc.units[0].tolist() == [0, 1] and sc.hamming().tolist() == [2]
    with pytest.raises(maso.MasoError, match="method"):
        maso.segment_crossings(net, np.zeros(2), np.ones(2), method="fast")
    with pytest.raises(maso.errors.ShapeError, match="tol"):
        maso.segment_crossings(net, np.zeros(2), np.ones(2), tol=1.0)


def test_merging_new_points_equals_a_stable_sort():
    """The walk inserts points without re-sorting; the result must be the stable (segment, t) sort, ties included."""
    from maso.slices._paths import _insert

    rng = np.random.default_rng(5)
    for _ in range(200):
        n_seg = int(rng.integers(1, 5))
        seg = np.sort(rng.integers(0, n_seg, size=int(rng.integers(2, 12))))
        grid = [0.0, 0.25, 0.5, 1.0]  # repeated values: old points tied with each other (tol=0)
        t = np.concatenate([np.sort(rng.choice(grid, size=(seg == s).sum())) for s in np.unique(seg)])
        end = rng.random(len(t)) < 0.3
        ok = np.flatnonzero(seg[:-1] == seg[1:])
        if not len(ok):
            continue
        kk = np.sort(rng.choice(ok, size=int(rng.integers(1, 6))))
        tau = rng.choice([0.0, 0.5, 1.0, rng.random()], size=len(kk))  # 0 and 1: ties with the interval's ends
        new_t = t[kk] + tau * (t[kk + 1] - t[kk])
        order = np.lexsort((np.concatenate([t, new_t]), np.concatenate([seg, seg[kk]])))
        s2, t2, e2, merge = _insert(seg, t, end, kk, new_t)
        ids = merge.apply(np.arange(len(t)), len(t) + np.arange(len(kk)))
        assert np.array_equal(ids, order)
        assert np.array_equal(t2, np.concatenate([t, new_t])[order])
        assert np.array_equal(s2, np.concatenate([seg, seg[kk]])[order])
        assert not e2[merge.pos_new].any() and np.array_equal(e2[merge.pos_old], end)


def test_device_argument_of_paths():
    """``device="cpu"`` gives the default crossings (the walk's layers and the certificate then run through the
    batched device path); unknown devices, and CUDA where there is none, are ParameterErrors."""
    module, shape, _ = random_model(3, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    a, b = random_inputs(3, shape, 2)
    ref = maso.segment_crossings(net, a, b)
    for device in ("cpu", torch.device("cpu")):
        sc = maso.segment_crossings(net, a, b, device=device)
        np.testing.assert_array_equal(sc.t, ref.t)
        np.testing.assert_array_equal(sc.codes, ref.codes)
    rc, rref = maso.ray_crossings(net, a, 0.0, 3.0, device="cpu"), maso.ray_crossings(net, a, 0.0, 3.0)
    np.testing.assert_array_equal(rc.t, rref.t)
    assert len(ref.t) > 3
    for bad in ("tpu", object()):
        with pytest.raises(maso.errors.ParameterError, match="device"):
            maso.segment_crossings(net, a, b, device=bad)
    if not torch.cuda.is_available():
        with pytest.raises(maso.errors.ParameterError, match="CUDA is not available"):
            maso.ray_crossings(net, a, device="cuda")


def test_walk_in_small_batches_equals_one_batch(monkeypatch):
    """The walk evaluates its points in batches (on a GPU, thousands at a time): batches of a few points give
    the same crossings as one batch."""
    from maso.core import _program

    module, shape, _ = random_model(4, "cnn")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x = random_inputs(4, shape, 6)
    whole = maso.segment_crossings(net, x[:3], x[3:])
    monkeypatch.setattr(_program, "CHUNK_ELEMENTS", 5 * net.program.sample_size)  # 5 points per batch
    small = maso.segment_crossings(net, x[:3], x[3:])
    assert sum(len(s.t) for s in whole) > 6
    for p, q in zip(whole, small):
        np.testing.assert_array_equal(p.t, q.t)
        np.testing.assert_array_equal(p.codes, q.codes)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_crossings_equal_cpu_crossings():  # pragma: no cover - GPU machines
    for seed, kind in ((0, "cnn"), (2, "inception"), (4, "residual")):
        module, shape, _ = random_model(seed, kind)
        net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
        x = random_inputs(seed, shape, 8)
        cpu = maso.segment_crossings(net, x[:4], x[4:])
        gpu = maso.segment_crossings(net, x[:4], x[4:], device="cuda")
        for p, q in zip(cpu, gpu):
            assert len(p.t) == len(q.t), kind
            np.testing.assert_array_equal(p.codes, q.codes)
            np.testing.assert_allclose(p.t, q.t, rtol=0, atol=1e-9)


def test_device_resident_walk_equals_the_numpy_walk(monkeypatch):
    """On a GPU the walk's values stay on the device as tensors; on the CPU they are NumPy arrays. The tensor
    path, run on the CPU, gives bit-identical crossings and codes (the same operations in the same order)."""
    from maso.slices import _anchored

    for seed, kind in ((1, "cnn"), (2, "inception"), (3, "residual")):
        module, shape, _ = random_model(seed, kind)
        net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
        x = random_inputs(seed, shape, 6)
        host = maso.segment_crossings(net, x[:3], x[3:])
        monkeypatch.setattr(_anchored, "_HOST_WALK", False)
        device = maso.segment_crossings(net, x[:3], x[3:])
        monkeypatch.setattr(_anchored, "_HOST_WALK", True)
        assert sum(len(p.t) for p in host) > 3, kind
        for p, q in zip(host, device):
            np.testing.assert_array_equal(p.t, q.t)
            np.testing.assert_array_equal(p.codes, q.codes)


@pytest.mark.parametrize("pool", [(3, 1, 1), (2, 2, 0), (3, 2, 1)])
def test_pool_tie_codes_equal_the_score_stack(pool):
    """The max-pool certificate and interval codes compare window positions one at a time; they must give what
    the full (N, U, R) score stack gives: the best score, the first piece within the slack of it (ties on
    repeated values and padding included) and the score of a given piece."""
    from maso.slices._anchored import piece_scores, pool_first_within, pool_scores_at

    k, s, p = pool
    module = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.MaxPool2d(k, s, p))
    net = maso.from_torch(module, torch.zeros(1, 3, 6, 6, dtype=torch.float64))
    node = next(g.node for g in net.units if g.n_pieces > 2)
    rng = np.random.default_rng(k * 10 + s)
    # values from a small set: many exact ties, and zeros as after a ReLU
    x = torch.from_numpy(rng.choice([0.0, 0.0, 0.5, 1.0, 1.0 + 1e-13, 2.0], size=(7, 3, 6, 6)))
    Q = piece_scores(net, node, x)  # (7, U, R), -inf on padding
    for slack in (0.0, 1e-12, torch.from_numpy(rng.uniform(0, 0.6, size=7))):
        best, first = pool_first_within(net, node, x, slack)
        top = Q.amax(dim=2)
        sl = slack if not isinstance(slack, torch.Tensor) else slack[:, None, None]
        want = torch.argmax((Q >= top[:, :, None] - sl).to(torch.uint8), dim=2)
        assert torch.equal(best, top) and torch.equal(first, want)
    code = torch.from_numpy(rng.integers(0, Q.shape[2], size=Q.shape[:2]))
    np.testing.assert_array_equal(pool_scores_at(net, node, x, code).numpy(),
                                  Q.gather(2, code[:, :, None])[:, :, 0].numpy())


def test_certificate_verdicts_on_the_device_equal_the_host_ones(monkeypatch):
    """The certificate's tests run as NumPy bit sets on the CPU and as tensors where the values live (a GPU). Both
    must give the same verdicts, on the walk's own pieces (all certified) and on pieces with codes flipped in
    ReLU and max-pool units (caught as bad), run here on the CPU through the tensor path."""
    from maso.slices import _anchored, _paths

    module, shape, _ = random_model(2, "inception")
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x = random_inputs(2, shape, 4)
    seen = {}

    def capture(net_, anch, path, scale, tol, origin, direction):
        seen.update(anch=anch, path=path, scale=scale, tol=tol)
        return {}

    monkeypatch.setattr(_paths, "_certify", capture)
    maso.segment_crossings(net, x[:2], x[2:])
    path = seen["path"]
    assert len(path.pieces) > 10
    rng = np.random.default_rng(0)
    corrupt = path.pieces.copy()
    rows = rng.choice(len(corrupt), size=len(corrupt) // 3, replace=False)
    relu = next(g for g in net.units if g.n_pieces == 2)
    pool = next(g for g in net.units if g.n_pieces > 2)
    corrupt[rows[::2], relu.offset + rng.integers(relu.size)] ^= 1
    col = pool.offset + rng.integers(pool.size)
    corrupt[rows[1::2], col] = (corrupt[rows[1::2], col] + 1) % pool.n_pieces
    for pieces in (path.pieces, corrupt):
        p = _paths._Pieces(path.n, path.lo, path.hi, path.ts, pieces, path.change_at)
        verdicts = []
        for host in (True, False):
            monkeypatch.setattr(_anchored, "_HOST_WALK", host)
            verdicts.append(_paths._check(net, seen["anch"], p, seen["scale"], seen["tol"]))
        monkeypatch.setattr(_anchored, "_HOST_WALK", True)
        np.testing.assert_array_equal(verdicts[0][0], verdicts[1][0])
        np.testing.assert_array_equal(verdicts[0][1], verdicts[1][1])
        if pieces is path.pieces:
            assert not verdicts[0][0].any()
        else:
            assert verdicts[0][0][rows[::2]].all()  # a flipped ReLU is always caught (its gap is off zero)
            assert verdicts[0][0].sum() >= len(rows) // 2
