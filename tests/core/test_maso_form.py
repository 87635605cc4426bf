"""The canonical MASO form: per-unit codes are the joint power-diagram code (theory.md 1.4), and a chain of
dense MASO layers reproduces the network."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from archs import random_inputs, random_model
from hypothesis import given, settings, strategies as st

import maso


def _power_diagram_code(A: np.ndarray, B: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Brute force over all R^K joint codes t: argmin ||x - mu_t||^2 - rad_t (theory.md 1.4)."""
    K, R, _ = A.shape
    best, best_t = np.inf, None
    for t in itertools.product(range(R), repeat=K):
        mu = sum(A[k, t[k]] for k in range(K))
        rad = mu @ mu + 2 * sum(B[k, t[k]] for k in range(K))
        v = (x - mu) @ (x - mu) - rad
        if v < best - 1e-12:
            best, best_t = v, t
    return np.array(best_t)


@settings(max_examples=200)
@given(K=st.integers(1, 3), R=st.integers(1, 3), D=st.integers(1, 3), seed=st.integers(0, 2**20))
def test_layer_codes_equal_power_diagram(K, R, D, seed):
    """Property: one MASO layer's hard codes equal the power-diagram cell of x."""
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(K, R, D)), rng.normal(size=(K, R))
    net = maso.Network.sequential((D,), [maso.layers.MASOLayer(A, B)])
    xs = rng.normal(size=(5, D)) * 2
    codes = net.codes(xs)
    for x, c in zip(xs, codes):
        np.testing.assert_array_equal(c, _power_diagram_code(A, B, x))
    np.testing.assert_allclose(net(xs), np.max(np.einsum("krd,nd->nkr", A, xs) + B, axis=2), rtol=1e-12)


@settings(max_examples=100)
@given(seed=st.integers(0, 2**20))
def test_chain_of_dense_masos_reproduces_network(seed):
    """Property: maso_layers() composes to the network and its codes are the network's codes
    (for chains of Linear/Conv/pooling with ReLU, leaky, abs, PReLU, maxout and max-pool units)."""
    module, shape, _kind = random_model(seed, kind=["mlp", "cnn"][seed % 2])
    net = maso.from_torch(module, torch.zeros(1, *shape, dtype=torch.float64))
    concave = any(np.any(g.layer.sign != 1) for g in net.nodes[1:] if isinstance(g.layer, maso.layers.Elementwise))
    if concave:  # a leaky ReLU with slope > 1 is a min, not a max: no max-affine form (checked below)
        return
    layers = net.maso_layers()
    chain = maso.Network.sequential((net.input_dim,), layers)
    x = random_inputs(seed, shape, 6)
    flat = x.reshape(6, -1)
    np.testing.assert_allclose(chain(flat), net(x).reshape(6, -1), rtol=1e-10, atol=1e-10)
    # Codes agree layer by layer; max-pool windows partly in the padding agree too.
    want = net.codes(x)
    got = chain.codes(flat)
    np.testing.assert_array_equal(got[:, : want.shape[1]], want)
    for layer in layers[:-1] if layers and layers[-1].n_pieces == 1 else layers:
        assert layer.A.ndim == 3


def test_concave_units_have_no_max_affine_form():
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LeakyReLU(2.0)).double().eval()
    net = maso.from_torch(module, torch.zeros(1, 2, dtype=torch.float64))
    x = np.random.default_rng(0).normal(size=(20, 2))
    np.testing.assert_allclose(net(x), module(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)
    try:
        net.maso_layers()
    except maso.errors.ShapeError as e:
        assert "concave" in str(e)
    else:  # pragma: no cover
        raise AssertionError("expected ShapeError")
