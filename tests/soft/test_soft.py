"""Soft spline codes: identities against torch's own functions at float64, from_torch conversions, soft codes,
expected affine maps (against brute-force expectations over hard codes), limits and typed errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import maso
from maso import soft
from maso.layers import Dense, Maxout, MaxPool, absolute, leaky_relu, relu

DT = torch.float64
U = torch.linspace(-12, 12, 20001, dtype=DT)


def _apply(layer, u):
    net = maso.Network.sequential(tuple(u.shape[1:]) if u.dim() > 1 else (u.shape[0],), [layer])
    return net(u)


def _close(a, b, rtol=1e-14, atol=1e-15):
    assert torch.allclose(a, b, rtol=rtol, atol=atol), float((a - b).abs().max())


# ------------------------------------------------------------------------------- identities against torch
def test_gelu_is_relu_with_probit_code_exactly():
    _close(_apply(soft.gelu(), U), F.gelu(U))
    p = maso.Network.sequential((U.shape[0],), [soft.gelu()]).soft_codes(U)[:, 1]
    _close(U * p, F.gelu(U))
    _close(p, 0.5 * (1 + torch.erf(U / 2 ** 0.5)))


def test_gpt2_gelu_new_gate_exactly():
    net = maso.Network.sequential((U.shape[0],), [soft.gelu("tanh")])
    p = net.soft_codes(U)[:, 1]
    _close(net(U), F.gelu(U, approximate="tanh"))
    _close(U * p, F.gelu(U, approximate="tanh"))
    # the hard code is the most probable piece: p > 1/2 exactly where u > 0
    assert torch.equal(p > 0.5, U > 0)
    assert torch.equal(net.codes(U).bool(), U > 0)
    # the two GELU gates differ by at most ~1.8e-4 (theory notes)
    pe = maso.Network.sequential((U.shape[0],), [soft.gelu()]).soft_codes(U)[:, 1]
    assert 1e-4 < float((p - pe).abs().max()) < 2e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stacked_gate_equals_the_two_sides_bit_for_bit(dtype):
    """The soft codes' fused gate (written in place for the tanh gate) gives the values of the two sides computed
    apart and stacked, bit for bit: every gate, magnitudes from 1e-30 to 1e3, signed zeros, subnormals, and a
    non-contiguous input."""
    from maso import _gates

    g = torch.Generator().manual_seed(0)
    d = torch.cat([torch.randn(20_000, generator=g, dtype=dtype) * s for s in (1e-30, 1e-6, 1e-2, 1, 4, 30, 1e3)]
                  + [torch.tensor([0.0, -0.0, 1e-40, -1e-40, 20.0, -20.0], dtype=dtype)])
    for x in (d, d.reshape(-1, 2).t()):  # (the transpose: a strided input)
        for gate in _gates.GATES:
            t0, t1 = _gates.two_piece_probabilities(gate, x)
            both = _gates.two_piece_stacked(gate, x)
            assert both.shape == (*x.shape, 2)
            assert torch.equal(both[..., 0], t0) and torch.equal(both[..., 1], t1), gate
    # the ReLU-based soft layer's expected slope is P(active) itself, and it has no intercept: the expected
    # affine map of a GELU block equals the one of the same layer on a generic two-piece base (0, u)
    W = torch.randn(6, 3, generator=g, dtype=torch.float64)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    generic = soft.Soft(maso.layers.Elementwise(np.array([0.0, 1.0]), np.array([0.0, 1e-300])), "tanh")
    assert generic.base.kind == "generic"
    fast, ref = (maso.Network.sequential((3,), [Dense(W.numpy(), np.zeros(6)), layer, Dense(np.ones((1, 6)), np.zeros(1))]
                                         ).expected_affine_at(x) for layer in (soft.gelu("tanh"), generic))
    np.testing.assert_allclose(fast.A, ref.A, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fast.b, ref.b, rtol=1e-13, atol=1e-250)


def test_silu_sigmoid_tanh_exactly():
    _close(_apply(soft.silu(), U), F.silu(U))
    _close(_apply(soft.sigmoid(), U), torch.sigmoid(U))
    _close(_apply(soft.tanh(), U), torch.tanh(U), rtol=1e-14, atol=3e-16)


@pytest.mark.parametrize("beta", [0.1, 0.3, 0.5, 0.63, 0.9, 0.999])
def test_beta_vq_closed_forms(beta):
    c = beta / (1 - beta)
    _close(_apply(soft.beta_vq(relu(), beta), U), U * torch.sigmoid(c * U))
    _close(_apply(soft.beta_vq(absolute(), beta), U), U * torch.tanh(c * U), rtol=1e-13, atol=1e-15)
    eta = 0.1
    got = _apply(soft.beta_vq(leaky_relu(eta), beta), U)
    ok = (c * U).abs() < 600  # the paper's closed form, where its exponentials stay in range
    want = U * (eta * torch.exp(c * eta * U) + torch.exp(c * U)) / (torch.exp(c * eta * U) + torch.exp(c * U))
    _close(got[ok], want[ok], rtol=1e-12, atol=1e-14)
    w = torch.softmax(torch.stack([c * eta * U, c * U], -1), -1)  # the same, overflow-free
    _close(got, U * (eta * w[:, 0] + w[:, 1]), rtol=1e-12, atol=1e-14)


def test_soft_max_pooling_and_maxout():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 2, 6, 6, generator=g, dtype=DT)
    layer = soft.Soft(MaxPool(2, 2, 2), "logistic", 0.7)
    net = maso.Network.sequential((2, 6, 6), [layer])
    win = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(5, 2, 3, 3, 4)
    want = (torch.softmax(win / 0.7, -1) * win).sum(-1)
    _close(net(x), want, rtol=1e-13)
    # padding positions never get probability
    padded = maso.Network.sequential((1, 5, 5), [soft.Soft(MaxPool(2, 3, 2, padding=1), "logistic", 1.0)])
    assert torch.isfinite(padded(x[:, :1, :5, :5])).all()
    p = padded.soft_codes(x[:, :1, :5, :5])
    assert torch.allclose(p.sum(-1), torch.ones_like(p.sum(-1)))
    mo = maso.Network.sequential((6,), [soft.Soft(Maxout(3), "logistic", 0.5)])
    v = torch.randn(7, 6, generator=g, dtype=DT)
    pieces = v.reshape(7, 2, 3)
    _close(mo(v), (torch.softmax(pieces / 0.5, -1) * pieces).sum(-1), rtol=1e-13)


def test_per_channel_prelu_soft():
    eta = np.array([0.1, 0.3, 0.5])
    base = maso.layers.Elementwise(np.stack([eta, np.ones(3)]), np.zeros((2, 3)))
    net = maso.Network.sequential((3, 4), [soft.Soft(base, "probit", 0.5)])
    x = torch.randn(6, 3, 4, dtype=DT, generator=torch.Generator().manual_seed(1))
    e = torch.tensor(eta, dtype=DT).reshape(3, 1)
    p = torch.special.ndtr((1 - e) * x / 0.5)
    _close(net(x), p * x + (1 - p) * e * x, rtol=1e-13)


# ----------------------------------------------------------------------------------------------- limits
def test_temperature_limits_hard_and_linear():
    g = torch.Generator().manual_seed(2)
    u = torch.randn(1000, dtype=DT, generator=g) * 3
    for gate in soft.GATES:
        hard = _apply(soft.Soft(relu(), gate, 1e-9), u)
        _close(hard, F.relu(u), rtol=0, atol=1e-12)
    _close(_apply(soft.beta_vq(relu(), 1e-12), u), u / 2, rtol=1e-9, atol=1e-12)   # mean of {0, u}
    _close(_apply(soft.beta_vq(absolute(), 1e-12), u), torch.zeros_like(u), rtol=0, atol=1e-9)
    pool = soft.Soft(MaxPool(1, 4, 4), "logistic", 1e9)
    x = torch.randn(3, 2, 8, dtype=DT, generator=g)
    _close(maso.Network.sequential((2, 8), [pool])(x), F.avg_pool1d(x, 4, 4), rtol=1e-8, atol=1e-9)


def test_soften_network_limits():
    net = maso.mlp([3, 8, 8, 2], seed=4)
    x = np.random.default_rng(0).normal(size=(50, 3))
    assert np.allclose(soft.soften(net, beta=1 - 1e-12)(x), net(x), atol=1e-9)
    lin = soft.soften(net, beta=1e-12)
    f1, f2 = lin.expected_affine_at(x[0]), lin.expected_affine_at(x[1])
    assert np.allclose(f1.A, f2.A, atol=1e-9) and np.allclose(f1.b, f2.b, atol=1e-9)
    # every ReLU became u/2: compose the halved linear maps directly
    W = [lay.weight for lay in (n.layer for n in net.nodes[1:]) if isinstance(lay, Dense)]
    b = [lay.bias for lay in (n.layer for n in net.nodes[1:]) if isinstance(lay, Dense)]
    z = x.T
    for i in range(3):
        z = W[i] @ z + b[i][:, None]
        if i < 2:
            z = z / 2
    assert np.allclose(lin(x), z.T, atol=1e-9)
    hard = soft.harden(soft.soften(net, temperature=0.3))
    assert np.array_equal(hard(x), net(x))


# ----------------------------------------------------------------------------------- networks and codes
def _gelu_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.GELU(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2)).to(DT)


def test_soft_codes_layout_and_hard_codes():
    net = maso.from_torch(_gelu_mlp(), torch.zeros(1, 3, dtype=DT))
    x = np.random.default_rng(1).normal(size=(40, 3)) * 2
    p = net.soft_codes(x)
    assert p.shape == (40, net.n_units, 2)
    assert np.allclose(p.sum(-1), 1)
    c = net.codes(x)
    assert np.array_equal(c, (p[..., 1] > 0.5).astype(np.uint8))
    # the hard code thresholds each layer's own pre-activation at 0
    acts = net.activations(x)
    pre = np.concatenate([acts[net.nodes[net.nodes[g.node].inputs[0]].name] for g in net.units], axis=1)
    assert np.array_equal(c, (pre > 0).astype(np.uint8))
    by = net.soft_codes(x, by_layer=True)
    assert list(by) == [g.name for g in net.units] and by[net.units[0].name].shape == (40, 6, 2)
    # a piecewise-linear network's soft codes are its one-hot hard codes
    hard = maso.mlp([3, 5, 1], seed=0)
    ph = hard.soft_codes(x)
    assert np.array_equal(ph.argmax(-1), hard.codes(x)) and set(np.unique(ph)) <= {0.0, 1.0}
    # mixed max-pool and soft units: the code axis has the largest piece count, missing pieces are 0
    mixed = maso.Network.sequential((1, 4, 4), [MaxPool(2, 2, 2), soft.gelu()])
    pm = mixed.soft_codes(np.random.default_rng(2).normal(size=(3, 1, 4, 4)))
    assert pm.shape == (3, 8, 4) and np.all(pm[:, 4:, 2:] == 0)


def test_expected_affine_map_reproduces_the_network_and_matches_autograd_structure():
    model = _gelu_mlp(3)
    net = maso.from_torch(model, torch.zeros(1, 3, dtype=DT))
    x = torch.randn(8, 3, dtype=DT, generator=torch.Generator().manual_seed(3))
    f = net.expected_affine_at(x)
    _close(torch.einsum("nmd,nd->nm", f.A, x) + f.b, model(x), rtol=1e-12, atol=1e-13)
    # not the Jacobian: the gates' derivatives are left out
    J = torch.func.vmap(torch.func.jacrev(model))(x).detach()
    assert float((J - f.A).abs().max()) > 1e-3
    op = net.expected_affine_at(x, dense=False)
    v = torch.randn(8, 3, dtype=DT)
    _close(op.jvp(v), torch.einsum("nmd,nd->nm", f.A, v), rtol=1e-12, atol=1e-13)
    w = torch.randn(8, 2, dtype=DT)
    _close(op.vjp(w), torch.einsum("nmd,nm->nd", f.A, w), rtol=1e-12, atol=1e-13)


def test_expected_affine_map_is_the_expectation_of_hard_region_maps():
    """Brute force: sum over all 2^N codes of P(code) * (hard map of that code) == expected map (independent
    units, probabilities from the soft forward pass at x)."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(2, 3), nn.SiLU(), nn.Linear(3, 3), nn.GELU(), nn.Linear(3, 1)).to(DT)
    net = maso.from_torch(model, torch.zeros(1, 2, dtype=DT))
    x = np.array([0.3, -0.8])
    f = net.expected_affine_at(x)
    p1 = net.soft_codes(x)[:, 1]
    W = [model[0], model[2], model[4]]
    Ws = [m.weight.detach().numpy() for m in W]
    bs = [m.bias.detach().numpy() for m in W]
    EA, Eb = np.zeros((1, 2)), np.zeros(1)
    for code in itertools.product([0, 1], repeat=6):
        q = np.array(code)
        prob = np.prod(np.where(q == 1, p1, 1 - p1))
        D1, D2 = np.diag(q[:3]), np.diag(q[3:])
        A = Ws[2] @ D2 @ Ws[1] @ D1 @ Ws[0]
        b = Ws[2] @ D2 @ (Ws[1] @ D1 @ bs[0] + bs[1]) + bs[2]
        EA += prob * A
        Eb += prob * b
    assert np.allclose(f.A, EA, atol=1e-13) and np.allclose(f.b, Eb, atol=1e-13)


