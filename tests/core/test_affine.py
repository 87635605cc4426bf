"""Exact affine maps: autograd Jacobians, offsets, batching and the Jacobian-vector-product operator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from archs import autograd_reference, random_inputs, random_model
from hypothesis import given, settings, strategies as st

import maso

SEEDS = st.integers(0, 2**20)


def _jacobian(module, x: np.ndarray) -> np.ndarray:
    """Autograd Jacobian of the torch module at one input, on the flattened input and output."""
    module = autograd_reference(module)
    xt = torch.from_numpy(x)
    J = torch.autograd.functional.jacobian(lambda v: module(v.reshape(1, *x.shape)).reshape(-1), xt.reshape(-1))
    return J.numpy()


@settings(max_examples=120)
@given(seed=SEEDS)
def test_affine_at_equals_autograd_jacobian(seed):
    """Property: A == d module / dx (autograd) and b == f(x) - A x, for each input of a batch."""
    module, shape, _ = random_model(seed)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x = random_inputs(seed, shape, 4)
    f = net.affine_at(x)
    assert f.A.shape == (4, net.output_dim, net.input_dim)
    out = net(x).reshape(4, -1)
    for i in range(4):
        np.testing.assert_allclose(f.A[i], _jacobian(module, x[i]), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(f.b[i], out[i] - f.A[i] @ x[i].reshape(-1), rtol=1e-9, atol=1e-10)
    single = net.affine_at(x[1])
    np.testing.assert_allclose(single.A, f.A[1], rtol=0, atol=1e-12)


@settings(max_examples=80)
@given(seed=SEEDS)
def test_operator_matches_dense(seed):
    """Property: the JVP/VJP operator applies the same A as the dense map, without forming it."""
    module, shape, _ = random_model(seed)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x = random_inputs(seed, shape, 3)
    dense = net.affine_at(x)
    op = net.affine_at(x, dense=False)
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(3, net.input_dim))
    w = rng.normal(size=(3, net.output_dim))
    np.testing.assert_allclose(op.jvp(v), np.einsum("noi,ni->no", dense.A, v), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.vjp(w), np.einsum("noi,no->ni", dense.A, w), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.b, dense.b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.to_dense().A, dense.A, rtol=1e-12, atol=1e-12)


def test_forward_mode_used_for_wide_outputs():
    """A sub-network with more outputs than inputs (forward mode) gives the autograd Jacobian too."""
    module = torch.nn.Sequential(torch.nn.Linear(2, 9), torch.nn.ReLU(), torch.nn.Linear(9, 7)).double().eval()
    net = maso.from_torch(module, torch.zeros(1, 2, dtype=torch.float64))
    x = np.array([0.3, -0.7])
    np.testing.assert_allclose(net.affine_at(x).A, _jacobian(module, x), rtol=1e-12, atol=1e-12)


def test_torch_inputs_give_torch_maps_and_float32_precision():
    net = maso.mlp([4, 16, 16, 3], seed=2)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    f = net.affine_at(x.float())
    assert isinstance(f.A, torch.Tensor) and f.A.dtype == torch.float32
    f64 = net.affine_at(x.double())
    torch.testing.assert_close(f.A.double(), f64.A, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(f(x.float()), net(x.float()), rtol=1e-5, atol=1e-5)


def test_local_constancy_of_the_map():
    """Moving inside a region changes the output by exactly A @ delta."""
    net = maso.mlp([3, 10, 10, 2], seed=5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=3)
    f = net.affine_at(x)
    code = net.codes(x)
    for _ in range(50):
        delta = rng.normal(size=3) * 1e-3
        if np.array_equal(net.codes(x + delta), code):
            np.testing.assert_allclose(net(x + delta) - net(x), f.A @ delta, rtol=1e-10, atol=1e-14)


def test_operator_rejects_bad_shapes():
    net = maso.mlp([3, 4, 2], seed=0)
    op = net.affine_at(np.zeros((2, 3)), dense=False)
    with pytest.raises(maso.errors.ShapeError, match="expects shape"):
        op.jvp(np.zeros((3, 3)))


@pytest.mark.parametrize("seed", range(8))
def test_offsets_run_the_affine_head_once(seed):
    """The offsets b come from a frozen pass at a zero input, where the affine head before the first spline layer
    is the same for every input: it runs on one sample and is broadcast. Same offsets as the full pass (every
    architecture, stopping early too), and the same as f(x) - A x from autograd for the exact maps."""
    from archs import BUILDERS

    from maso.core import _program

    kind = sorted(BUILDERS)[seed % len(BUILDERS)]
    module, shape, _ = random_model(seed, kind)
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    x = torch.from_numpy(random_inputs(seed, shape, 5))
    prog = net.program
    _, icodes, _ = _program.forward(prog, x, need_codes=True)
    zero = torch.zeros((5, 1, *shape), dtype=torch.float64)
    stops = [None] + [g.node for g in net.units][1:2]
    for until in stops:
        full = _program.frozen_pass(prog, zero, icodes, bias=True, until=until)[0]
        once = _program.frozen_pass(prog, zero, icodes, bias=True, until=until, zero_input=True)[0]
        assert once.shape == full.shape, kind
        torch.testing.assert_close(once, full, rtol=0, atol=1e-12 * (1 + float(full.abs().max())))
    f = net.affine_at(x.numpy())
    out = np.asarray(net(x.numpy())).reshape(5, -1)
    np.testing.assert_allclose(f.b, out - np.einsum("nmd,nd->nm", f.A, x.numpy().reshape(5, -1)),
                               rtol=1e-9, atol=1e-9 * (1 + np.abs(out).max()))
