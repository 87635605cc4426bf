"""Valid edge cases work (empty batches everywhere, huge and tiny planes) and requests that cannot be carried out
are refused up front with typed errors (a batch whose dense maps do not fit in memory, bad parameters)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import maso
from maso import _validation
from maso.core import _program
from maso.errors import ResourceError


def _nets() -> dict[str, maso.Network]:
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)).double().eval()
    gelu = nn.Sequential(nn.Linear(2, 5), nn.GELU(), nn.Linear(5, 2)).double().eval()
    pool = maso.from_torch(conv, torch.zeros(1, 1, 6, 6, dtype=torch.float64))
    return {
        "mlp": maso.mlp([2, 8, 8, 1], seed=0),
        "maxout": maso.mlp([3, 6, 2], seed=0, activation="maxout"),
        "conv-maxpool": pool,
        "linear": maso.from_torch(nn.Sequential(nn.Linear(2, 3)).double().eval(), torch.zeros(1, 2)),
        "gelu": maso.from_torch(gelu, torch.zeros(1, 2, dtype=torch.float64)),
        "soft-maxpool": maso.soft.soften(pool, beta=0.5),
    }


NETS = _nets()


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_empty_batches_give_empty_results(name, kind):
    """A batch of 0 inputs is valid everywhere codes() accepts it (bad_inputs #11, #12)."""
    net = NETS[name]
    x = np.zeros((0, *net.input_shape)) if kind == "numpy" else torch.zeros((0, *net.input_shape), dtype=torch.float64)
    n, m, d, U = 0, net.output_dim, net.input_dim, net.n_units
    R = max((g.n_pieces for g in net.units), default=1)
    assert tuple(net.codes(x).shape) == (0, U)
    assert tuple(net(x).shape) == (0, *net.output_shape)
    assert tuple(net.soft_codes(x).shape) == (0, U, R)
    assert tuple(net.soft_codes(x, temperature=0.3).shape) == (0, U, R)
    for g in net.units:
        assert tuple(net.soft_codes(x, by_layer=True)[g.name].shape)[:-1] == (0, *g.shape)
    f = net.expected_affine_at(x)
    assert tuple(f.A.shape) == (n, m, d) and tuple(f.b.shape) == (n, m)
    op = net.expected_affine_at(x, dense=False)
    assert op.shape == (0, m, d) and tuple(op.b.shape) == (0, m)
    if not net.is_piecewise_linear:
        return
    f = net.affine_at(x)
    assert tuple(f.A.shape) == (n, m, d) and tuple(f.b.shape) == (n, m)
    codes, f = net.affine_at(x, with_codes=True)
    assert tuple(codes.shape) == (0, U) and tuple(f.A.shape) == (n, m, d)
    op = net.affine_at(x, dense=False)
    assert tuple(op.jvp(np.zeros((0, d))).shape) == (0, m)
    assert tuple(op.vjp(np.zeros((0, m))).shape) == (0, d)
    assert tuple(op.to_dense().A.shape) == (0, m, d)
    codes, op = net.affine_at(x, dense=False, with_codes=True)
    assert tuple(codes.shape) == (0, U)
    assert net.region_at(x) == ()


def test_maps_in_blocks_equal_maps_at_once(monkeypatch):
    """Dense maps are computed block by block into one array: the same maps and codes as in one block."""
    net = maso.mlp([3, 16, 16, 2], seed=1)
    x = np.random.default_rng(0).normal(size=(50, 3))
    codes, whole = net.affine_at(x, with_codes=True)
    monkeypatch.setattr(_program, "CHUNK_ELEMENTS", 100)
    assert len(_program.chunks(50, 16, 100)) > 5
    codes_b, blocks = net.affine_at(x, with_codes=True)
    np.testing.assert_array_equal(codes_b, codes)
    np.testing.assert_allclose(blocks.A, whole.A, rtol=0, atol=1e-14)
    np.testing.assert_allclose(blocks.b, whole.b, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(codes, net.codes(x))


def test_dense_maps_that_cannot_fit_are_refused_before_any_work(monkeypatch):
    """affine_at of 200,000 MNIST-sized inputs asked for gigabytes and failed in the allocator after 20 s; now it
    is a ResourceError up front that names the size and what to do (bad_inputs #15)."""
    net = maso.mlp([784, 16, 10], seed=0)
    monkeypatch.setattr(_validation, "memory_budget", lambda device="cpu": 10**9)  # 1 GB left
    monkeypatch.setattr(_program, "forward", _no_forward)
    x = torch.zeros((200_000, 784))
    for call in (net.affine_at, net.expected_affine_at):
        with pytest.raises(ResourceError, match=r"200,000 inputs.*6\.28 GB.*only 1 GB.*dense=False.*at most 31,847 inputs"):
            call(x)
    assert isinstance(ResourceError("x"), MemoryError) and issubclass(ResourceError, maso.MasoError)
    monkeypatch.undo()
    op = net.affine_at(x[:5], dense=False)  # the operator form needs no room for A
    assert op.shape == (5, 10, 784)


def _no_forward(*args, **kwargs):
    raise AssertionError("a forward pass ran before the size check")


def test_dense_maps_under_an_address_space_limit():
    """The real case: a process limited to 3 GB of address space (ulimit -v) asks for 6 GB of maps."""
    code = textwrap.dedent("""
        import resource, time
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        import numpy as np, maso
        net = maso.mlp([784, 16, 10], seed=0)
        x = np.zeros((100_000, 784), np.float32)
        t = time.perf_counter()
        try:
            net.affine_at(x)
        except maso.errors.ResourceError as e:
            print("refused", time.perf_counter() - t, e)
        print(net.affine_at(x[:1000]).A.shape)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.splitlines()
    assert first.startswith("refused") and float(first.split()[1]) < 5.0, first
    assert "3.14 GB" in first and "dense=False" in first
    assert second == "(1000, 10, 784)"


# ---------------------------------------------------------------------------------------------------- planes
@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1.0, 1e150, 1e200, 1e300])
def test_plane_independence_is_scale_free(scale):
    """Orthogonal directions of any scale are independent: u.u overflowed at 1e200 (bad_inputs #31)."""
    plane = maso.Plane(np.zeros(2), np.array([scale, 0.0]), np.array([0.0, scale]))
    np.testing.assert_allclose(plane.coordinates(np.array([scale, 2 * scale])), [1.0, 2.0], rtol=1e-12)
    with pytest.raises(maso.errors.DomainError, match="parallel"):
        maso.Plane(np.zeros(2), np.array([scale, scale]), np.array([2 * scale, 2 * scale]))
    with pytest.raises(maso.errors.DomainError, match="parallel"):
        maso.Plane(np.zeros(2), np.array([scale, 0.0]), np.array([1.0, 1e-200]))
    with pytest.raises(maso.errors.DomainError, match="u is zero"):
        maso.Plane(np.zeros(2), np.zeros(2), np.array([0.0, scale]))


@pytest.mark.parametrize("bad", [
    dict(u=np.array([1.0 + 1j, 0.0])), dict(v=[0, 1j]), dict(origin=np.array([1j, 0])), dict(u=["a", 0]),
    dict(origin=[np.nan, 0]), dict(v=[0, np.inf]),
])
def test_plane_refuses_what_is_not_a_real_vector(bad):
    """Complex directions lost their imaginary part silently (bad_inputs #32)."""
    args = dict(origin=np.zeros(2), u=np.array([1.0, 0.0]), v=np.array([0.0, 1.0])) | bad
    with pytest.raises(maso.errors.ShapeError, match="real numbers|NaN or infinite"):
        maso.Plane(**args)
    with pytest.raises(maso.errors.ShapeError, match="real numbers"):
        maso.Plane.through_points(np.zeros(2), np.array([1j, 0]), np.array([0, 1.0]))
    plane = maso.Plane(np.zeros(2), np.eye(2)[0], np.eye(2)[1])
    with pytest.raises(maso.errors.ShapeError, match="real numbers"):
        plane(np.array([1j, 0]))
    with pytest.raises(maso.errors.ShapeError, match="real numbers"):
        plane.coordinates(np.array([1j, 0]))


@pytest.mark.parametrize("kwargs, error, says", [
    (dict(max_regions=-5), maso.errors.ParameterError, "max_regions"),
    (dict(max_regions=0), maso.errors.ParameterError, "max_regions"),
    (dict(max_regions=2.5), maso.errors.ParameterError, "max_regions"),
    (dict(max_regions=True), maso.errors.ParameterError, "max_regions"),
    (dict(max_regions="10"), maso.errors.ParameterError, "max_regions"),
    (dict(progress="yes"), maso.errors.ParameterError, "progress"),
    (dict(method=3), maso.errors.ParameterError, "method"),
    (dict(method="fast"), maso.errors.ParameterError, "method"),
    (dict(tol=True), maso.errors.ParameterError, "tol"),
    (dict(tol=float("nan")), maso.errors.ParameterError, "tol"),
    (dict(tol=1j), maso.errors.ParameterError, "tol"),
    (dict(lo=(1j, 0)), maso.errors.DomainError, "real numbers"),
    (dict(lo=("a", 0)), maso.errors.DomainError, "real numbers"),
    (dict(hi=(np.inf, 1)), maso.errors.DomainError, "NaN or infinite"),
    (dict(lo=(1, 1), hi=(-1, -1)), maso.errors.DomainError, "lo < hi"),
])
def test_slice_parameters_are_checked_up_front(kwargs, error, says, monkeypatch):
    """max_regions=-5 used to run the slice and fail with 'more than -5 faces' (bad_inputs #34)."""
    from maso.slices import _slice as slices

    monkeypatch.setattr(slices, "_from_mesh", _no_slice)
    monkeypatch.setattr(slices, "_from_lp", _no_slice)
    net = maso.mlp([2, 8, 8, 1], seed=0)
    with pytest.raises(error, match=says):
        maso.slice_regions(net, **kwargs)


def _no_slice(*args, **kwargs):
    raise AssertionError("the slice started before its parameters were checked")


def test_slice_accepts_numpy_numbers():
    net = maso.mlp([2, 8, 8, 1], seed=0)
    a = maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))
    b = maso.slice_regions(net, lo=np.array([-1, -1], np.int64), hi=np.float32([1, 1]), tol=np.float32(1e-12),
                           max_regions=np.int64(1000), progress=np.bool_(False))
    assert len(a) == len(b)


# ----------------------------------------------------------------------------------------- shared checks
def test_parameter_checks():
    from maso._validation import check_bool, check_float, check_int

    assert check_int(np.int64(3), "n", "f", minimum=1) == 3 and check_int(None, "n", "f", allow_none=True) is None
    for bad in (True, 2.0, "3", 1j, None, 0):
        with pytest.raises(maso.errors.ParameterError, match="'n' parameter of f"):
            check_int(bad, "n", "f", minimum=1)
    with pytest.raises(maso.errors.ParameterError, match=r"in \[0, 5\]. Got 99999999999999999999"):
        check_int(99999999999999999999, "n", "f", minimum=0, maximum=5)
    assert check_float(np.float32(0.5), "t", "f", minimum=0, strict=True) == 0.5
    for bad in (True, "0.5", 1j, float("nan"), float("inf"), 0.0, -1, np.complex128(1)):
        with pytest.raises(maso.errors.ParameterError, match="'t' parameter of f"):
            check_float(bad, "t", "f", minimum=0, strict=True)
    assert check_bool(np.bool_(True), "b", "f") is True
    for bad in (1, "yes", None):
        with pytest.raises(maso.errors.ParameterError, match="True or False"):
            check_bool(bad, "b", "f")


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_affine_at_flags_are_bools(bad):
    net = maso.mlp([2, 4, 1], seed=0)
    with pytest.raises(maso.errors.ParameterError, match="'dense' parameter"):
        net.affine_at(np.zeros(2), dense=bad)
    with pytest.raises(maso.errors.ParameterError, match="'with_codes' parameter"):
        net.affine_at(np.zeros(2), with_codes=bad)


@pytest.mark.parametrize("bad", [object(), 3, "net"])
def test_soften_and_harden_need_a_network(bad):
    with pytest.raises(maso.errors.ShapeError, match="soften needs a maso.Network"):
        maso.soft.soften(bad, beta=0.5)
    with pytest.raises(maso.errors.ShapeError, match="harden needs a maso.Network"):
        maso.soft.harden(bad)


def test_restrict_refuses_complex_and_text():
    net = maso.mlp([3, 4, 1], seed=0)
    with pytest.raises(maso.errors.ShapeError, match="'origin' argument of Network.restrict must hold real numbers"):
        net.restrict(np.array([1j, 0, 0]), np.eye(3)[:1])
    with pytest.raises(maso.errors.ShapeError, match="'directions' argument of Network.restrict must hold real numbers"):
        net.restrict(np.zeros(3), [["a", 0, 0]])


# ------------------------------------------------------------- found by the acceptance re-run of bad inputs
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_convert_and_a_misconversion_still_fails(dtype, monkeypatch):
    """The conversion check allows the model's own rounding (bfloat16: ~4e-3 relative), and nothing more: a
    batch norm dropped by a broken fold is still caught, in float32 and in half precision."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                            torch.nn.Linear(8, 1)).eval()
    with torch.no_grad():
        m[1].weight.fill_(3.0)
        m[1].bias.fill_(1.0)
    x = torch.randn(16, 2)
    for model in (m, m.to(dtype)):
        net = maso.from_torch(model, x.to(model[0].weight.dtype))
        assert net.n_units == 8
    import maso.torch._convert as ft

    monkeypatch.setattr(ft, "_fold", lambda prev, layer: prev)  # "folds" the batch norm away: wrong
    for model in (m.float(), m.to(dtype)):
        with pytest.raises(maso.errors.ConversionError, match="does not reproduce"):
            maso.from_torch(model, x.to(model[0].weight.dtype))


def test_zero_output_and_zero_width_networks():
    """A network with no outputs converts; a zero-width layer enumerates, slices, walks and verifies."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: initializing zero-element tensors
        none_out = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 0)).eval()
        zero = torch.nn.Sequential(torch.nn.Linear(2, 0), torch.nn.ReLU(), torch.nn.Linear(0, 1)).eval()
    assert maso.from_torch(none_out, torch.zeros(1, 2)).output_shape == (0,)
    net = maso.from_torch(zero, torch.zeros(1, 2))
    R = maso.enumerate_regions(net, maso.Box(-1, 1))
    assert len(R) == 1 and R.verify().ok
    assert len(maso.slice_regions(net, lo=(-1, -1), hi=(1, 1))) == 1
    assert maso.segment_crossings(net, -np.ones(2), np.ones(2)).n_pieces == 1


