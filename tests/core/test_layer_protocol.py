"""The soft half of the layer protocol, answered by every spline layer: is_soft, piece_probabilities (one-hot for
hard layers, the gate at a temperature), output_shape. Checked against hand-written formulas for each layer's pieces,
not against maso's own scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import expit, ndtr, softmax

import maso
from maso.layers import Dense, Elementwise, MASOLayer, Maxout, MaxPool, absolute, leaky_relu, relu

D, U, N = 3, 6, 40


def _first_layer():
    rng = np.random.default_rng(0)
    return rng.normal(size=(U, D)), rng.normal(size=U) * 0.3, rng.normal(size=(N, D))


def _scores_by_hand(kind: str, u: np.ndarray) -> np.ndarray:
    """Piece scores (N, units, R) of each layer kind on pre-activations u (N, U), from the pieces' definitions."""
    if kind == "relu":
        return np.stack([np.zeros_like(u), u], -1)
    if kind == "leaky":
        return np.stack([0.1 * u, u], -1)
    if kind == "abs":
        return np.stack([-u, u], -1)
    if kind == "three":  # max(-u, 0.5 u + 0.2, 2 u - 1)
        return np.stack([-u, 0.5 * u + 0.2, 2 * u - 1], -1)
    if kind == "maxout":  # channels (2c, 2c+1) compete
        return u.reshape(len(u), U // 2, 2)
    if kind == "maxpool":  # (1, U) windows of 2, stride 2: the window's entries are the pieces
        return u.reshape(len(u), U // 2, 2)
    raise AssertionError(kind)


def _net(kind: str, W: np.ndarray, b: np.ndarray) -> maso.Network:
    layer = {"relu": relu(), "leaky": leaky_relu(0.1), "abs": absolute(),
             "three": Elementwise(np.array([-1.0, 0.5, 2.0]), np.array([0.0, 0.2, -1.0])),
             "maxout": Maxout(2), "maxpool": MaxPool(1, kernel_size=2, stride=2)}[kind]
    if kind == "maxpool":
        return maso.Network.sequential((D,), [Dense(W, b), maso.layers.Reshape((1, U)), layer])
    return maso.Network.sequential((D,), [Dense(W, b), layer])


KINDS = ["relu", "leaky", "abs", "three", "maxout", "maxpool"]


@pytest.mark.parametrize("kind", KINDS)
def test_hard_layers_give_their_code_one_hot(kind):
    W, b, x = _first_layer()
    net = _net(kind, W, b)
    p = net.soft_codes(x)
    want = _scores_by_hand(kind, x @ W.T + b).argmax(-1)
    R = p.shape[-1]
    assert np.array_equal(p, np.eye(R)[want])
    assert np.array_equal(net.codes(x), want)
    assert not any(n.layer is not None and n.layer.is_soft for n in net.nodes) and net.is_piecewise_linear


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tau", [0.3, 1.0, 4.0])
def test_hard_layers_at_a_temperature_give_the_softmax_of_their_pieces(kind, tau):
    W, b, x = _first_layer()
    p = _net(kind, W, b).soft_codes(x, temperature=tau)
    want = softmax(_scores_by_hand(kind, x @ W.T + b) / tau, axis=-1)
    np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-15)


def test_a_canonical_maso_layer_at_a_temperature():
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(4, 3, D)), rng.normal(size=(4, 3))
    B[0, 2] = -np.inf  # unit 0 has two pieces only
    x = rng.normal(size=(N, D))
    p = maso.Network.sequential((D,), [MASOLayer(A, B)]).soft_codes(x, temperature=0.5)
    want = softmax((np.einsum("krd,nd->nkr", A, x) + B) / 0.5, axis=-1)
    np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-15)
    assert np.all(p[:, 0, 2] == 0)


@pytest.mark.parametrize(("module", "gate"), [(torch.nn.SiLU(), expit), (torch.nn.GELU(), ndtr)])
def test_soft_layers_give_their_gate(module, gate):
    W, b, x = _first_layer()
    model = torch.nn.Sequential(torch.nn.Linear(D, U), module).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(W))
        model[0].bias.copy_(torch.from_numpy(b))
    net = maso.from_torch(model, torch.zeros(1, D, dtype=torch.float64))
    u = x @ W.T + b
    p = net.soft_codes(x)
    np.testing.assert_allclose(p[..., 1], gate(u), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-14)
    # at another temperature the gate is re-evaluated on the same pre-activations (the network is unchanged)
    np.testing.assert_allclose(net.soft_codes(x, temperature=2.0)[..., 1], gate(u / 2.0), rtol=1e-12, atol=1e-15)
    assert any(n.layer is not None and n.layer.is_soft for n in net.nodes) and not net.is_piecewise_linear
    with pytest.raises(maso.errors.UnsupportedLayerError, match="soft"):
        maso.enumerate_regions(net, maso.Box(-np.ones(D), np.ones(D)))