def test_hf_style_activation_modules_and_gpt2_mlp_block():
    class NewGELUActivation(nn.Module):  # transformers' GPT-2 activation, same name and formula
        def forward(self, x):
            return 0.5 * x * (1.0 + torch.tanh((2.0 / torch.pi) ** 0.5 * (x + 0.044715 * torch.pow(x, 3.0))))

    class QuickGELUActivation(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(1.702 * x)

    class MLP(nn.Module):  # the GPT-2 MLP block (c_fc -> gelu_new -> c_proj), small
        def __init__(self, act):
            super().__init__()
            self.c_fc, self.act, self.c_proj = nn.Linear(8, 32), act, nn.Linear(32, 8)

        def forward(self, h):
            return self.c_proj(self.act(self.c_fc(h)))

    for act in (NewGELUActivation(), QuickGELUActivation()):
        torch.manual_seed(0)
        model = MLP(act).to(DT)
        net = maso.from_torch(model, torch.zeros(1, 8, dtype=DT))
        h = torch.randn(64, 8, dtype=DT) * 3
        with torch.no_grad():
            _close(net(h), model(h), rtol=1e-12, atol=1e-13)
        pre = model.c_fc(h)
        assert torch.equal(net.codes(h).bool(), pre > 0)
        # a sub-network from the MLP's hidden layer: codes of everything after it
        assert net.subnetwork(start="act").n_units == 0


def test_functional_soft_units_convert():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)

        def forward(self, x):
            h = self.fc(x)
            return F.gelu(h, approximate="tanh") + torch.tanh(h) - h.sigmoid() + F.silu(h) + F.gelu(h)

    model = Block().to(DT)
    net = maso.from_torch(model, torch.zeros(1, 3, dtype=DT))
    x = torch.randn(30, 3, dtype=DT)
    _close(net(x), model(x), rtol=1e-13, atol=1e-14)
    assert net.n_units == 20 and not net.is_piecewise_linear


