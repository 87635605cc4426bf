"""Code rows written in place: `Network.codes` lets each layer write its codes straight into the rows
(`SplineLayer.forward_into_code_rows`: a compare into a bool view for ReLU-like units, a table lookup into the
rows for max-pooling). They must equal the per-layer public codes and an independent oracle (torch's own
pre-activations and pooling indices), across blocks of inputs, in every code dtype, and step aside for
subclasses that redefine a code; the NaN test that `codes` leaves for the end must still refuse a bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maso
from maso.core import _program
from maso.layers import Dense, Elementwise, MaxPool, relu


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    first = torch.nn.Conv2d(2, 4, 3, padding=1)
    with torch.no_grad():
        first.bias[0] = 0.0  # a zero input patch then gives exact zero pre-activations (u > 0 is 0 there)
    return torch.nn.Sequential(
        first, torch.nn.ReLU(),
        torch.nn.MaxPool2d(3, stride=2, padding=1),
        torch.nn.Conv2d(4, 3, 3), torch.nn.LeakyReLU(0.1),
        torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2, 5), torch.nn.GELU(),
        torch.nn.Linear(5, 6).double(), torch.nn.Unflatten(1, (1, 2, 3)),
        torch.nn.MaxPool2d(2, stride=1),  # the last spline layer: its output is never formed
    ).double().eval()


def _oracle(module: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Code rows from torch alone: ``u > 0`` at each ReLU-like module's input, and the window position of
    each max-pool's winner from torch's flat indices, in module order."""
    cols = []
    for m in module:
        if isinstance(m, torch.nn.MaxPool2d):
            k, s, p = m.kernel_size, m.stride, m.padding
            k, s, p = (k, k) if isinstance(k, int) else k, (s, s) if isinstance(s, int) else s, \
                (p, p) if isinstance(p, int) else p
            y, idx = torch.nn.functional.max_pool2d(x, k, s, p, return_indices=True)
            width = x.shape[3]
            oh, ow = idx.shape[2:]
            sh = torch.arange(oh).reshape(1, 1, oh, 1) * s[0] - p[0]
            sw = torch.arange(ow).reshape(1, 1, 1, ow) * s[1] - p[1]
            cols.append(((idx // width - sh) * k[1] + (idx % width - sw)).flatten(1))
            x = y
            continue
        if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.GELU)):
            cols.append((x > 0).flatten(1).long())
        x = m(x)
    return torch.cat(cols, dim=1).numpy()


@pytest.mark.parametrize("blocks", [1, 3])
def test_code_rows_equal_the_per_layer_codes_and_torch_s_own(monkeypatch, blocks):
    module = _cnn()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(7, 2, 8, 8)))
    x[0, :, :4, :4] = 0.0  # exact zero pre-activations and pooling ties
    net = maso.from_torch(module, x[:1])
    if blocks > 1:  # several blocks of inputs: each writes its own rows
        monkeypatch.setattr(_program, "CHUNK_ELEMENTS", 3 * net.program.sample_size)
    rows = net.codes(x)
    assert rows.dtype == torch.uint8 and rows.shape == (7, net.n_units)
    per_layer = net.codes(x, by_layer=True)
    joined = torch.cat([per_layer[g.name].reshape(7, -1) for g in net.units], dim=1)
    assert torch.equal(rows, joined)
    np.testing.assert_array_equal(rows.numpy(), _oracle(module, x))
    # the same rows from NumPy input, one input at a time and as tokens (several leading batch axes)
    np.testing.assert_array_equal(net.codes(x.numpy()), rows.numpy())
    np.testing.assert_array_equal(net.codes(x[3]).numpy(), rows[3].numpy())
    assert torch.equal(net.codes(x[:6].reshape(2, 3, 2, 8, 8)).reshape(6, -1), rows[:6])


def test_int32_code_rows_take_the_copying_path():
    """A pool with 256 window positions makes the rows int32: no bool view and no uint8 table, so every layer
    falls back to writing its public code, with the same result as the per-layer codes and torch's."""
    torch.manual_seed(1)
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(16, stride=1)).double().eval()
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 1, 17, 17)))
    net = maso.from_torch(module, x[:1])
    rows = net.codes(x)
    assert rows.dtype == torch.int32
    joined = torch.cat([v.reshape(3, -1) for v in net.codes(x, by_layer=True).values()], dim=1)
    assert torch.equal(rows, joined.to(torch.int32))
    np.testing.assert_array_equal(rows.numpy(), _oracle(module, x))


