"""Forward passes and hard codes agree with PyTorch on random models of every supported layer type."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from archs import random_inputs, random_model
from hypothesis import given, settings, strategies as st

import maso

SEEDS = st.integers(0, 2**20)


def _convert(module, shape):
    return maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))


@settings(max_examples=150)
@given(seed=SEEDS)
def test_forward_equals_torch_float64(seed):
    """Property: net(x) == module(x) to 1e-10 in float64, NumPy in -> NumPy out."""
    module, shape, _ = random_model(seed)
    net = _convert(module, shape)
    x = random_inputs(seed, shape, 7)
    got = net(x)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    want = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=100)
@given(seed=SEEDS)
def test_forward_equals_torch_float32(seed):
    """Property: a float32 module and float32 inputs agree to 1e-5; torch in -> torch out, dtype kept."""
    module, shape, _ = random_model(seed)
    module = module.float()
    net = maso.from_torch(module, torch.zeros(1, *shape))
    x = torch.from_numpy(random_inputs(seed, shape, 5)).float()
    got = net(x)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    torch.testing.assert_close(got, module(x).detach(), rtol=1e-5, atol=1e-5)
    single = net(x[0])
    assert single.shape == got.shape[1:]


def _torch_codes(module, x):
    """Independent codes: hooks on the torch modules capture unit inputs, compared against 0 / argmax."""
    out = {}
    hooks = []

    def hook(name, m):
        def fn(mod, inputs, output):
            u = inputs[0]
            if isinstance(mod, torch.nn.LeakyReLU) and mod.negative_slope > 1 or isinstance(mod, (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.PReLU, maso.nn.Abs)):
                out[name] = (u > 0).to(torch.uint8)
            elif isinstance(mod, maso.nn.Maxout):
                n, c = u.shape[:2]
                out[name] = u.reshape(n, c // mod.pieces, mod.pieces, *u.shape[2:]).argmax(dim=2)
        return fn

    for name, m in module.named_modules():
        if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.PReLU, maso.nn.Abs, maso.nn.Maxout)):
            hooks.append(m.register_forward_hook(hook(name, m)))
    try:
        module(x)
    finally:
        for h in hooks:
            h.remove()
    return out


@settings(max_examples=120)
@given(seed=SEEDS)
def test_codes_equal_torch_hooks(seed):
    """Property: per-layer codes equal unit inputs > 0 (argmax for maxout) read by hooks on the torch module.

    This also checks that batch-norm folding leaves codes unchanged: the hooks see the unfolded module.
    """
    module, shape, _ = random_model(seed, kind=["mlp", "cnn"][seed % 2])
    net = _convert(module, shape)
    x = random_inputs(seed, shape, 9)
    want = _torch_codes(module, torch.from_numpy(x))
    got = net.codes(x, by_layer=True)
    assert set(want) <= set(got)
    for name, codes in want.items():
        np.testing.assert_array_equal(got[name], codes.numpy())
    # The row layout follows net.units.
    rows = net.codes(x)
    assert rows.shape == (9, net.n_units)
    for g in net.units:
        np.testing.assert_array_equal(rows[:, g.columns], got[g.name].reshape(9, -1))


@pytest.mark.parametrize("kind", ["mlp", "cnn", "inception"])
def test_codes_of_big_batches_come_in_blocks(kind, monkeypatch):
    """A batch bigger than the memory block is coded block by block, with the same rows, per-layer codes and
    single-input shape as in one pass (the InceptionV1 tail asked torch for 5.5 GB at once on 8,227 inputs)."""
    from maso.core import _program

    module, shape, _ = random_model(3, kind=kind)
    net = _convert(module, shape)
    x = random_inputs(3, shape, 37)
    rows, layers, one = net.codes(x), net.codes(x, by_layer=True), net.codes(x[5])
    per_sample = sum(int(np.prod(node.shape)) for node in net.nodes)
    monkeypatch.setattr(_program, "CHUNK_ELEMENTS", 5 * per_sample)  # blocks of 5 inputs
    np.testing.assert_array_equal(net.codes(x), rows)
    for name, codes in net.codes(x, by_layer=True).items():
        np.testing.assert_array_equal(codes, layers[name])
    np.testing.assert_array_equal(net.codes(x[5]), one)
    assert net.codes(x[:0]).shape == (0, net.n_units)
    t = torch.from_numpy(x)
    assert torch.equal(net.codes(t), torch.from_numpy(rows))


@pytest.mark.parametrize("kind", ["mlp", "cnn", "inception"])
def test_outputs_activations_and_soft_codes_of_big_batches_come_in_blocks(kind, monkeypatch):
    """Like codes: the forward pass, activations and soft codes of a big batch run block by block into one
    result, equal to one pass."""
    from maso.core import _program

    module, shape, _ = random_model(4, kind=kind)
    net = _convert(module, shape)
    x = random_inputs(4, shape, 23)
    whole = (net(x), net.activations(x), net.soft_codes(x), net.soft_codes(x, by_layer=True),
             net.soft_codes(x, temperature=0.5))
    per_sample = sum(int(np.prod(node.shape)) for node in net.nodes)
    monkeypatch.setattr(_program, "CHUNK_ELEMENTS", 4 * per_sample)  # blocks of 4 inputs
    assert len(_program.chunks(len(x), per_sample)) == 6
    out, acts, soft, soft_layers, tempered = (net(x), net.activations(x), net.soft_codes(x),
                                              net.soft_codes(x, by_layer=True), net.soft_codes(x, temperature=0.5))
    same = functools.partial(np.testing.assert_allclose, rtol=1e-12, atol=1e-14)  # BLAS rounds per batch size
    same(out, whole[0])
    for name, a in acts.items():
        same(a, whole[1][name])
    same(soft, whole[2])
    for name, p in soft_layers.items():
        same(p, whole[3][name])
    same(tempered, whole[4])
    assert net(x[:0]).shape == (0, *net.output_shape) and net(x[3]).shape == net.output_shape


def test_maxpool_codes_are_window_positions():
    """Max-pool codes are the argmax position inside each window, from torch's own flat indices."""
    rng = np.random.default_rng(0)
    for ceil_mode in (False, True):
        pool = torch.nn.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=ceil_mode)
        module = torch.nn.Sequential(pool).double().eval()
        x = torch.from_numpy(rng.normal(size=(4, 2, 7, 8)))
        net = maso.from_torch(module, x)
        codes = net.codes(x, by_layer=True)["0"]
        _, idx = torch.nn.functional.max_pool2d(x, 3, 2, 1, 1, ceil_mode, return_indices=True)
        oh, ow = idx.shape[2:]
        ih, iw = idx // 8, idx % 8
        sh = torch.arange(oh).reshape(1, 1, oh, 1) * 2 - 1
        sw = torch.arange(ow).reshape(1, 1, 1, ow) * 2 - 1
        want = (ih - sh) * 3 + (iw - sw)
        np.testing.assert_array_equal(codes.numpy(), want.numpy())
        assert codes.max() < 9 and codes.min() >= 0


