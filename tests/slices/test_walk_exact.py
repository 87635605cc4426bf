"""The 1-D walk is exact whatever the machine's rounding.

Checked against three independent references: an exact rational oracle (tests/exact_oracle.py: each piece's
code holds on exactly the interval the walk gives it, and the intervals tile the segment with no gap), the LP
method (a 1-D enumeration per segment) and dense float sampling. The family that used to fail is the Inception
pattern: a max-pool straight on the input with overlapping 3x3 windows (one pixel overtaking another flips many
units at one t), concatenation, a skip connection, ReLU and a second max-pool.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from archs import pool_block, random_model
from exact_oracle import ExactLine, check_path

import maso
from maso.slices import _paths as paths


def _net(module: torch.nn.Module, shape: tuple[int, ...]) -> maso.Network:
    return maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))


def _pool_case(seed: int) -> tuple[maso.Network, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    module, shape = pool_block(rng)
    x0, x1 = rng.normal(size=(2, 2, *shape))
    return _net(module, shape), x0, x1


def _same(walk: maso.slices.SegmentCrossings, lp: maso.slices.SegmentCrossings) -> None:
    np.testing.assert_allclose(walk.t, lp.t, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(walk.codes, lp.codes)
    assert [u.tolist() for u in walk.units] == [u.tolist() for u in lp.units]


def _sampled(net: maso.Network, x0: np.ndarray, x1: np.ndarray, sc: maso.slices.SegmentCrossings, n: int = 20_001) -> None:
    """Dense float sampling: each sample's code is its piece's code, except within 1e-9 of a crossing."""
    ts = np.linspace(0.0, 1.0, n)
    codes = net.codes(x0[None] + ts.reshape(-1, *([1] * x0.ndim)) * (x1 - x0)[None])
    near = np.zeros(n, dtype=bool)
    for t in sc.t:
        near |= np.abs(ts - t) <= 1e-9
    piece = np.searchsorted(sc.t, ts)
    bad = np.flatnonzero(~near & np.any(codes != sc.codes[piece], axis=1))
    assert len(bad) == 0, f"{len(bad)} samples disagree, first at t = {ts[bad[0]]}"


# ------------------------------------------------------------------------------------------ the family
@pytest.mark.parametrize("seed", range(12))
def test_pool_blocks_walk_equals_exact_lp_and_sampling(seed):
    """The Inception-like family (about one segment in four was wrong before the fix): two segments per
    block, each exact by the rational oracle, equal to the LP method and to dense sampling."""
    net, X0, X1 = _pool_case(seed)
    walks = maso.segment_crossings(net, X0, X1)
    for k, (x0, x1, walk) in enumerate(zip(X0, X1, walks)):
        assert check_path(ExactLine(net, x0, x1 - x0), walk.t, walk.codes, 0.0, 1.0) == []
        assert len(walk.uncertified) == 0
        if k == 0:
            _same(walk, maso.segment_crossings(net, x0, x1, method="lp"))
            _sampled(net, x0, x1, walk)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(10))
def test_pool_blocks_many_seeds(block):
    """200 blocks, 2 segments each, by the exact oracle (slow: about a minute per block of 20 seeds)."""
    for seed in range(100 + 20 * block, 120 + 20 * block):
        net, X0, X1 = _pool_case(seed)
        for x0, x1, walk in zip(X0, X1, maso.segment_crossings(net, X0, X1)):
            assert check_path(ExactLine(net, x0, x1 - x0), walk.t, walk.codes, 0.0, 1.0) == [], seed


@pytest.mark.parametrize("seed", range(24))
def test_random_models_walk_is_exact(seed):
    """Every architecture of tests/archs.py (MLPs with maxout and batch norm, CNNs with max-pool, residual and
    Inception-like graphs), by the exact oracle."""
    module, shape, kind = random_model(seed)
    if kind == "cnn" and any(getattr(m, "padding_mode", "zeros") != "zeros" for m in module.modules()):
        pytest.skip("reflect/circular padding folds a pixel into a window twice: the oracle's probe is not exact")
    net = _net(module, shape)
    rng = np.random.default_rng(seed + 7)
    x0, x1 = rng.normal(size=(2, *shape))
    walk = maso.segment_crossings(net, x0, x1)
    assert check_path(ExactLine(net, x0, x1 - x0), walk.t, walk.codes, 0.0, 1.0) == []


def test_the_oracle_catches_wrong_answers():
    """The oracle is not vacuous: a flipped code bit, a dropped crossing and a moved crossing all fail it."""
    net, X0, X1 = _pool_case(0)
    x0, x1 = X0[0], X1[0]
    walk = maso.segment_crossings(net, x0, x1)
    line = ExactLine(net, x0, x1 - x0)
    assert len(walk.t) > 5 and check_path(line, walk.t, walk.codes, 0.0, 1.0) == []
    flipped = walk.codes.copy()
    col = walk.units[2][0]
    flipped[3, col] = 1 - flipped[3, col] if net.units[0].n_pieces == 2 else (flipped[3, col] + 1) % 2
    assert check_path(line, walk.t, flipped, 0.0, 1.0)
    assert check_path(line, np.delete(walk.t, 2), np.delete(walk.codes, 3, axis=0), 0.0, 1.0)
    moved = walk.t.copy()
    moved[1] += 1e-6
    assert check_path(line, moved, walk.codes, 0.0, 1.0)


# --------------------------------------------------------------------------------- the certificate
def test_certificate_mends_a_broken_walk(monkeypatch):
    """With the bug that made the walk machine-dependent put back (a new point tied with an interval's right end
    copying the left end's code row), the certificate finds the wrong pieces and the LPs mend them: the answer is
    still exact."""
    flagged = []
    check = paths._check

    def spy(*args, **kwargs):
        bad, tie = check(*args, **kwargs)
        flagged.append(int(bad.sum()))
        return bad, tie

    class OldMerge(paths._Merge):
        def __init__(self, pos_old, pos_new, before):
            super().__init__(pos_old, pos_new, before)
            self.before = np.searchsorted(pos_old, pos_new) - 1  # the point before the new point's interval...
            self.before = np.maximum(self.before, 0)

    monkeypatch.setattr(paths, "_check", spy)
    monkeypatch.setattr(paths, "_Merge", OldMerge)
    module, shape, _ = random_model(10)  # the test that failed on some CPUs
    net = _net(module, shape)
    rng = np.random.default_rng(10 + 12345)
    x0, x1 = rng.normal(size=(2, *shape))
    walk = maso.segment_crossings(net, x0, x1)
    assert check_path(ExactLine(net, x0, x1 - x0), walk.t, walk.codes, 0.0, 1.0) == []
    _same(walk, maso.segment_crossings(net, x0, x1, method="lp"))


def test_certificate_flags_a_wrong_piece():
    """`_check` flags exactly the piece whose code was corrupted, and nothing in a correct answer."""
    net, X0, X1 = _pool_case(3)
    x0, x1 = X0[0], X1[0]
    walk = maso.segment_crossings(net, x0, x1)
    anch = paths.Anchored(net, x0.reshape(1, -1), (x1 - x0).reshape(1, 1, -1))
    scale = np.full((1, len(net.units)), 1.0)

    def pieces(codes):
        return paths._Pieces(1, np.zeros(1), np.ones(1), np.asarray(walk.t), codes, np.array([0, len(walk.t)]))

    bad, _ = paths._check(net, anch, pieces(np.array(walk.codes)), scale, 1e-12)
    assert not bad.any()
    codes = np.array(walk.codes)
    j = len(codes) // 2
    g = net.units[1]  # a ReLU layer
    unit = g.offset + int(np.argmax(np.any(codes[:, g.columns] != codes[j, g.columns], axis=0)))
    codes[j, unit] = 1 - codes[j, unit]
    bad, _ = paths._check(net, anch, pieces(codes), scale, 1e-12)
    assert bad.tolist() == [i == j for i in range(len(codes))]


# ------------------------------------------------------------------------------------ degenerate paths
def test_ties_on_a_whole_piece_go_to_the_lowest_piece():
    """Two pixels equal all along the segment (an exact tie in every window holding both) and overlapping
    windows sharing their maximum: the codes are those of Network.codes (lowest piece on ties) everywhere."""
    for seed in range(6):
        net, X0, X1 = _pool_case(seed)
        x0, x1 = X0[0].copy(), X1[0].copy()
        x0[0, 1, 1], x1[0, 1, 1] = x0[0, 1, 2], x1[0, 1, 2]  # pixels (1, 1) and (1, 2) tied for all t
        walk = maso.segment_crossings(net, x0, x1)
        mids = np.concatenate([[0.0], walk.t, [1.0]])
        mids = 0.5 * (mids[1:] + mids[:-1])
        np.testing.assert_array_equal(walk.codes, net.codes(x0[None] + mids[:, None, None, None] * (x1 - x0)[None]))
        assert check_path(ExactLine(net, x0, x1 - x0), walk.t, walk.codes, 0.0, 1.0) == []


def test_crossings_at_the_ends_of_a_segment():
    """Hyperplanes and a max-pool tie exactly at t = 0 and t = 1 are not crossings (the pieces are the open
    interval's); the first and last codes are those just inside."""
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    b = np.array([-1.0, 0.0, -0.5, 0.25])
    pool = maso.layers.MaxPool(1, kernel_size=2, stride=2)
    net = maso.Network.sequential((2,), [maso.layers.Dense(W, b), maso.layers.relu(),
                                         maso.layers.Reshape((1, 4)), pool])
    x0, x1 = np.array([1.0, 0.0]), np.array([-1.0, 1.0])  # unit 0 is zero and units 0, 1 tie at t = 0
    walk = maso.segment_crossings(net, x0, x1)
    lp = maso.segment_crossings(net, x0, x1, method="lp")
    _same(walk, lp)
    assert np.all((walk.t > 0) & (walk.t < 1))
    eps = 1e-7
    np.testing.assert_array_equal(walk.codes[0], net.codes(x0 + eps * (x1 - x0)))
    np.testing.assert_array_equal(walk.codes[-1], net.codes(x1 - eps * (x1 - x0)))
    assert check_path(ExactLine(net, x0, x1 - x0), walk.t, walk.codes, 0.0, 1.0) == []
    back = maso.segment_crossings(net, x1, x0)  # and the other way round: the tie sits at t = 1
    np.testing.assert_allclose(back.t, 1 - walk.t[::-1], atol=1e-12)


@pytest.mark.parametrize("delta", [0.0, 1e-16, 1e-14, 1e-13, 1e-11, 1e-9, 1e-6])
def test_near_coincident_crossings(delta):
    """Two ReLU hyperplanes crossed ``delta`` apart in t: one crossing listing both units when ``delta`` is below
    the merge distance (tol = 1e-12, in units of t for a segment), two in the right order otherwise; a max-pool
    over the two and a third unit changes its winner at t = 0.5, where the first and the third are equal."""
    t1 = 0.3
    W = np.array([[1.0], [1.0], [-1.0]])
    b = np.array([-t1, -(t1 + delta), 0.7])
    pool = maso.layers.MaxPool(1, kernel_size=3, stride=3)
    net = maso.Network.sequential((1,), [maso.layers.Dense(W, b), maso.layers.relu(), maso.layers.Reshape((1, 3)),
                                         pool])
    sc = maso.segment_crossings(net, np.zeros(1), np.ones(1))
    line = ExactLine(net, np.zeros(1), np.ones(1))
    if delta <= 1e-12:
        assert sc.t.tolist() == pytest.approx([t1, 0.5, 0.7], abs=1e-12)
        assert sc.units[0].tolist() == [0, 1]  # both flip at the one crossing
    else:
        assert sc.t.tolist() == pytest.approx([t1, t1 + delta, 0.5, 0.7], abs=1e-15)
        assert [u.tolist() for u in sc.units] == [[0], [1], [3], [2]]
        assert check_path(line, sc.t, sc.codes, 0.0, 1.0) == []
    mids = np.concatenate([[0.0], sc.t, [1.0]])
    mids = 0.5 * (mids[1:] + mids[:-1])
    np.testing.assert_array_equal(sc.codes, net.codes(mids[:, None]))


def test_long_rays_keep_every_crossing():
    """A ray over [-1e13, 1e13] (and [-1e100, 1e100]) has the crossings it has over [-1e6, 1e6], at the same t to
    relative precision; the probe's network (bad input #38) and a one-layer net with crossings at every scale."""
    net = maso.mlp([2, 8, 8, 1], seed=0)
    d = np.ones(2) / np.sqrt(2)
    ref = maso.ray_crossings(net, d, -1e6, 1e6)
    assert len(ref.t) == 13
    for R in (1e13, 1e15, 1e100):
        r = maso.ray_crossings(net, d, -R, R)
        np.testing.assert_allclose(r.t, ref.t, rtol=1e-12)
        assert [u.tolist() for u in r.units] == [u.tolist() for u in ref.units]
    rng = np.random.default_rng(0)
    scales = 10.0 ** np.arange(-3, 13)
    w = rng.normal(size=(len(scales), 3))
    a = rng.normal(size=3)
    b = -scales * (w @ a) * rng.choice([-1, 1], size=len(scales))  # unit k crosses at s = +-scales[k]
    one = maso.Network.sequential((3,), [maso.layers.Dense(w, b), maso.layers.relu()])
    rc = maso.ray_crossings(one, a, -1e13, 1e13)
    want = np.sort(-b / (w @ a))
    np.testing.assert_allclose(rc.t, want, rtol=1e-13, atol=1e-15)  # relative beyond |t| = 1


# ----------------------------------------------------------------------------------- every machine
_VARIANTS = {
    # the oldest x86-64 code paths (SSE only in OpenBLAS, torch's and MKL's generic kernels), maso's compiled
    # kernels off; this machine's own kernels (AVX-512 where present) are what the plain run uses
    "generic": {"OPENBLAS_CORETYPE": "Prescott", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
                "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "MASO_NO_KERNELS": "1"},
    "avx2": {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
#: The exactness tests rerun under each variant: walks, slices and enumerations checked against independent
#: references (exact rational arithmetic, LPs, dense sampling, brute force).
_EXACTNESS = {
    "tests/slices/test_walk_exact.py": "not other_cpu",
    "tests/slices/test_paths.py": "walk_equals_lp or one_layer or concurrent or dense_sampling",
    "tests/slices/test_slices.py": "equals_lp_enumerator or exact_rational or degenerate or carried_vertex",
    "tests/regions/test_regions.py": "exact_rational or degenerate or methods_agree or all_layer_types",
}


@pytest.mark.skipif(os.environ.get("MASO_MACHINE_VARIANT") is not None, reason="already inside a variant run")
@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_exactness_tests_pass_under_other_cpu_kernels(variant):
    """Rounding differs between CPUs (OpenBLAS and MKL pick kernels by CPU; torch by its capability): the
    exactness tests of paths, slices and regions run again with the kernels of other machines forced, and with
    maso's compiled kernels off."""
    env = dict(os.environ, MASO_MACHINE_VARIANT=variant, **_VARIANTS[variant])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for path, select in _EXACTNESS.items():
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", path, "-k", select],
                              cwd=root, env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, f"{variant}: {path}\n" + proc.stdout[-4000:] + proc.stderr[-2000:]
