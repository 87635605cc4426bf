"""maso.nn.inception_v1: InceptionV1 in the inception5h layout, its tails, its weights files and their conversion."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
from torch import nn

import maso
from maso.errors import SubnetworkError, WeightsFileError

MIXED = ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a", "mixed5b"]
LAYERS = ["conv2d0", "maxpool0", "localresponsenorm0", "conv2d1", "conv2d2", "localresponsenorm1", "maxpool1",
          "mixed3a", "mixed3b", "maxpool4", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "maxpool10",
          "mixed5a", "mixed5b", "avgpool0", "flatten", "softmax2_pre_activation"]
# (channels out, 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce) of the inception5h graph
CHANNELS = {"mixed3a": (256, 64, 96, 128, 16, 32, 32), "mixed3b": (480, 128, 128, 192, 32, 96, 64),
            "mixed4a": (508, 192, 96, 204, 16, 48, 64), "mixed4b": (512, 160, 112, 224, 24, 64, 64),
            "mixed4c": (512, 128, 128, 256, 24, 64, 64), "mixed4d": (528, 112, 144, 288, 32, 64, 64),
            "mixed4e": (832, 256, 160, 320, 32, 128, 128), "mixed5a": (832, 256, 160, 320, 48, 128, 128),
            "mixed5b": (1024, 384, 192, 384, 48, 128, 128)}


@pytest.fixture(scope="module")
def model64():
    return maso.nn.inception_v1(seed=0, dtype=torch.float64)


def _activations(model, x, names):
    """Outputs of the named modules of ``model`` on ``x`` (forward hooks)."""
    out, handles = {}, []
    modules = dict(model.named_modules())
    for name in names:
        handles.append(modules[name].register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, o)))
    try:
        with torch.no_grad():
            out["logits"] = model(x)
    finally:
        for h in handles:
            h.remove()
    return out


def _images(n, size, dtype, seed=0):
    """Images in the graph's value range (pixel values 0-255 minus 117)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=g, dtype=dtype) * 255 - 117)


# ------------------------------------------------------------------------------------------- layout and shapes
def test_layers_shapes_and_logits_at_224():
    model = maso.nn.inception_v1(seed=0)
    assert model.layer_names == tuple(LAYERS)
    acts = _activations(model, _images(1, 224, torch.float32), LAYERS)
    shapes = {name: tuple(acts[name].shape[1:]) for name in LAYERS}
    assert shapes == model.activation_shapes
    # spatial sizes 224 -> 112 -> 56 -> 28 -> 14 -> 7 (TensorFlow 'SAME' strided convolution and pools)
    assert [shapes[n][1] for n in ("conv2d0", "maxpool0", "maxpool1", "maxpool4", "maxpool10")] == [112, 56, 28, 14, 7]
    for name, (c, *_) in CHANNELS.items():
        assert shapes[name][0] == c
    assert acts["logits"].shape == (1, 1008) and torch.isfinite(acts["logits"]).all()
    assert not model.training


def test_logits_shape_batch_and_dtype():
    model = maso.nn.inception_v1(seed=3, dtype=torch.float64)
    y = model(_images(3, 64, torch.float64))
    assert y.shape == (3, 1008) and y.dtype == torch.float64
    assert not torch.allclose(y[0], y[1])  # depends on the image


def test_branches_named_as_in_the_graph(model64):
    names = dict(model64.named_modules())
    for mixed, (c_out, c1, c3r, c3, c5r, c5, cp) in CHANNELS.items():
        for branch, c in (("_1x1", c1), ("_3x3_bottleneck", c3r), ("_3x3", c3), ("_5x5_bottleneck", c5r),
                          ("_5x5", c5), ("_pool_reduce", cp)):
            conv = names[f"{mixed}.{branch}.conv"]
            assert isinstance(conv, nn.Conv2d) and conv.out_channels == c
            assert isinstance(names[f"{mixed}.{branch}.relu"], nn.ReLU)
        assert conv.kernel_size == (1, 1) and names[f"{mixed}._3x3.conv"].kernel_size == (3, 3)
        assert names[f"{mixed}._5x5.conv"].kernel_size == (5, 5)
        assert isinstance(names[f"{mixed}._pool"], nn.MaxPool2d)
        assert names[mixed].out_channels == c_out
    assert names["softmax2_pre_activation"].out_features == 1008
    for stem in ("conv2d0", "conv2d1", "conv2d2"):
        assert isinstance(names[f"{stem}.conv"], nn.Conv2d)