def test_batchnorm_is_folded():
    """Eval-mode BN after conv/linear disappears into it; BN after a ReLU stays as an elementwise affine."""
    rng = np.random.default_rng(1)
    bn1, bn2 = torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    for bn in (bn1, bn2):
        with torch.no_grad():
            bn.running_mean.copy_(torch.as_tensor(rng.normal(size=3)))
            bn.running_var.copy_(torch.as_tensor(rng.uniform(0.5, 2, size=3)))
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), bn1, torch.nn.ReLU(), bn2,
                                 torch.nn.Flatten(), torch.nn.Linear(3 * 16, 2)).double().eval()
    x = torch.from_numpy(rng.normal(size=(3, 2, 6, 6)))
    net = maso.from_torch(module, x)
    kinds = [type(n.layer).__name__ for n in net.nodes[1:]]
    assert kinds == ["Conv", "Elementwise", "ElementwiseAffine", "Reshape", "Dense"]
    np.testing.assert_allclose(net(x.numpy()), module(x).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_inception_toy_and_float32_cuda_free_paths():
    """The benchmark's Inception-style CNN converts; codes per layer cover every ReLU and max-pool unit."""
    module = maso.nn.inception_toy(seed=0)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    net = maso.from_torch(module, x)
    torch.testing.assert_close(net(x), module(x), rtol=1e-5, atol=1e-5)
    relus = [n for n, m in module.named_modules() if isinstance(m, torch.nn.ReLU)]
    pools = [n for n, m in module.named_modules() if isinstance(m, torch.nn.MaxPool2d)]
    names = {g.name for g in net.units}
    assert set(relus) | set(pools) == names


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the lent GPU machine)")
def test_cuda_tensors_stay_on_device():
    module, shape, _ = random_model(3, "inception")
    net = _convert(module, shape)
    x = torch.from_numpy(random_inputs(3, shape, 4)).cuda()
    y = net(x)
    assert y.device.type == "cuda"
    torch.testing.assert_close(y.cpu(), module(x.cpu()).detach())
    f = net.affine_at(x)
    assert f.A.device.type == "cuda"
    torch.testing.assert_close(net.codes(x).cpu(), net.codes(x.cpu()))


def test_maxpool_window_lookup_equals_coordinate_arithmetic():
    """The fast lookup-table conversion of torch's flat indices equals explicit coordinate arithmetic."""
    from maso.layers import MaxPool

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        nd = int(rng.integers(1, 4))
        k = tuple(int(v) for v in rng.integers(1, 4, nd))
        s = tuple(int(v) for v in rng.integers(1, 3, nd))
        d = tuple(int(v) for v in rng.integers(1, 3, nd))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        size = tuple(int(v) for v in rng.integers(3, 8, nd))
        layer = MaxPool(nd, k, s, p, d, bool(rng.random() < 0.5))
        x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(checked))
        try:
            _, idx = layer.forward(x, {}, True)
        except RuntimeError:  # the window does not fit
            continue
        fast = layer.public_code(idx, (3, *size)).long()
        slow = layer._public_code_arith(idx, (3, *size))
        assert torch.equal(fast, slow), (k, s, p, d, size)
        checked += 1
    assert checked > 100