# ------------------------------------------------------------------------------------------------ errors
def test_typed_errors():
    with pytest.raises(maso.errors.ParameterError, match="beta"):
        soft.temperature_of(1.0)
    with pytest.raises(maso.errors.ParameterError, match="beta"):
        soft.beta_vq(relu(), 0)
    with pytest.raises(maso.errors.ParameterError, match="beta"):
        soft.silu(float("nan"))
    with pytest.raises(maso.errors.ParameterError, match="temperature"):
        soft.Soft(relu(), "logistic", 0.0)
    with pytest.raises(maso.errors.ParameterError, match="temperature"):
        soft.gelu(temperature=-1)
    with pytest.raises(maso.errors.ParameterError, match="gate"):
        soft.Soft(relu(), "cauchy")
    with pytest.raises(maso.errors.ParameterError, match="two-piece"):
        soft.Soft(Maxout(3), "probit")
    with pytest.raises(maso.errors.ParameterError, match="approximate"):
        soft.gelu("erf")
    with pytest.raises(maso.errors.ShapeError, match="readout"):
        soft.Soft(relu(), readout=(0.0, 1.0, 2.0))
    with pytest.raises(maso.errors.UnsupportedLayerError, match="base"):
        soft.Soft(maso.layers.MASOLayer(np.zeros((1, 2, 1)), np.zeros((1, 2))))
    with pytest.raises(maso.errors.ParameterError, match="exactly one"):
        soft.soften(maso.mlp([2, 2, 1], seed=0))
    net = maso.from_torch(_gelu_mlp(), torch.zeros(1, 3, dtype=DT))
    x = np.zeros(3)
    for call in (lambda: net.affine_at(x), lambda: net.region_at(x), lambda: net.maso_layers(),
                 lambda: maso.enumerate_regions(net, maso.Box(-np.ones(3), np.ones(3))),
                 lambda: maso.segment_crossings(net, x, x + 1), lambda: maso.ray_crossings(net, x + 1),
                 lambda: maso.slice_regions(net, maso.Plane(x, np.eye(3)[0], np.eye(3)[1]))):
        with pytest.raises(maso.errors.UnsupportedLayerError, match="soft spline layer") as e:
            call()
        assert e.value.path == "1"
    with pytest.raises(maso.errors.UnsupportedLayerError, match="step function"):
        soft.harden(net)
    with pytest.raises(maso.errors.ShapeError):
        net.soft_codes(np.zeros(4))


