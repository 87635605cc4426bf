"""Sub-networks: codes, maps and regions in the input space of an intermediate layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from archs import autograd_reference

import maso


def _seq_model(seed: int) -> torch.nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(3, 2, 3), torch.nn.LeakyReLU(0.1), torch.nn.Flatten(),
            torch.nn.Linear(2 * 2 * 2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3),
        ).double().eval()
    return model


@pytest.mark.parametrize("cut", [1, 2, 4, 7])
def test_tail_subnetwork_matches_torch_tail(cut):
    """Property: the sub-network after module `cut` equals the torch modules after it: outputs, codes of the
    later layers, and the autograd Jacobian in the intermediate space."""
    model = _seq_model(cut)
    net = maso.from_torch(model, torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    tail = net.subnetwork(start=str(cut))
    x = np.random.default_rng(cut).normal(size=(4, 1, 8, 8))
    h = net.activations(x, [str(cut)])[str(cut)]
    np.testing.assert_allclose(tail(h), net(x), rtol=1e-12, atol=1e-12)
    full = net.codes(x, by_layer=True)
    sub = tail.codes(h, by_layer=True)
    assert set(sub) == {g.name for g in net.units if int(g.name) > cut}
    for name, c in sub.items():
        np.testing.assert_array_equal(c, full[name])
    torch_tail = autograd_reference(model[cut + 1:])
    for i in range(2):
        J = torch.autograd.functional.jacobian(
            lambda v: torch_tail(v.reshape(1, *h.shape[1:])).reshape(-1), torch.from_numpy(h[i]).reshape(-1))
        np.testing.assert_allclose(tail.affine_at(h[i]).A, J.numpy(), rtol=1e-9, atol=1e-12)
        assert tail.region_at(h[i]).contains(h[i].reshape(-1))


def test_head_and_middle_subnetworks():
    model = _seq_model(0)
    net = maso.from_torch(model, torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8))
    head = net.subnetwork(stop="4")
    np.testing.assert_allclose(head(x), net.activations(x, ["4"])["4"], rtol=1e-12)
    middle = net.subnetwork(start="2", stop="5")
    h2 = net.activations(x, ["2"])["2"]
    np.testing.assert_allclose(middle(h2), net.activations(x, ["5"])["5"], rtol=1e-12)
    assert [g.name for g in middle.units] == ["4"]


def test_cut_inside_a_residual_block_is_refused():
    class Res(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 3)
            self.act = torch.nn.ReLU()
            self.out = torch.nn.Linear(3, 1)

        def forward(self, x):
            return self.out(self.act(self.fc(x)) + x)

    net = maso.from_torch(Res().double().eval(), torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(maso.errors.SubnetworkError, match="does not separate"):
        net.subnetwork(start="act")
    tail = net.subnetwork(start="add")  # after the whole block: fine
    assert tail.input_shape == (3,)
    with pytest.raises(maso.errors.SubnetworkError, match="No node named"):
        net.subnetwork(start="nope")
    with pytest.raises(maso.errors.SubnetworkError, match="does not depend"):
        net.subnetwork(start="out", stop="fc")