class _ReversedPool(MaxPool):
    """A user's pool that numbers window positions from the end."""

    def public_code(self, icode, in_shape):
        return self.n_pieces - 1 - super().public_code(icode, in_shape)


class _FlippedReLU(Elementwise):
    """A ReLU whose public code says 1 for the inactive piece."""

    def public_code(self, icode, in_shape):
        return (~icode).to(torch.uint8)


def test_subclasses_with_their_own_public_code_are_obeyed_in_code_rows():
    rng = np.random.default_rng(2)
    pool = maso.Network.sequential((1, 4, 4), [_ReversedPool(2, (2, 2), (2, 2))])
    x = rng.normal(size=(5, 1, 4, 4))
    plain = maso.Network.sequential((1, 4, 4), [MaxPool(2, (2, 2), (2, 2))]).codes(x)
    np.testing.assert_array_equal(pool.codes(x), 3 - plain)
    W, b = rng.normal(size=(4, 3)), rng.normal(size=4)
    u = rng.normal(size=(6, 3)) @ W.T + b
    for layer in (_FlippedReLU(np.array([0.0, 1.0]), np.array([0.0, 0.0])),
                  maso.soft.Soft(_FlippedReLU(np.array([0.0, 1.0]), np.array([0.0, 0.0])), "logistic")):
        net = maso.Network.sequential((3,), [Dense(W, b), layer])
        np.testing.assert_array_equal(net.codes((u - b) @ np.linalg.pinv(W).T), (u <= 0).astype(np.uint8))


@pytest.mark.parametrize("call", ["codes", "codes_by_layer", "soft_codes", "soft_codes_by_layer"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_finite_test_left_for_the_end_still_refuses_bad_input(call, bad):
    net = maso.Network.sequential((3,), [Dense(np.eye(3), np.zeros(3)), relu()])
    x = np.zeros((4, 3))
    x[2, 1] = bad
    fn = {"codes": lambda v: net.codes(v), "codes_by_layer": lambda v: net.codes(v, by_layer=True),
          "soft_codes": lambda v: net.soft_codes(v), "soft_codes_by_layer": lambda v: net.soft_codes(v, by_layer=True)}
    for value in (x, torch.from_numpy(x), x[2]):
        with pytest.raises(maso.errors.ShapeError, match=r"'x' argument of Network\.(soft_)?codes contains NaN"):
            fn[call](value)
    huge = np.array([[1.5e308, 1.5e308, 0.0]])  # finite, though its sum overflows: accepted
    got = fn[call](huge)
    assert np.asarray(got if "by_layer" not in call else next(iter(got.values()))).shape[0] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the lent GPU machine)")
def test_code_rows_on_a_gpu_equal_the_cpu_s():
    module = _cnn()
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(9, 2, 8, 8)))
    net = maso.from_torch(module, x[:1])
    rows = net.codes(x.cuda())
    assert rows.device.type == "cuda" and torch.equal(rows.cpu(), net.codes(x))
    with pytest.raises(maso.errors.ShapeError, match="NaN"):
        net.codes(torch.full_like(x, float("nan")).cuda())


def test_a_network_without_spline_layers_still_refuses_bad_input_by_layer():
    """Codes and soft codes by layer of a network with no spline layer are ``{}``: no result goes through the
    return path that tests the input, so the test runs before it."""
    net = maso.Network.sequential((2,), [Dense(np.eye(2), np.zeros(2))])
    assert net.codes(np.ones((3, 2)), by_layer=True) == {} and net.soft_codes(np.ones((3, 2)), by_layer=True) == {}
    for call in (lambda v: net.codes(v, by_layer=True), lambda v: net.soft_codes(v, by_layer=True),
                 lambda v: net.codes(v), lambda v: net.soft_codes(v)):
        with pytest.raises(maso.errors.ShapeError, match="NaN"):
            call(np.array([[np.nan, 1.0]]))


class _OwnCode(Elementwise):
    """A ReLU whose code alone (what a pass that reads no output asks for) counts u = 0 as active."""

    def code(self, x, p):
        return x >= 0


def test_a_subclass_with_its_own_code_is_obeyed_in_code_rows():
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    net = maso.Network.sequential((2,), [Dense(W, np.zeros(3)), _OwnCode(np.array([0.0, 1.0]), np.zeros(2))])
    x = np.array([[-1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    np.testing.assert_array_equal(net.codes(x), (x @ W.T >= 0).astype(np.uint8))