def test_expected_maps_through_soft_pooling_maxout_and_residuals():
    torch.manual_seed(6)
    conv = maso.layers.Conv(np.random.default_rng(0).normal(size=(4, 1, 3, 3)), np.zeros(4), stride=1, padding=1)
    spec = [("conv", conv, ["input"]), ("act", soft.gelu(), ["conv"]),
            ("pool", soft.Soft(MaxPool(2, 2, 2), "logistic", 0.5), ["act"]),
            ("flat", maso.layers.Reshape((64,)), ["pool"]),
            ("fc", Dense(np.random.default_rng(1).normal(size=(6, 64)), np.zeros(6)), ["flat"]),
            ("mo", soft.Soft(Maxout(3), "logistic", 0.3), ["fc"]),
            ("fc2", Dense(np.random.default_rng(2).normal(size=(2, 2)), np.ones(2)), ["mo"]),
            ("res", maso.layers.Sum((1.0, 1.0)), ["fc2", "mo"])]
    net = maso.Network.from_graph((1, 8, 8), spec)
    x = np.random.default_rng(3).normal(size=(3, 1, 8, 8))
    f = net.expected_affine_at(x)
    np.testing.assert_allclose(np.einsum("nmd,nd->nm", f.A, x.reshape(3, -1)) + f.b, net(x), rtol=1e-11, atol=1e-12)
    op = net.expected_affine_at(x, dense=False)
    v = np.random.default_rng(4).normal(size=(3, 64))
    np.testing.assert_allclose(op.jvp(v), np.einsum("nmd,nd->nm", f.A, v), rtol=1e-11, atol=1e-12)
    p = net.soft_codes(x, by_layer=True)
    assert p["pool"].shape == (3, 4, 4, 4, 4) and p["mo"].shape == (3, 2, 3)
    assert np.allclose(p["pool"].sum(-1), 1) and np.allclose(p["mo"].sum(-1), 1)


