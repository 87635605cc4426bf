"""The ``maso`` command on users' model files, end to end: ``regions --model``, ``slice``, ``segment`` and the
demo's files. Results are checked against independent computations: the Python API on the same module, and
pre-activations computed here by hand with torch (a unit is active where its pre-activation is > 0)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import maso
from maso import cli
from maso.cli import main

ROOT = Path(__file__).resolve().parents[2]


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def seeded(seed: int, *layers: nn.Module) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(*[layer() for layer in layers]).eval()


def hand_preacts(model: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """The pre-activations of every ReLU of a Linear/ReLU stack at the points ``x`` ``(n, d)``, in float64, in the
    order of the layers: computed here, not by maso."""
    h = torch.as_tensor(np.atleast_2d(x), dtype=torch.float64)
    pre = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            h = h @ layer.weight.detach().double().T + layer.bias.detach().double()
        elif isinstance(layer, nn.ReLU):
            pre.append(h.clone())
            h = torch.clamp(h, min=0)
        else:
            raise TypeError(f"hand_preacts reads Linear and ReLU only, not {layer}")
    return torch.cat(pre, dim=1).numpy()


def hand_outputs(model: nn.Sequential, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.double()(torch.as_tensor(np.atleast_2d(x), dtype=torch.float64)).numpy()


def hand_codes(model: nn.Sequential, x: np.ndarray) -> np.ndarray:
    return (hand_preacts(model, x) > 0).astype(int)


def run_json(argv: list[str], capsys) -> dict:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)  # the whole of stdout is the one object


def shoelace(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# --------------------------------------------------------------------------------------------------- models
MLP3 = (lambda: nn.Linear(3, 5), nn.ReLU, lambda: nn.Linear(5, 4), nn.ReLU, lambda: nn.Linear(4, 2))
MLP2 = (lambda: nn.Linear(2, 6), nn.ReLU, lambda: nn.Linear(6, 5), nn.ReLU, lambda: nn.Linear(5, 2))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    out = {}
    out["mlp3_model"] = seeded(26, *MLP3)  # a seed whose two classes meet in the slice of the slice test
    torch.save(out["mlp3_model"], d / "mlp3.pt")
    out["mlp2_model"] = seeded(2, *MLP2)
    with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; users still have such files
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(out["mlp2_model"]), d / "mlp2_script.pt")
        torch.jit.save(torch.jit.trace(out["mlp2_model"], torch.zeros(1, 2)), d / "mlp2_trace.pt")
        # torch.jit.trace runs reflection padding as an operation of its own, outside the convolution's settings
        reflect = seeded(3, lambda: nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.ReLU, nn.Flatten,
                         lambda: nn.Linear(32, 1))
        torch.jit.save(torch.jit.trace(reflect, torch.zeros(1, 1, 4, 4)), d / "reflect_trace.pt")
        out["cnn_model"] = seeded(6, lambda: nn.Conv2d(1, 3, 3, stride=2, padding=1), lambda: nn.BatchNorm2d(3, eps=1e-3),
                                  lambda: nn.LeakyReLU(0.2), lambda: nn.MaxPool2d(2, stride=1, padding=1),
                                  lambda: nn.AvgPool2d(2), lambda: nn.Hardtanh(-0.5, 2.0), nn.Flatten,
                                  lambda: nn.Linear(12, 2))
        with torch.no_grad():  # batch-norm statistics that are not the identity
            out["cnn_model"][1].running_mean.uniform_(-0.5, 0.5)
            out["cnn_model"][1].running_var.uniform_(0.5, 2.0)
        torch.jit.save(torch.jit.trace(out["cnn_model"], torch.zeros(1, 1, 6, 6)), d / "cnn_trace.pt")

        class Residual(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = nn.Linear(2, 2)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x + torch.relu(self.fc(x))

        torch.jit.save(torch.jit.script(Residual()), d / "residual_script.pt")
    out["state_model"] = maso.nn.mlp_module([2, 6, 6, 2], seed=3)
    torch.save(out["state_model"].state_dict(), d / "state.pt")
    torch.save(seeded(4, lambda: nn.Linear(2, 4), lambda: nn.Softmax(dim=1), lambda: nn.Linear(4, 1)),
               d / "softmax.pt")
    (d / "notes.txt").write_text("not a model\n")
    torch.save(torch.zeros(3), d / "tensor.pt")
    return out | {
        name: str(d / f"{name}.pt") for name in ("mlp3", "mlp2_script", "mlp2_trace", "reflect_trace", "cnn_trace",
                                                "residual_script", "state", "softmax", "tensor")
    } | {"notes": str(d / "notes.txt"), "dir": d}


# ------------------------------------------------------------------------------------------------- regions
def check_regions_json(data: dict, model: nn.Sequential, net: maso.Network, box: maso.Box) -> None:
    assert data["command"] == "regions"
    assert set(data) >= {"network", "domain", "tol", "n_regions", "slivers", "seconds", "stats", "certificate",
                         "regions"}
    for key, kind in (("n_regions", int), ("slivers", int), ("seconds", float), ("stats", dict),
                      ("certificate", dict), ("regions", list), ("network", dict), ("domain", dict)):
        assert isinstance(data[key], kind), key
    assert isinstance(data["network"]["input_shape"], list) and isinstance(data["network"]["n_units"], int)
    expected = maso.enumerate_regions(net, box, progress=False)  # the Python API on the same module
    assert data["n_regions"] == len(expected) == len(data["regions"])
    assert data["certificate"]["ok"] is True and isinstance(data["certificate"]["summary"], str)
    codes = np.array([r["code"] for r in data["regions"]])
    points = np.array([r["interior_point"] for r in data["regions"]], dtype=np.float64)
    assert codes.dtype.kind == "i" and points.shape == (len(expected), net.input_dim)
    assert np.all(points >= np.asarray(data["domain"]["lo"])) and np.all(points <= np.asarray(data["domain"]["hi"]))
    np.testing.assert_array_equal(codes, hand_codes(model, points))
    assert len({c.tobytes() for c in codes}) == len(codes)
    assert {c.tobytes() for c in codes} == {r.code.astype(codes.dtype).tobytes() for r in expected}


def test_regions_of_a_saved_module(files, capsys):
    data = run_json(["regions", "--model", files["mlp3"], "--box", "-1", "1", "--json"], capsys)
    model = files["mlp3_model"]
    net = maso.from_torch(model, torch.zeros(1, 3))
    check_regions_json(data, model, net, maso.Box(-np.ones(3), np.ones(3)))
    assert data["network"]["kind"] == "module" and data["network"]["input_shape"] == [3]
    assert data["domain"] == {"lo": [-1.0] * 3, "hi": [1.0] * 3, "dim": 3}


def test_regions_of_a_box_given_by_corners_and_a_half_width(files, capsys):
    model = files["mlp3_model"]
    net = maso.from_torch(model, torch.zeros(1, 3))
    data = run_json(["regions", "--model", files["mlp3"], "--box", "-1,0,-0.5", "2", "--json"], capsys)
    check_regions_json(data, model, net, maso.Box([-1.0, 0.0, -0.5], [2.0, 2.0, 2.0]))
    half = run_json(["regions", "--model", files["mlp3"], "--box", "0.5", "--json", "--no-verify"], capsys)
    assert half["domain"]["lo"] == [-0.5] * 3 and half["certificate"] is None
    assert half["n_regions"] == len(maso.enumerate_regions(net, maso.Box(-0.5 * np.ones(3), 0.5 * np.ones(3)),
                                                           progress=False))


@pytest.mark.parametrize("name", ["mlp2_script", "mlp2_trace"])
def test_regions_of_torchscript(name, files, capsys):
    """maso.from_torch cannot read TorchScript: the command rebuilds the Linear/ReLU chain and checks it."""
    with pytest.raises(maso.errors.ConversionError), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        maso.from_torch(torch.jit.load(files[name]), torch.zeros(1, 2))
    data = run_json(["regions", "--model", files[name], "--box", "-2", "2", "--json"], capsys)
    model = files["mlp2_model"]
    check_regions_json(data, model, maso.from_torch(model, torch.zeros(1, 2)), maso.Box(-2 * np.ones(2), 2 * np.ones(2)))
    assert data["network"]["kind"] == "torchscript" and data["network"]["class"] == "Sequential"


def test_a_traced_cnn_keeps_its_settings(files, capsys):
    """torch.jit.trace keeps a layer's settings only as constants of its operation (stride, padding, slope, eps,
    pooling sizes): they are read from there, and the crossings are those of the original Python module."""
    x0 = np.linspace(-1, 1, 36).reshape(1, 6, 6)
    data = run_json(["segment", "--model", files["cnn_trace"], "--input-shape", "1,6,6", "--from", "-1", "--to",
                     ",".join(map(str, x0.ravel())), "--json"], capsys)
    net = maso.from_torch(files["cnn_model"], torch.zeros(1, 1, 6, 6))
    sc = maso.segment_crossings(net, -np.ones((1, 6, 6)), x0)
    assert data["network"]["kind"] == "torchscript" and data["network"]["n_units"] == net.n_units
    assert len(sc.t) > 0
    np.testing.assert_allclose(data["t"], sc.t, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(data["codes"], sc.codes)


def test_regions_of_a_state_dict_with_a_builder(files, capsys):
    data = run_json(["regions", "--model", files["state"], "--builder", "mlp_module", "--builder-args",
                     '{"widths": [2, 6, 6, 2]}', "--json"], capsys)
    model = files["state_model"]
    check_regions_json(data, model, maso.from_torch(model, torch.zeros(1, 2)), maso.Box(-np.ones(2), np.ones(2)))
    assert data["network"]["kind"] == "state_dict" and data["network"]["builder"] == "mlp_module"


def test_a_float64_state_dict_keeps_its_precision(tmp_path, capsys):
    """The builder's module takes the state dict's dtype: float64 weights are not rounded to float32 on loading."""
    model = maso.nn.mlp_module([2, 5, 1], seed=7, dtype=torch.float64)
    with torch.no_grad():
        model[0].bias += 1e-12  # a change that float32 cannot hold
    torch.save(model.state_dict(), tmp_path / "sd64.pt")
    data = run_json(["segment", "--model", str(tmp_path / "sd64.pt"), "--builder", "mlp_module", "--builder-args",
                     '{"widths": [2, 5, 1]}', "--from", "-3,-2", "--to", "3,2.5", "--json"], capsys)
    sc = maso.segment_crossings(maso.from_torch(model, torch.zeros(1, 2, dtype=torch.float64)),
                                np.array([-3.0, -2.0]), np.array([3.0, 2.5]))
    assert len(sc.t) > 0
    np.testing.assert_allclose(data["t"], sc.t, rtol=0, atol=1e-15)


def test_training_checkpoints(tmp_path, files, capsys):
    """{"model_state_dict": ..., "optimizer_state_dict": ...} (the PyTorch tutorials' form) and {"model": module}."""
    model = files["state_model"]
    torch.save({"epoch": 3, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": torch.optim.SGD(model.parameters(), lr=0.1).state_dict()}, tmp_path / "a.pt")
    torch.save({"model": files["mlp3_model"], "epoch": 1}, tmp_path / "b.pt")
    a = run_json(["segment", "--model", str(tmp_path / "a.pt"), "--builder", "mlp_module", "--builder-args",
                  '{"widths": [2, 6, 6, 2]}', "--from", "-1", "--to", "1", "--json"], capsys)
    sc = maso.segment_crossings(maso.from_torch(model, torch.zeros(1, 2)), -np.ones(2), np.ones(2))
    np.testing.assert_allclose(a["t"], sc.t, rtol=1e-12, atol=1e-15)
    b = run_json(["segment", "--model", str(tmp_path / "b.pt"), "--from", "-1", "--to", "1", "--json"], capsys)
    sc = maso.segment_crossings(maso.from_torch(files["mlp3_model"], torch.zeros(1, 3)), -np.ones(3), np.ones(3))
    np.testing.assert_allclose(b["t"], sc.t, rtol=1e-12, atol=1e-15)


def test_regions_text_and_progress_bar(files, capsys):
    assert main(["regions", "--model", files["mlp3"], "--progress", "--workers", "2"]) == 0
    captured = capsys.readouterr()
    assert "regions in" in captured.out and "certificate: OK" in captured.out
    assert "regions" in captured.err  # the bar, on stderr, from planning on
    assert main(["regions", "--model", files["mlp3"], "--json", "--progress"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # the bar stays off stdout
    assert captured.err


# --------------------------------------------------------------------------------------------------- slice
def test_slice_polygons_tile_the_window_and_codes_match(files, capsys, tmp_path):
    model = files["mlp3_model"]
    A, B, C = np.array([0.2, -0.3, 0.1]), np.array([1.0, 0.5, -0.4]), np.array([-0.6, 0.9, 0.7])
    fig = tmp_path / "slice.png"
    data = run_json(["slice", "--model", files["mlp3"], "--through", "0.2,-0.3,0.1", "1,0.5,-0.4", "-0.6,0.9,0.7",
                     "--window", "-1", "2", "--out", str(fig), "--json"], capsys)
    assert set(data) >= {"network", "plane", "window", "n_regions", "area", "checks", "regions", "decision_boundary",
                         "figure"}
    assert data["window"]["lo"] == [-1.0, -1.0] and data["window"]["hi"] == [2.0, 2.0]
    np.testing.assert_allclose(data["plane"]["origin"], A)
    np.testing.assert_allclose(data["plane"]["u"], B - A)
    np.testing.assert_allclose(data["plane"]["v"], C - A)
    assert data["checks"]["ok"] is True and data["n_regions"] == len(data["regions"]) > 1
    polys = [np.array(r["polygon"]) for r in data["regions"]]
    areas = np.array([shoelace(p) for p in polys])  # counter-clockwise: positive
    assert np.all(areas > 0)
    assert areas.sum() == pytest.approx(9.0, rel=1e-9)  # the polygons tile the 3 x 3 window
    np.testing.assert_allclose(areas, [r["area"] for r in data["regions"]], rtol=1e-9, atol=1e-12)
    for r, p in zip(data["regions"], polys):
        assert np.all(p >= -1 - 1e-12) and np.all(p <= 2 + 1e-12)
        s, t = r["interior_point"]
        x = A + s * (B - A) + t * (C - A)
        assert hand_codes(model, x)[0].tolist() == r["code"]
    # every decision-boundary segment: the two outputs tie along it (checked at both ends and the midpoint)
    segs = np.array(data["decision_boundary"]["segments"]).reshape(-1, 2, 2)
    assert data["decision_boundary"]["n_segments"] == len(segs) > 0
    st = np.concatenate([segs[:, 0], segs[:, 1], segs.mean(axis=1)])
    y = hand_outputs(model, A + st[:, :1] * (B - A) + st[:, 1:] * (C - A))
    assert np.abs(y[:, 0] - y[:, 1]).max() < 1e-9 * (1 + np.abs(y).max())
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and data["figure"] == str(fig)


def test_slice_tiles_give_the_same_regions(files, capsys):
    """``--tiles N``: the window sliced as N x N tiles and joined; the same regions and codes as one piece."""
    args = ["slice", "--model", files["mlp3"], "--through", "0.2,-0.3,0.1", "1,0.5,-0.4", "-0.6,0.9,0.7",
            "--window", "-1", "2", "--json"]
    whole, tiled = run_json(args, capsys), run_json([*args, "--tiles", "3"], capsys)
    assert tiled["checks"]["ok"] is True and tiled["stats"]["tiles"] == 9 and tiled["stats"]["joined"] > 0
    assert sorted(map(str, (r["code"] for r in tiled["regions"]))) == sorted(map(str, (r["code"] for r in whole["regions"])))


def test_slice_checkpoint_resumes(files, capsys, tmp_path):
    """``--checkpoint FILE``: finished tiles are recorded; the same command again reads them all back."""
    ckpt = tmp_path / "slice.ckpt"
    args = ["slice", "--model", files["mlp3"], "--through", "0.2,-0.3,0.1", "1,0.5,-0.4", "-0.6,0.9,0.7",
            "--window", "-1", "2", "--tiles", "3", "--checkpoint", str(ckpt), "--json"]
    first, again = run_json(args, capsys), run_json(args, capsys)
    assert first["stats"]["tiles_resumed"] == 0 and again["stats"]["tiles_resumed"] == 9 and ckpt.exists()
    assert again["checks"]["ok"] is True and again["regions"] == first["regions"]
    bad = [*args[:-2], str(tmp_path), "--json"]
    assert main(bad) == 2 and "is a directory" in capsys.readouterr().err


def test_slice_default_window_frames_the_three_points(files, capsys):
    data = run_json(["slice", "--model", files["mlp2_script"], "--through", "0,0", "1,0", "0,1", "--json"], capsys)
    assert data["window"]["lo"] == [-0.5, -0.5] and data["window"]["hi"] == [1.5, 1.5]
    assert sum(shoelace(np.array(r["polygon"])) for r in data["regions"]) == pytest.approx(4.0, rel=1e-9)
    sl = maso.slice_regions(maso.from_torch(files["mlp2_model"], torch.zeros(1, 2)), lo=(-0.5, -0.5), hi=(1.5, 1.5))
    assert data["n_regions"] == len(sl)


def test_slice_text_and_progress(files, capsys):
    assert main(["slice", "--model", files["mlp3"], "--through", "0", "1,0,0", "0,1,0", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "regions in" in captured.out and "checks: OK" in captured.out and "slice" in captured.err


# ------------------------------------------------------------------------------------------------- segment
def test_segment_crossings_are_where_hand_signs_change(files, capsys):
    model = files["mlp3_model"]
    x0, x1 = np.array([-2.0, -1.5, -1.0]), np.array([2.0, 1.0, 1.5])
    data = run_json(["segment", "--model", files["mlp3"], "--from", "-2,-1.5,-1", "--to", "2,1,1.5", "--json"], capsys)
    assert set(data) >= {"t", "points", "n_pieces", "n_crossings", "codes", "flips", "certified", "from", "to"}
    t = np.array(data["t"])
    k = len(t)
    assert k >= 2 and data["n_crossings"] == k and data["n_pieces"] == k + 1 == len(data["codes"])
    assert np.all(np.diff(t) > 0) and t[0] > 0 and t[-1] < 1 and data["certified"] is True
    pts = np.array(data["points"])
    np.testing.assert_allclose(pts, x0 + t[:, None] * (x1 - x0), rtol=1e-12, atol=1e-12)
    # at each crossing, the flipped units' hand pre-activations vanish
    pre = hand_preacts(model, pts)
    scale = np.abs(hand_preacts(model, np.stack([x0, x1]))).max()
    for i, units in enumerate(data["flips"]):
        assert units and np.abs(pre[i, units]).max() < 1e-9 * scale
    # on each piece (its midpoint) the code is the hand code, and neighbours differ in exactly the flipped units
    edges = np.concatenate([[0.0], t, [1.0]])
    mids = (edges[:-1] + edges[1:]) / 2
    np.testing.assert_array_equal(hand_codes(model, x0 + mids[:, None] * (x1 - x0)), data["codes"])
    codes = np.array(data["codes"])
    for i, units in enumerate(data["flips"]):
        assert np.flatnonzero(codes[i] != codes[i + 1]).tolist() == sorted(units)
    # a dense sample sees no code change that is not a listed crossing
    ts = np.linspace(0, 1, 20001)
    sampled = hand_codes(model, x0 + ts[:, None] * (x1 - x0))
    for j in np.flatnonzero(np.any(sampled[1:] != sampled[:-1], axis=1)):
        assert np.any((t >= ts[j]) & (t <= ts[j + 1]))


def test_segment_text(files, capsys):
    assert main(["segment", "--model", files["state"], "--builder", "mlp_module", "--builder-args",
                 '{"widths": [2, 6, 6, 2]}', "--from", "-1", "--to", "1,0.5"]) == 0
    out = capsys.readouterr().out
    assert "linear pieces" in out and "certificate: OK" in out


# --------------------------------------------------------------------------------------------- user mistakes
def _no_work(*args, **kwargs):
    raise AssertionError("the command started its work before refusing its arguments")


MISTAKES = [
    (["regions", "--model", "{dir}/nope.pt"], "no such file"),
    (["regions", "--model", "{dir}"], "directory"),
    (["regions", "--model", "{notes}"], "not a file torch can read"),
    (["regions", "--model", "{tensor}"], "not a model"),
    (["regions", "--model", "{mlp3}", "--box", "1", "-1"], "empty"),
    (["regions", "--model", "{mlp3}", "--box", "0,0,1", "1"], "empty"),
    (["regions", "--model", "{mlp3}", "--box", "0"], "--box"),
    (["regions", "--model", "{mlp3}", "--box", "0", "1", "2"], "--box"),
    (["regions", "--model", "{mlp3}", "--workers", "0"], "--workers"),
    (["regions", "--model", "{mlp3}", "--workers", "two"], "--workers"),
    (["regions", "--model", "{mlp3}", "--box", "-1,-1", "1,1"], "wrong dimension"),
    (["regions", "--model", "{mlp3}", "--input-shape", "2"], "wrong dimension"),
    (["regions", "--model", "{mlp3}", "--widths", "2", "4", "1"], "not allowed"),
    (["regions", "--model", "{mlp3}", "--activation", "abs"], "--activation"),
    (["regions", "--builder", "mlp_module"], "--model"),
    (["regions", "--model", "{state}"], "state dict"),
    (["regions", "--model", "{state}", "--builder", "mlp_module", "--builder-args", '{{"widths": [2, 4, 2]}}'],
     "does not fit"),
    (["regions", "--model", "{state}", "--builder", "nonsense"], "not a maso.nn builder"),
    (["regions", "--model", "{state}", "--builder", "mlp_module", "--builder-args", "{{widths"], "not JSON"),
    (["regions", "--model", "{mlp3}", "--builder", "mlp_module"], "drop --builder"),
    (["regions", "--model", "{softmax}"], "Softmax"),
    (["segment", "--model", "{reflect_trace}", "--input-shape", "1,4,4", "--from", "0", "--to", "1"],
     "does not reproduce"),
    (["regions", "--model", "{residual_script}"], "not a chain"),
    (["slice", "--model", "{mlp3}"], "--through"),
    (["slice", "--model", "{mlp3}", "--through", "0,0,0", "1,0,0"], "--through"),
    (["slice", "--model", "{mlp3}", "--through", "0,0", "1,0", "0,1"], "wrong dimension"),
    (["slice", "--model", "{mlp3}", "--through", "0,0,0", "1,1,1", "2,2,2"], "one line"),
    (["slice", "--model", "{mlp3}", "--through", "0", "1,0,0", "0,1,0", "--window", "1", "0"], "empty"),
    (["slice", "--model", "{mlp3}", "--through", "0", "1,0,0", "0,1,0", "--window", "0,0,0", "1"], "--window"),
    (["slice", "--model", "{mlp3}", "--through", "0", "1,0,0", "0,1,0", "--out", "{dir}/no/such/dir/f.png"],
     "does not exist"),
    (["segment", "--model", "{mlp3}", "--from", "0,0,0"], "--to"),
    (["segment", "--from", "0", "--to", "1"], "--model"),
    (["segment", "--model", "{mlp3}", "--from", "0,0", "--to", "1,1"], "wrong dimension"),
    (["segment", "--model", "{mlp3}", "--from", "0,0,0", "--to", "1;1;1"], "comma-separated"),
    (["segment", "--model", "{mlp3}", "--from", "0,nan,0", "--to", "1"], "NaN"),
    (["segment", "--model", "{mlp3}", "--from", "{dir}/missing.npy", "--to", "1"], "no such .npy"),
    (["segment", "--model", "{mlp3}", "--from", "1", "--to", "1"], "same point"),
]


@pytest.mark.parametrize("argv, says", MISTAKES)
def test_a_user_mistake_is_one_line_and_exit_code_2(argv, says, files, capsys, monkeypatch):
    for name in ("enumerate_regions", "slice_regions", "segment_crossings"):
        monkeypatch.setattr(maso, name, _no_work)
    argv = [a.format(**{k: v for k, v in files.items() if isinstance(v, (str, Path))}) for a in argv]
    assert main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    line = one_line(captured.err)
    assert "error" in line and says in line, line


def test_points_from_npy_files_and_an_input_shape(tmp_path, capsys):
    """A conv model: points as .npy arrays of the input shape, or flat with --input-shape."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 2)).eval()
    path = tmp_path / "conv.pt"
    torch.save(model, path)
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal(size=(1, 3, 3)), rng.normal(size=(1, 3, 3))
    np.save(tmp_path / "x0.npy", x0)
    np.save(tmp_path / "x1.npy", x1)
    data = run_json(["segment", "--model", str(path), "--from", str(tmp_path / "x0.npy"), "--to",
                     str(tmp_path / "x1.npy"), "--json"], capsys)
    assert data["network"]["input_shape"] == [1, 3, 3] and len(data["from"]) == 9
    net = maso.from_torch(model, torch.zeros(1, 1, 3, 3))
    sc = maso.segment_crossings(net, x0, x1)
    np.testing.assert_allclose(data["t"], sc.t)
    flat = run_json(["segment", "--model", str(path), "--input-shape", "1,3,3", "--from",
                     ",".join(map(str, x0.ravel())), "--to", ",".join(map(str, x1.ravel())), "--json"], capsys)
    np.testing.assert_allclose(flat["t"], sc.t)
    assert main(["segment", "--model", str(path), "--from", "0,1", "--to", "1,0"]) == cli.EXIT_USAGE
    assert "input" in one_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------------------- failed checks
def test_a_failed_certificate_is_exit_code_3(files, capsys, monkeypatch):
    """The real certificate, on an enumeration that lost one region: its gap is found, and the exit code is 3."""
    real = maso.enumerate_regions

    def one_region_lost(net, box, **kwargs):
        rs = real(net, box, **kwargs)
        return maso.regions.RegionSet(rs.network, rs.domain, list(rs)[1:], rs.slivers, rs.tol, rs.stats)

    monkeypatch.setattr(maso, "enumerate_regions", one_region_lost)
    assert main(["regions", "--model", files["mlp3"], "--json"]) == cli.EXIT_FAILED == 3
    data = json.loads(capsys.readouterr().out)
    assert data["certificate"]["ok"] is False and "FAILED" in data["certificate"]["summary"]
    assert main(["regions", "--model", files["mlp3"]]) == cli.EXIT_FAILED
    assert "certificate: FAILED" in capsys.readouterr().out


def test_a_slice_that_does_not_tile_its_window_is_exit_code_3(files, capsys, monkeypatch):
    real = maso.slice_regions

    def half_areas(*args, **kwargs):
        sl = real(*args, **kwargs)
        return dataclasses.replace(sl, areas=sl.areas / 2)

    monkeypatch.setattr(maso, "slice_regions", half_areas)
    assert main(["slice", "--model", files["mlp3"], "--through", "0", "1,0,0", "0,1,0", "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["checks"]["areas_ok"] is False


def test_an_uncertified_segment_is_exit_code_3(files, capsys, monkeypatch):
    real = maso.segment_crossings

    def uncertified(*args, **kwargs):
        sc = real(*args, **kwargs)
        return dataclasses.replace(sc, uncertified=np.array([0]))

    monkeypatch.setattr(maso, "segment_crossings", uncertified)
    assert main(["segment", "--model", files["mlp3"], "--from", "-1", "--to", "1"]) == cli.EXIT_FAILED
    assert "certificate: FAILED" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ processes
def test_python_dash_m_maso_on_a_model_file(files):
    p = subprocess.run([sys.executable, "-m", "maso", "segment", "--model", files["mlp3"], "--from", "-1",
                        "--to", "1", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0 and p.stderr == "" and json.loads(p.stdout)["certified"] is True
    p = subprocess.run([sys.executable, "-m", "maso", "slice", "--model", files["mlp3"], "--through", "0", "1,0",
                        "0,1"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 2 and p.stdout == "" and "wrong dimension" in one_line(p.stderr)


def test_help_says_pickles_run_code_and_the_schemas(capsys):
    for command, keys in (("regions", ("n_regions", "interior_point", "certificate")),
                          ("slice", ("polygon", "decision_boundary", "window")),
                          ("segment", ("n_pieces", "points", "codes"))):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "runs" in out and "trust" in out and "--builder" in out and "exit codes" in out
        assert all(k in out for k in keys), command


# ------------------------------------------------------------------------------------------------------ demo
def test_demo_writes_a_figure_and_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--points", "0", "--width", "20", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out / "regions.json") in text and str(out / "partition.png") in text
    assert (out / "partition.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "regions.json").read_text())
    net = maso.mlp([2, 8, 8, 2], seed=0)
    lo, hi = data["domain"]["lo"], data["domain"]["hi"]
    assert sum(shoelace(np.array(r["polygon"])) for r in data["regions"]) == pytest.approx(
        (hi[0] - lo[0]) * (hi[1] - lo[1]), rel=1e-9)
    assert data["decision_boundary"]["n_segments"] > 0  # the window grows until the classes meet
    points = np.array([r["interior_point"] for r in data["regions"]])
    np.testing.assert_array_equal(net.codes(points), [r["code"] for r in data["regions"]])
    assert [r["class"] for r in data["regions"]] == np.argmax(net(points), axis=1).tolist()
    assert data["enumeration"]["certificate"]["ok"] is True


def test_demo_without_matplotlib_still_writes_the_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    assert main(["demo", "--points", "0", "--width", "20", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "maso[plot]" in text and (tmp_path / "regions.json").exists() and not (tmp_path / "partition.png").exists()
    assert main(["slice", "--model", "x.pt", "--through", "0", "1", "2", "--out", str(tmp_path / "f.png")]) == 2
    assert "maso[plot]" in one_line(capsys.readouterr().err)


def test_demo_out_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("")
    assert main(["demo", "--out", str(f)]) == cli.EXIT_USAGE
    assert "is a file" in one_line(capsys.readouterr().err)