def test_measures_and_find_validate_their_inputs():
    net = maso.mlp([2, 8, 8, 1], seed=0)
    assert maso.measures.path_density(net, np.zeros((0, 2)), np.zeros((0, 2))) == []
    with pytest.raises(maso.errors.ShapeError, match="real numbers"):
        maso.measures.path_density(net, np.array([1j, 0]), np.ones(2))
    with pytest.raises(maso.errors.ShapeError, match="real numbers"):
        maso.measures.hamming([1j], [0])
    R = maso.enumerate_regions(net, maso.Box(-1, 1))
    i = R.find(np.zeros(2))
    assert R[i].contains(np.zeros(2))
    assert R.find(np.zeros((3, 2))).tolist() == [i] * 3 and R.find(np.zeros((0, 2))).shape == (0,)
    for bad in (np.zeros(3), "ab", np.array([1j, 0])):
        with pytest.raises(maso.errors.ShapeError):
            R.find(bad)
    with pytest.raises(maso.errors.ParameterError):
        R.verify(n_points=10**12)
    with pytest.raises(maso.errors.ShapeError):
        maso.regions.RegionSet(net, R.domain, [1, 2], (), 1e-9, {})


def test_lp_paths_over_many_scales():
    """method='lp' walks long rays piece by piece too (a unit box each): the walk's 13 crossings."""
    net = maso.mlp([2, 8, 8, 1], seed=0)
    d = np.ones(2) / np.sqrt(2)
    walk = maso.ray_crossings(net, d, -1e6, 1e6)
    for R in (1e4, 1e13):
        lp = maso.ray_crossings(net, d, -R, R, method="lp")
        np.testing.assert_allclose(lp.t, walk.t, rtol=1e-9)
        np.testing.assert_array_equal(lp.codes, walk.codes)