def test_soft_codes_at_a_temperature_on_the_networks_own_preactivations():
    """The temperature family p_tau(u) = Phi(u / tau) of a GELU network: the network is unchanged, tau = 1 is its
    own code, tau -> 0 the hard code; for a hard network, tau gives the softmax of its piece scores."""
    net = maso.from_torch(_gelu_mlp(7), torch.zeros(1, 3, dtype=DT))
    x = np.random.default_rng(5).normal(size=(25, 3)) * 2
    np.testing.assert_array_equal(net.soft_codes(x, temperature=1.0), net.soft_codes(x))
    acts = net.activations(x)
    u1 = acts[net.nodes[net.nodes[net.units[0].node].inputs[0]].name]
    from scipy.special import ndtr

    p = net.soft_codes(x, temperature=0.3, by_layer=True)[net.units[0].name]
    np.testing.assert_allclose(p[..., 1], ndtr(u1 / 0.3), rtol=1e-13, atol=1e-300)
    cold = net.soft_codes(x, temperature=1e-12)
    np.testing.assert_array_equal(cold.argmax(-1), net.codes(x))
    hard = maso.mlp([3, 6, 6, 1], seed=3)
    pre = hard.activations(x)
    ph = hard.soft_codes(x, temperature=0.5, by_layer=True)["3"]
    z = pre["2"]  # input of the second ReLU layer
    np.testing.assert_allclose(ph[..., 1], 1 / (1 + np.exp(-z / 0.5)), rtol=1e-12)
    with pytest.raises(maso.errors.ParameterError, match="temperature"):
        net.soft_codes(x, temperature=0)