@pytest.mark.parametrize("kind", KINDS)
def test_output_shape_matches_the_forward_pass(kind):
    W, b, _ = _first_layer()
    net = _net(kind, W, b)
    node = net.nodes[-1]
    in_shape = net.nodes[node.inputs[0]].shape
    assert node.layer.output_shape(in_shape) == node.shape


def _code_only_layers():
    from maso import soft

    three = Elementwise(np.array([-1.0, 0.5, 2.0]), np.array([0.0, 0.2, -1.0]))
    two = Elementwise(np.array([0.3, -2.0]), np.array([0.1, 0.0]))
    return {"relu": relu(), "leaky": leaky_relu(0.1), "abs": absolute(), "three": three, "two": two,
            "maxout": Maxout(2), "gelu": soft.gelu(), "gelu_tanh": soft.gelu("tanh"), "silu": soft.silu(),
            "sigmoid": soft.sigmoid(), "tanh": soft.tanh(), "bvq_abs": soft.beta_vq(absolute(), 0.3),
            "bvq_leaky": soft.beta_vq(leaky_relu(0.2), 0.7),
            "underflow": soft.Soft(leaky_relu(0.2), "logistic", 1e300),
            "soft_maxout": soft.Soft(Maxout(2), "logistic", 0.5), "gelu_tau": soft.gelu(temperature=2.0)}


@pytest.mark.parametrize("name", list(_code_only_layers()))
def test_a_layer_whose_output_nobody_reads_gives_the_same_code_without_it(name):
    """Codes run only what leads to a spline layer, and a last layer's output is not formed (`SplineLayer.code`,
    `expected_code`): hard and soft codes equal those of the full forward pass bit for bit, at exact zeros (+0.0 and -0.0), ties and
    gaps that a temperature turns into underflow."""
    from maso.core import _program

    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(U, D)), rng.normal(size=U)
    W[0], b[0] = 0.0, 0.0  # an exact zero pre-activation
    W[1], b[1] = 0.0, -0.0  # and a negative zero
    W[3], b[3] = W[2], b[2]  # a maxout tie
    x = np.vstack([rng.normal(size=(N, D)), np.zeros((1, D)), 1e-300 * rng.normal(size=(3, D))])
    net = maso.Network.sequential((D,), [Dense(W, b), _code_only_layers()[name]])
    t = torch.from_numpy(x)
    for soft in (False, True):  # hard codes, and the soft codes' piece probabilities
        _, full, _ = _program.forward(net._program, t, need_codes=True, soft=soft)
        alone = _program.codes_pass(net._program, t, soft=soft)
        assert full.keys() == alone.keys() == {2}
        assert full[2].dtype == alone[2].dtype and torch.equal(full[2], alone[2]), soft
    assert np.array_equal(net.codes(x), net.codes(x, by_layer=True)[net.units[0].name].reshape(len(x), -1))


class _ShiftedReLU(Elementwise):
    """A user's subclass that redefines forward (ReLU of u - 1): its code is decided there, not by ``u > 0``."""

    def forward(self, x, p, need_code):
        return super().forward(x - 1.0, p, need_code)


class _OwnExpectation(Elementwise):
    """A subclass whose expected piece is its own (a fixed 30/70 mix), not the hard code."""

    def expected_forward(self, x, p):
        y, _ = self.forward(x, p, False)
        t = torch.stack([torch.full_like(x, 0.3), torch.full_like(x, 0.7)], dim=-1)
        return y, t.reshape(x.shape[0], -1, 2)


class _FlippedCode(Elementwise):
    """A subclass that numbers its pieces the other way round in public codes."""

    def public_code(self, icode, in_shape):
        return (~icode).to(torch.uint8)


@pytest.mark.parametrize("cls", [_ShiftedReLU, _OwnExpectation, _FlippedCode])
def test_subclasses_that_redefine_forward_expectation_or_public_code_are_obeyed(cls):
    """The code-only shortcuts (`code`, `expected_code`, `write_public_code`) step aside for a subclass that
    redefines what they shortcut: codes, soft codes and code rows equal the full pass's and `public_code`'s."""
    from maso.core import _program

    W, b, x = _first_layer()
    net = maso.Network.sequential((D,), [Dense(W, b), cls(np.array([0.0, 1.0]), np.array([0.0, 0.0]))])
    t = torch.from_numpy(x)
    for soft in (False, True):
        _, full, _ = _program.forward(net._program, t, need_codes=True, soft=soft)
        alone = _program.codes_pass(net._program, t, soft=soft)
        assert torch.equal(full[2], alone[2]), (cls.__name__, soft)
    u = x @ W.T + b
    want = {_ShiftedReLU: u > 1, _OwnExpectation: u > 0, _FlippedCode: u <= 0}[cls]
    assert np.array_equal(net.codes(x), want.astype(np.uint8))
    assert np.array_equal(net.codes(x, by_layer=True)[net.units[0].name], want.astype(np.uint8))