def test_same_padding_of_the_stem_is_tensorflows():
    """conv2d0 pads 2 left/top and 3 right/bottom (TF 'SAME', stride 2, even size); the stride-2 pools pad one
    -inf row and column at the right/bottom (ceil_mode)."""
    model = maso.nn.inception_v1(seed=0, dtype=torch.float64)
    x = _images(1, 16, torch.float64)
    conv = model.conv2d0.conv
    ref = torch.relu(torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 3, 2, 3)), conv.weight, conv.bias,
                                                stride=2))
    torch.testing.assert_close(model.conv2d0(x), ref, rtol=0, atol=0)
    a = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    ref = torch.nn.functional.max_pool2d(torch.nn.functional.pad(a, (0, 1, 0, 1), value=-np.inf), 3, 2)
    torch.testing.assert_close(model.maxpool0(a), ref, rtol=0, atol=0)


def test_lrn_is_tensorflows_formula():
    """LocalResponseNorm matches TF's ``x / (bias + alpha * sum(x[c-5 : c+6] ** 2)) ** beta`` with the graph's
    depth radius 5, bias 2, alpha 1e-4 and beta 0.5 (window clipped at the first and last channels)."""
    model = maso.nn.inception_v1(seed=0, dtype=torch.float64)
    x = torch.randn(2, 13, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 60
    r, bias, alpha, beta = 5, 2.0, 1e-4, 0.5
    ref = torch.empty_like(x)
    for c in range(x.shape[1]):
        sq = (x[:, max(0, c - r): c + r + 1] ** 2).sum(1)
        ref[:, c] = x[:, c] / (bias + alpha * sq) ** beta
    assert (ref - x).abs().max() > 1e-2 * x.abs().max()  # the normalisation is not negligible at these values
    for lrn in (model.localresponsenorm0, model.localresponsenorm1):
        assert isinstance(lrn, nn.LocalResponseNorm) and (lrn.size, lrn.beta, lrn.k) == (11, 0.5, 2.0)
        assert lrn.alpha == pytest.approx(1.1e-3, rel=1e-15)
        torch.testing.assert_close(lrn(x), ref, rtol=1e-13, atol=0)


def test_seeded_without_global_side_effects():
    state = torch.random.get_rng_state()
    a, b = maso.nn.inception_v1(seed=5), maso.nn.inception_v1(seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = maso.nn.inception_v1(seed=6)
    assert not torch.equal(a.mixed4a._3x3.conv.weight, c.mixed4a._3x3.conv.weight)
    d = maso.nn.inception_v1(seed=5, dtype=torch.float64)  # the same draws in every dtype
    assert all(torch.equal(p.double(), q) for p, q in zip(a.parameters(), d.parameters()))


def test_forward_traces_with_fx(model64):
    graph = torch.fx.symbolic_trace(model64)
    targets = {n.target for n in graph.graph.nodes if n.op == "call_module"}
    assert {"mixed4a._3x3.conv", "mixed4a._pool", "localresponsenorm0", "softmax2_pre_activation"} <= targets
    x = _images(2, 32, torch.float64)
    torch.testing.assert_close(graph(x), model64(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------- tails
def test_tail_after_each_layer_equals_the_models_forward(model64):
    """The tail after every layer, fed that layer's activation, gives the model's logits (and with ``upto``, the
    activation of ``upto``)."""
    x = _images(2, 112, torch.float64)
    acts = _activations(model64, x, LAYERS)
    for after in LAYERS[:-1]:
        tail = model64.tail(after=after)
        assert list(tail._modules) == LAYERS[LAYERS.index(after) + 1:]
        with torch.no_grad():
            torch.testing.assert_close(tail(acts[after]), acts["logits"], rtol=1e-12, atol=1e-15)
    with torch.no_grad():
        torch.testing.assert_close(model64.tail(after="maxpool4", upto="mixed4e")(acts["maxpool4"]), acts["mixed4e"],
                                   rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(model64.tail(after="mixed4a", upto="mixed4b")(acts["mixed4a"]), acts["mixed4b"],
                                   rtol=1e-12, atol=1e-15)


def test_tail_is_a_view_and_names_are_checked(model64):
    tail = model64.tail(after="mixed5a")
    assert tail.mixed5b is model64.mixed5b and not tail.training
    assert [n for n, _ in tail.named_parameters()][:2] == ["mixed5b._1x1.conv.weight", "mixed5b._1x1.conv.bias"]
    with pytest.raises(SubnetworkError, match="mixed9z"):
        model64.tail(after="mixed9z")
    with pytest.raises(SubnetworkError, match="branches inside a mixed layer"):
        model64.tail(after="mixed4a._3x3")
    with pytest.raises(SubnetworkError, match="must come after"):
        model64.tail(after="mixed4b", upto="mixed4a")
    with pytest.raises(SubnetworkError):
        model64.tail(after="softmax2_pre_activation")


def test_inception5_tail_is_the_tail_after_maxpool10():
    tail = maso.nn.inception5_tail(seed=2, dtype=torch.float64)
    assert list(tail._modules) == ["mixed5a", "mixed5b", "avgpool0", "flatten", "softmax2_pre_activation"]
    ref = maso.nn.inception_v1(seed=2, dtype=torch.float64).tail(after="maxpool10")
    x = torch.rand(2, 832, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        y = tail(x)
        assert y.shape == (2, 1008)
        torch.testing.assert_close(y, ref(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------- conversion
def _relu_codes(module, x):
    """Each ReLU's pre-activation > 0 in the torch module (an independent reading of the hard codes)."""
    out, handles = {}, []
    for name, m in module.named_modules():
        if isinstance(m, nn.ReLU):
            handles.append(m.register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, i[0] > 0)))
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return out


@pytest.mark.parametrize("after", ["mixed4e", "maxpool10"])
def test_tail_converts_exactly(model64, after):
    """The real-size tails after mixed4e and maxpool10 convert in float64: the network's outputs equal the
    module's, its ReLU codes equal the module's pre-activation signs, and the affine map of each region (as an
    operator, A is too large to form) reproduces the network at the point and at a nearby point of the same
    region."""
    tail = model64.tail(after=after)
    shape = model64.activation_shapes[after]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, *shape, dtype=torch.float64, generator=g) * 0.02  # activations: non-negative, at their scale
    net = maso.from_torch(tail, x[:1])
    assert net.input_shape == shape and net.output_shape == (1008,)
    with torch.no_grad():
        y = tail(x).numpy()
    np.testing.assert_allclose(net(x.numpy()), y, rtol=1e-9, atol=1e-12)
    codes = net.codes(x, by_layer=True)
    relu = _relu_codes(tail, x)
    assert set(relu) <= set(codes) and len(relu) == 12
    for name, active in relu.items():
        np.testing.assert_array_equal(np.asarray(codes[name]).astype(bool), active.numpy(), err_msg=name)
    flat = x.reshape(3, -1).numpy()
    op = net.affine_at(x.numpy(), dense=False)
    assert op.shape == (3, 1008, flat.shape[1])
    np.testing.assert_allclose(op.jvp(flat) + op.b, y, rtol=1e-9, atol=1e-12)
    near = flat + 1e-9 * np.random.default_rng(0).standard_normal(flat.shape)
    shaped = near.reshape(x.shape)
    same = (net.codes(shaped) == net.codes(x.numpy())).all(axis=1)
    assert same.any()
    np.testing.assert_allclose((op.jvp(near) + op.b)[same], net(shaped)[same], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("after", ["maxpool1", "mixed3a", "mixed3b", "maxpool4", "mixed4a", "mixed4b", "mixed4c",
                                   "mixed4d", "mixed5a", "mixed5b"])
def test_every_tail_converts(model64, after):
    """Every tail from maxpool1 on is piecewise affine and converts exactly (on the activations of 48x48 images,
    to keep it cheap: the layers do not depend on the size)."""
    x = _images(2, 48, torch.float64, seed=4)
    act = _activations(model64, x, [after])
    tail = model64.tail(after=after)
    net = maso.from_torch(tail, act[after][:1])
    np.testing.assert_allclose(net(act[after].numpy()), act["logits"].numpy(), rtol=1e-9, atol=1e-12)


def test_stem_is_refused_with_lrn_named(model64):
    with pytest.raises(maso.errors.UnsupportedLayerError, match="LocalResponseNorm"):
        maso.from_torch(model64.tail(after="maxpool0", upto="conv2d1"), torch.zeros(1, 64, 8, 8, dtype=torch.float64))


@pytest.mark.skipif("start" not in inspect.signature(maso.from_torch).parameters,
                    reason="from_torch has no start= yet")
def test_from_torch_start_matches_the_tail(model64):
    x = _images(1, 48, torch.float64, seed=5)
    act = _activations(model64, x, ["mixed4d"])
    net = maso.from_torch(model64, x, start="mixed4d")
    ref = maso.from_torch(model64.tail(after="mixed4d"), act["mixed4d"])
    assert net.input_shape == ref.input_shape and net.n_units == ref.n_units
    np.testing.assert_allclose(net(act["mixed4d"].numpy()), act["logits"].numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------- weights files
def _lucent_name(key):
    """maso's key in Lucent's naming, written out independently of maso's mapping."""
    layer, rest = key.split(".", 1)
    if layer == "softmax2_pre_activation":
        return f"softmax2_pre_activation_matmul.{rest}"
    parts = rest.split(".")
    if parts[0] == "conv":  # conv2d0.conv.weight
        return f"{layer}_pre_relu_conv.{parts[1]}"
    return f"{layer}{parts[0]}_pre_relu_conv.{parts[2]}"  # mixed3a._1x1.conv.weight


class NotATensor:
    pass


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_weights_round_trip(tmp_path):
    src = maso.nn.inception_v1(seed=7)
    path = tmp_path / "inception.pt"
    torch.save(src.state_dict(), path)
    for arg in (path, str(path), src.state_dict()):
        model = maso.nn.inception_v1(arg, seed=0)
        assert _same_weights(model, src) and not model.training
    x = _images(2, 64, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(maso.nn.inception_v1(path)(x), src(x), rtol=0, atol=0)
    model64 = maso.nn.inception_v1(path, dtype=torch.float64)  # cast on load
    assert model64.conv2d0.conv.weight.dtype == torch.float64
    assert torch.equal(model64.mixed5b._5x5.conv.weight, src.mixed5b._5x5.conv.weight.double())


def test_lucent_names_load(tmp_path):
    src = maso.nn.inception_v1(seed=8)
    lucent = {_lucent_name(k): v for k, v in src.state_dict().items()}
    assert "mixed3a_1x1_pre_relu_conv.weight" in lucent and "conv2d0_pre_relu_conv.weight" in lucent
    assert "softmax2_pre_activation_matmul.weight" in lucent and "mixed4a_3x3_bottleneck_pre_relu_conv.bias" in lucent
    # Lucent's auxiliary heads are not part of the model: skipped
    lucent["head0_bottleneck_pre_relu_conv.weight"] = torch.zeros(128, 508, 1, 1)
    lucent["nn1_pre_relu_matmul.bias"] = torch.zeros(1024)
    lucent["softmax0_pre_activation_matmul.weight"] = torch.zeros(1008, 1024)
    path = tmp_path / "inception5h.pth"
    torch.save(lucent, path)
    assert _same_weights(maso.nn.inception_v1(path), src)


@pytest.fixture(scope="module")
def model32():
    return maso.nn.inception_v1(seed=0)


def _fails(model, obj, match, *, path=None, raw=None):
    """Loading ``obj`` (saved to ``path`` if given, or the bytes ``raw``) raises WeightsFileError; nothing loads."""
    if raw is not None:
        path.write_bytes(raw)
    elif path is not None:
        torch.save(obj, path)
    before = model.mixed3a._1x1.conv.weight.clone()
    with pytest.raises(WeightsFileError, match=match) as err:
        model.load_weights(obj if path is None else path)
    assert torch.equal(model.mixed3a._1x1.conv.weight, before)
    assert err.value.path == ("" if path is None else str(path)) and isinstance(err.value, ValueError)
    return err.value


def test_bad_weights_raise_the_typed_error(model32):
    good = maso.nn.inception_v1(seed=1).state_dict()

    e = _fails(model32, {k: v for k, v in good.items() if k != "mixed4c._5x5.conv.bias"},
               r"missing 1 of 116 keys: 'mixed4c\._5x5\.conv\.bias'")
    assert e.missing == ["mixed4c._5x5.conv.bias"] and e.unexpected == []

    e = _fails(model32, {**good, "mixed6a._1x1.conv.weight": torch.zeros(1)}, r"unexpected keys: 'mixed6a")
    assert e.unexpected == ["mixed6a._1x1.conv.weight"]

    bad = dict(good)
    bad["mixed3a._1x1.conv.weight"] = torch.zeros(64, 192, 1, 1)  # loaded first, if anything were
    bad["mixed4a._3x3.conv.weight"] = torch.zeros(208, 96, 3, 3)  # the GoogLeNet paper's 208, not inception5h's 204
    e = _fails(model32, bad, r"shape mismatches: mixed4a\._3x3\.conv\.weight: \(208, 96, 3, 3\), expected "
                             r"\(204, 96, 3, 3\)")
    assert len(e.mismatched) == 1

    tf = dict(good)
    tf["conv2d1.conv.weight"] = good["conv2d1.conv.weight"].permute(2, 3, 1, 0)  # TensorFlow's (kh, kw, in, out)
    _fails(model32, tf, re.escape(".permute(3, 2, 0, 1)"))

    twice = {**good, "mixed3a_1x1_pre_relu_conv.weight": good["mixed3a._1x1.conv.weight"]}
    _fails(model32, twice, "given twice")

    nan = dict(good)
    nan["mixed5b._pool_reduce.conv.bias"] = torch.full((128,), float("nan"))
    _fails(model32, nan, r"NaN.*'mixed5b\._pool_reduce\.conv\.bias'")
    ints = {**good, "mixed5b._pool_reduce.conv.bias": torch.zeros(128, dtype=torch.int64)}
    _fails(model32, ints, "non-floating-point")

    _fails(model32, list(good.values()), "list, not a state dict")
    _fails(model32, {**good, "extra": 3}, r"not a state dict: 1 entries .*'extra'")


def test_bad_weights_files_raise_the_typed_error(model32, tmp_path):
    small = {"conv2d0.conv.bias": torch.zeros(64)}
    _fails(model32, small, "missing 115 of 116", path=tmp_path / "small.pt")
    _fails(model32, [torch.zeros(1)], "not a state dict", path=tmp_path / "list.pt")
    _fails(model32, {"x": NotATensor()}, "Cannot read", path=tmp_path / "obj.pt")  # weights_only: no code runs
    _fails(model32, None, "Cannot read", path=tmp_path / "text.pt", raw=b"this is not a torch file")
    _fails(model32, None, "Cannot read", path=tmp_path / "empty.pt", raw=b"")
    torch.save(small, tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:200])
    _fails(model32, None, "Cannot read", path=tmp_path / "cut.pt", raw=(tmp_path / "cut.pt").read_bytes())
    with pytest.raises(WeightsFileError, match="No weights file"):
        maso.nn.inception_v1(tmp_path / "missing.pt")


def test_another_models_file_lists_its_keys(model32):
    """A state dict of another model: every problem in one message, capped, with the full lists attached."""
    other = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Linear(8, 2)).state_dict()
    e = _fails(model32, other, r"missing 116 of 116 keys: 'conv2d0\.conv\.weight', .* and 108 more; unexpected "
                                r"keys: '0\.weight'")
    assert len(e.missing) == 116 and e.unexpected == ["0.weight", "0.bias", "2.weight", "2.bias"]