def test_tiny_probabilities_keep_full_precision():
    """Probit and logistic gates in the far tails: each side computed directly (torch.special.ndtr(-10) is 0)."""
    from scipy.special import expit, ndtr

    u = torch.tensor([-40.0, -20.0, -10.0, -6.0, 6.0, 10.0, 20.0], dtype=DT)
    for layer, ref in ((soft.gelu(), ndtr), (soft.silu(), expit)):
        p = maso.Network.sequential((7,), [layer]).soft_codes(u)
        np.testing.assert_allclose(p[:, 1].numpy(), ref(u.numpy()), rtol=1e-13, atol=0)
        np.testing.assert_allclose(p[:, 0].numpy(), ref(-u.numpy()), rtol=1e-13, atol=0)


@pytest.mark.parametrize("gate", ["logistic", "probit", "tanh"])
def test_the_stacked_gate_and_expected_forward_differentiate(gate):
    """Written in place (``out=``), the gate would refuse inputs that require gradients: under autograd it stacks
    the two sides, so a layer called directly on such an input (a user differentiating soft codes) gets the same
    probabilities and their gradient."""
    from maso import _gates

    d = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
    both = _gates.two_piece_stacked(gate, d)
    t0, t1 = _gates.two_piece_probabilities(gate, d.detach())
    assert torch.equal(both[..., 0].detach(), t0) and torch.equal(both[..., 1].detach(), t1)
    (grad,) = torch.autograd.grad(both[..., 1].sum(), d)
    dens = {"logistic": t1 * t0, "probit": torch.exp(-d.detach() ** 2 / 2) / np.sqrt(2 * np.pi)}
    if gate in dens:  # the derivative of each gate's upper probability, in closed form
        torch.testing.assert_close(grad, dens[gate], rtol=1e-12, atol=1e-15)
    layer = {"logistic": soft.silu(), "probit": soft.gelu(), "tanh": soft.gelu("tanh")}[gate]
    x = torch.linspace(-2, 2, 10, dtype=torch.float64).reshape(2, 5).requires_grad_()
    y, probs = layer.expected_forward(x, {})
    assert probs.shape == (2, 5, 2) and probs.requires_grad
    torch.autograd.grad(y.sum() + probs[..., 1].sum(), x)
