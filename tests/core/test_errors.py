"""Bad input gets a typed error that names what was wrong and what was expected."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import maso


class Block(nn.Module):
    def __init__(self, act: nn.Module):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = act

    def forward(self, x):
        return self.act(self.fc(x))


@pytest.mark.parametrize(
    "act, kind, hint",
    [
        (nn.Softplus(), "Softplus", "smooth"),
        (nn.ELU(), "ELU", "smooth"),
        (nn.Softmax(dim=-1), "Softmax", "smooth"),
        (nn.LayerNorm(4), "LayerNorm", "statistic of its own input"),
        (nn.Softshrink(), "Softshrink", "does not convert it yet"),
        (nn.Hardshrink(), "Hardshrink", "discontinuous"),
    ],
)
def test_non_piecewise_affine_modules_are_named_with_their_path(act, kind, hint):
    model = nn.Sequential(nn.Linear(4, 4), Block(act)).eval()
    with pytest.raises(maso.errors.UnsupportedLayerError, match=hint) as info:
        maso.from_torch(model, torch.zeros(1, 4))
    assert info.value.kind == kind
    assert info.value.path == "1.act"
    assert "'1.act'" in str(info.value) and "Supported:" in str(info.value)
    assert isinstance(info.value, TypeError)  # typed, and still a TypeError for generic handlers


def test_attention_and_functional_products_are_refused():
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(4, 4)

        def forward(self, x):
            return self.q(x) * x

    with pytest.raises(maso.errors.UnsupportedLayerError, match="product of two activations"):
        maso.from_torch(Attn().eval(), torch.zeros(1, 4))
    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(4, 1, batch_first=True)

        def forward(self, x):
            return self.mha(x, x, x)[0]

    with pytest.raises(maso.errors.UnsupportedLayerError, match="MultiheadAttention at 'mha' multiplies activations"):
        maso.from_torch(SelfAttention().eval(), torch.zeros(1, 2, 4))

    class Softplus(nn.Module):
        def forward(self, x):
            return torch.nn.functional.softplus(x)

    with pytest.raises(maso.errors.UnsupportedLayerError, match="softplus at 'softplus'"):
        maso.from_torch(Softplus(), torch.zeros(1, 4))


def test_training_mode_and_bad_weights():
    bn = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    with pytest.raises(maso.errors.TrainingModeError, match=r"BatchNorm1d at '1' is in training mode.*model.eval\(\)"):
        maso.from_torch(bn, torch.zeros(2, 3))
    drop = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    with pytest.raises(maso.errors.TrainingModeError, match="Dropout at '1'"):
        maso.from_torch(drop, torch.zeros(2, 3))
    nostats = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False)).eval()
    with pytest.raises(maso.errors.TrainingModeError, match="no running statistics"):
        maso.from_torch(nostats, torch.zeros(2, 3))
    bad = nn.Sequential(nn.Linear(3, 3)).eval()
    with torch.no_grad():
        bad[0].weight[1, 2] = float("nan")
    with pytest.raises(maso.errors.InvalidWeightsError, match=r"'0.weight' holds 1 NaN"):
        maso.from_torch(bad, torch.zeros(1, 3))
    assert issubclass(maso.errors.InvalidWeightsError, ValueError)


def test_example_input_and_module_checks():
    model = nn.Sequential(nn.Linear(3, 2)).eval()
    with pytest.raises(maso.errors.ShapeError, match=r"example_input of shape \(1, 5\) does not fit"):
        maso.from_torch(model, torch.zeros(1, 5))
    with pytest.raises(maso.errors.ShapeError, match="batch of shape"):
        maso.from_torch(model, torch.zeros(3))
    with pytest.raises(maso.errors.ConversionError, match="needs a torch.nn.Module"):
        maso.from_torch(lambda x: x, torch.zeros(1, 3))
    net = maso.from_torch(model, (3,))  # a shape tuple works as example input
    assert net.input_shape == (3,)

    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x

    with pytest.raises(maso.errors.ConversionError, match="could not trace"):
        maso.from_torch(Branchy(), torch.zeros(1, 3))

    class BatchMixer(nn.Module):
        def forward(self, x):
            return torch.cat([x, x], dim=0)

    with pytest.raises(maso.errors.ConversionError, match="batch axis"):
        maso.from_torch(BatchMixer(), torch.zeros(1, 3))


def test_network_call_checks():
    net = maso.mlp([3, 4, 2], seed=0)
    with pytest.raises(maso.errors.ShapeError, match=r"shape \(3,\) \(one input\) or \(n, 3\)"):
        net(np.zeros((2, 4)))
    with pytest.raises(maso.errors.ShapeError, match="float32 or float64"):
        net(torch.zeros(2, 3, dtype=torch.float16))
    with pytest.raises(maso.errors.ShapeError, match="NaN or infinite"):
        net.codes(np.array([0.0, np.nan, 1.0]))
    for bad in (np.inf, -np.inf):
        with pytest.raises(maso.errors.ShapeError, match="NaN or infinite"):
            net.codes(np.array([[0.0, 1.0, 2.0], [bad, 1.0, 2.0]]))
    huge = np.array([1.5e308, 1.5e308, 0.0])  # finite, but its sum overflows: the exact test accepts it
    assert net.codes(huge).shape == (4,) and net.codes(np.stack([huge, -huge])).shape == (2, 4)
    with pytest.raises(maso.errors.ShapeError, match="NaN or infinite"):
        net.codes(np.array([[1.5e308, 1.5e308, 0.0], [np.inf, 0.0, 0.0]]))
    with pytest.raises(maso.errors.ShapeError, match="real numeric"):
        net(np.array(["a", "b", "c"]))
    assert net(np.zeros(3, dtype=np.int64)).dtype == np.float64  # integers are promoted
    assert net(np.zeros(3, dtype=np.float32)).dtype == np.float32


def test_layer_constructor_checks():
    with pytest.raises(maso.errors.ShapeError, match="weight of shape"):
        maso.layers.Dense(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(maso.errors.ShapeError, match="n_units, n_pieces"):
        maso.layers.MASOLayer(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(maso.errors.ShapeError, match="does not accept input shape"):
        maso.Network.sequential((3,), [maso.layers.Dense(np.zeros((2, 4)), np.zeros(2))])
    with pytest.raises(maso.errors.ShapeError, match="unknown node"):
        maso.Network.from_graph((3,), [("a", maso.layers.relu(), ["nope"])])
    with pytest.raises(maso.errors.ShapeError, match="Polytope needs"):
        maso.Polytope(np.zeros((2, 3)), np.zeros(3))


def test_core_types_are_immutable():
    W = np.eye(2)
    layer = maso.layers.Dense(W, np.zeros(2))
    W[0, 0] = 5.0  # the caller's array is copied
    assert layer.weight[0, 0] == 1.0
    with pytest.raises(ValueError):
        layer.weight[0, 0] = 3.0
    with pytest.raises(AttributeError):
        layer.weight = np.zeros((2, 2))  # type: ignore[misc]
    P = maso.mlp([2, 3, 1], seed=0).region_at(np.zeros(2))
    with pytest.raises(ValueError):
        P.A[0, 0] = 1.0
    f = maso.mlp([2, 3, 1], seed=0).affine_at(np.zeros(2))
    with pytest.raises(ValueError):
        f.A[0, 0] = 1.0


# ------------------------------------------------------------------------------------ from_torch, the classes
@pytest.mark.parametrize("module, example, kind, says", [
    (nn.LSTM(4, 8), torch.randn(3, 2, 4), "LSTM", "recurrent"),
    (nn.GRU(4, 8, batch_first=True), torch.randn(2, 3, 4), "GRU", "recurrent"),
    (nn.RNN(4, 8), torch.randn(3, 2, 4), "RNN", "recurrent"),
    (nn.LayerNorm(4), torch.randn(2, 4), "LayerNorm", "statistic of its own input"),
    (nn.MultiheadAttention(4, 1), torch.randn(3, 4), "MultiheadAttention", "multiplies activations"),
    (nn.Embedding(10, 4), torch.zeros(2, 3), "Embedding", "integer tokens"),
])
def test_a_bare_refused_module_is_named_not_blamed_on_tracing(module, example, kind, says, capfd):
    """A bare nn.LSTM was a tracing complaint about data-dependent control flow (bad_inputs #40)."""
    with pytest.raises(maso.errors.UnsupportedLayerError, match=f"{kind} \\(the model itself\\).*{says}") as info:
        maso.from_torch(module.eval(), example)
    assert info.value.kind == kind and info.value.path == ""
    assert capfd.readouterr().err == ""


def test_a_user_class_named_like_a_torch_module_is_traced():
    class LSTM(nn.Module):  # piecewise affine, whatever its name
        def forward(self, x):
            return torch.relu(x)

    assert maso.from_torch(LSTM(), torch.zeros(1, 3)).n_units == 3


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_weights_are_named_by_dtype(dtype, capfd):
    """Complex weights blamed the example input, and torch.fx printed a traceback to stderr (bad_inputs #53)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: complex modules are experimental
        model = nn.Sequential(nn.Linear(2, 8), nn.ReLU()).to(dtype).eval()
    name = str(dtype).replace("torch.", "")
    with pytest.raises(maso.errors.InvalidWeightsError, match=f"'0.weight' has dtype {name}.*real floating-point"):
        maso.from_torch(model, torch.zeros(1, 2))
    assert capfd.readouterr().err == ""


def test_mixed_parameter_dtypes_are_a_conversion_error():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1).double()).eval()
    with pytest.raises(maso.errors.ConversionError, match=r"mix dtypes \['float32', 'float64'\].*model.double\(\)"):
        maso.from_torch(model, torch.zeros(1, 2))


@pytest.mark.parametrize("example, says", [
    (torch.zeros(0, 2), r"shape \(0, 2\) is empty.*at least one sample"),          # bad_inputs #54
    (np.zeros((0, 2)), r"shape \(0, 2\) is empty.*at least one sample"),
    (torch.zeros(1, 0), r"shape \(1, 0\) is empty"),
    (torch.zeros(1, 2, dtype=torch.complex64), "real numbers. Got dtype complex64"),
    (np.zeros((1, 2), dtype=complex), "real numbers. Got dtype complex128"),
    (torch.zeros(1, 2, dtype=torch.bool), "real numbers. Got dtype bool"),
    ("abc", "real numbers"),
    (None, "real numbers"),
    ([[1.0, 2.0], [3.0]], "tensor or array"),
    (torch.tensor([[0.0, float("nan")]]), "NaN or infinite"),
    ((-2,), "positive sizes"),
    ((2, 0), "positive sizes"),
])
def test_example_input_classes(example, says, capfd):
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU()).eval()
    with pytest.raises(maso.errors.ShapeError, match=says):
        maso.from_torch(model, example)
    assert capfd.readouterr().err == ""


def test_an_example_that_does_not_fit_says_why_without_a_traceback(capfd):
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU()).eval()
    with pytest.raises(maso.errors.ShapeError, match=r"\(1, 3\) does not fit Sequential: RuntimeError: mat1 and mat2"):
        maso.from_torch(model, torch.zeros(1, 3))
    assert capfd.readouterr().err == ""  # torch.fx's ShapeProp prints the node's traceback; maso keeps it quiet
    assert maso.from_torch(model, torch.zeros(1, 2, dtype=torch.int64)).n_units == 8  # integers are values


@pytest.mark.parametrize("kwargs, error, says", [
    (dict(seed=-1), maso.errors.ParameterError, "'seed' parameter of maso.mlp"),
    (dict(seed=2**64), maso.errors.ParameterError, "'seed'"),
    (dict(seed=1.5), maso.errors.ParameterError, "'seed'"),
    (dict(seed=True), maso.errors.ParameterError, "'seed'"),
    (dict(widths=[2]), maso.errors.ParameterError, "at least two positive integers"),
    (dict(widths=[2, 0, 1]), maso.errors.ParameterError, "at least two positive integers"),
    (dict(widths=[2, 2.5, 1]), maso.errors.ParameterError, "at least two positive integers"),
    (dict(widths=[2, True, 1]), maso.errors.ParameterError, "at least two positive integers"),
    (dict(widths="21"), maso.errors.ParameterError, "at least two positive integers"),
])
def test_mlp_arguments(kwargs, error, says):
    args = dict(widths=[2, 3, 1], seed=0) | kwargs
    with pytest.raises(error, match=says):
        maso.mlp(args.pop("widths"), **args)
    assert maso.mlp([2, 3, 1], seed=2**64 - 1).n_units == 3


@pytest.mark.parametrize("call, says", [
    (lambda: maso.mlp([2], seed=0), "at least two positive integers"),
    (lambda: maso.nn.mlp_module([2, 0, 1], seed=0), "positive sizes"),
    (lambda: maso.nn.mlp_module([2, 3, 1], seed=0, activation="gelu"), "activation must be one of"),
    (lambda: maso.nn.Maxout(0), "pieces >= 1"),
    (lambda: maso.Polytope(np.array([[np.inf, 1.0]]), np.ones(1)), "constraints must be finite"),
    (lambda: maso.exact.from_weights([([[1, -1]], [0]), ([[2]], [1])]).affine_map([2]), "a piece a unit"),
])
def test_out_of_range_settings_are_parameter_errors_and_still_shape_errors(call, says):
    """Wrong values (not wrong shapes) are ParameterErrors; they were ShapeErrors before, and still are
    (ParameterShapeError), so that `except ShapeError` written then keeps working."""
    with pytest.raises(maso.errors.ParameterError, match=says) as caught:
        call()
    assert isinstance(caught.value, maso.errors.ShapeError)


def test_from_torch_rtol_is_checked():
    model = nn.Sequential(nn.Linear(2, 3)).eval()
    for bad in (-1, 0, float("nan"), "1e-4", True):
        with pytest.raises(maso.errors.ParameterError, match="'rtol' parameter of from_torch"):
            maso.from_torch(model, torch.zeros(1, 2), rtol=bad)


def test_a_model_whose_own_float32_output_overflows_is_a_conversion_error():
    """Weights times 1e30 overflow float32 inside the model itself: a typed error that says so (not a bare
    RuntimeError from the comparison's NaN tolerance), and the float64 copy converts."""
    m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1e30)
    with pytest.raises(maso.errors.ConversionError, match="not finite.*model.double"):
        maso.from_torch(m, torch.zeros(1, 2))
    net = maso.from_torch(m.double(), torch.zeros(1, 2, dtype=torch.float64))
    assert net.n_units == 16


def test_a_thin_domain_is_refused_before_a_checkpoint_is_made(tmp_path):
    net = maso.mlp([2, 4, 1], seed=0)
    ck = tmp_path / "thin.ckpt"
    with pytest.raises(maso.errors.DomainError):
        maso.enumerate_regions(net, maso.Box([0, 0], [1, 1e-11]), checkpoint=ck)
    assert not ck.exists()
