"""E3 (density between examples) and E4 (density along s * a): the exact walks against independent methods,
and the quick runs' statistics against their own per-path numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exp_util import experiments, run_quick
from torch import nn

import maso


@pytest.fixture(scope="module")
def D():
    experiments()
    from maso_experiments import _density

    return _density


def _small_cnn_tail(D):
    from maso_experiments import data

    with data.seeded(3):
        model = data.DigitsCNN(width=4).double().eval()
    x = torch.randn(12, 1, 8, 8, dtype=torch.float64)
    return D.digits_tail(model, "block1", x)


def test_walks_match_lp_sampling_and_pieces(D):
    tail, acts = _small_cnn_tail(D)
    x0, x1 = acts[:3], acts[3:6]
    ws = D.walks(tail, x0, x1 - x0, 0.0, 1.0)
    split = D.walks(tail, x0, x1 - x0, 0.0, 1.0, pieces=4)
    lp = maso.segment_crossings(tail, x0, x1, method="lp")
    grid = np.linspace(0, 1, 4001)
    for w, w4, ref, a, b in zip(ws, split, lp, x0, x1):
        assert len(w.t) > 0 and w.uncertified == 0
        np.testing.assert_allclose(w.t, ref.t, atol=1e-9)
        assert np.array_equal(w.flips, ref.hamming())
        np.testing.assert_allclose(w4.t, w.t, atol=1e-9)          # cutting the path changes nothing
        assert np.array_equal(w4.flips, w.flips)
        pts = a[None] + grid[:, None, None, None] * (b - a)[None]
        codes = np.asarray(tail.codes(pts))
        sampled = np.count_nonzero(codes[1:] != codes[:-1], axis=1)
        assert sampled.sum() <= w.flips.sum()                    # sampling can only miss crossings
        assert w.endpoint_hamming == np.count_nonzero(codes[0] != codes[-1]) <= w.flips.sum()
        # the exact class along the path agrees with the sampled argmax away from the switch points
        pred = np.asarray(tail(pts)).argmax(1)
        where = np.searchsorted(w.class_t, grid)
        far = np.all(np.abs(grid[:, None] - w.class_t[None]) > 1e-6, axis=1) if len(w.class_t) else np.ones(len(grid), bool)
        assert np.array_equal(pred[far], w.classes[where][far])


def test_class_changes_exact(D):
    rng = np.random.default_rng(0)
    knots = np.sort(np.concatenate([[0.0, 1.0], rng.uniform(0, 1, 6)]))
    logits = rng.normal(size=(len(knots), 5)) * 3
    t, cls = D.class_changes(logits, knots)
    grid = np.linspace(0, 1, 200001)
    vals = np.stack([np.interp(grid, knots, logits[:, k]) for k in range(5)], 1)
    top = vals.argmax(1)
    brute = grid[1:][top[1:] != top[:-1]]
    assert len(brute) == len(t)
    np.testing.assert_allclose(t, brute, atol=2e-5)
    assert np.array_equal(cls, np.concatenate([[top[0]], top[1:][top[1:] != top[:-1]]]))


def test_bias_free_network_has_no_scaling_crossings(D):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16, bias=False), nn.ReLU(), nn.Linear(16, 16, bias=False), nn.ReLU(),
                          nn.Linear(16, 4, bias=False)).double().eval()
    net = maso.from_torch(model, torch.zeros(1, 6, dtype=torch.float64))
    a = np.random.default_rng(1).normal(size=(5, 6))
    for w in D.walks(net, np.zeros_like(a), a, 0.0, 10.0):
        assert len(w.t) == 0 and len(w.class_t) == 0          # theory.md 3.6 item 3: polytopes are cones


def test_first_layer_closed_form(D):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 24), nn.ReLU(), nn.Linear(24, 3)).double().eval()
    net = maso.from_torch(model, torch.zeros(1, 5, dtype=torch.float64))
    W, b = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    a = np.random.default_rng(2).normal(size=(4, 5))
    for w, ai in zip(D.walks(net, np.zeros_like(a), a, 0.0, 7.0), a):
        s = -b / (W @ ai)                                      # theory.md 3.3: unit k flips at s_k
        np.testing.assert_allclose(w.t, np.sort(s[(s > 0) & (s < 7.0)]), rtol=1e-9)
        assert np.all(w.flips == 1)


def _check_stats(D, group):
    from scipy import stats

    for key in ("flip_density", "density", "endpoint_density"):
        t = group["tests_different_vs_same"][key]
        s, d = group["same"]["per_path"][key], group["different"]["per_path"][key]
        assert t["mean_x"] == pytest.approx(np.mean(s)) and t["mean_y"] == pytest.approx(np.mean(d))
        if t["mann_whitney_p"] is not None:
            assert t["mann_whitney_p"] == pytest.approx(stats.mannwhitneyu(d, s).pvalue)
            assert 0 < t["permutation_p"] <= 1 and -1 <= t["rank_biserial"] <= 1
    for part in ("same", "different"):
        rows = group[part]["per_path"]
        assert all(e <= f for e, f in zip(rows["endpoint_hamming"], rows["flips"]))
        assert all(c <= f for c, f in zip(rows["crossings"], rows["flips"]))
        assert sum(rows["uncertified"]) == 0


def test_e3_quick(D, tmp_path):
    rec = run_quick("e3_between", tmp_path)
    res = rec["results"]["digits"]
    assert res["accuracy"] > 0.8
    for which in ("trained", "untrained"):
        for g in res["layers"][which].values():
            _check_stats(D, g)
            if g["n_units"] == 0:                                # "hidden": an affine tail has no boundaries
                assert g["same"]["mean_flips"] == 0 == g["different"]["mean_flips"]
    assert len(res["pairs_same"]) == 20 and all(len(set(p)) == 2 for p in res["pairs_same"])
    assert isinstance(res["gap_grows_with_depth"], bool)
    assert {f["file"] for f in rec["figures"]} == {"digits-density.png", "digits-profile.png"}
    assert any("significant" in c["claim"] for c in rec["comparisons"])


def test_e4_quick(D, tmp_path):
    rec = run_quick("e4_scaling", tmp_path)
    res = rec["results"]
    for conds in res["digits"]["layers"].values():
        for p in conds.values():
            assert len(p["mean_density"]) == 100 and p["uncertified_pieces"] == 0
            assert p["crossings_per_ray"] >= 0 and 0 <= p["s_mid"][0] < p["s_mid"][-1] <= 10
            nc = p["near_class_changes"]
            assert nc["bins_with_change"] + nc["bins_without"] == 100 * len(res["digits"]["examples"])
    m = res["minilm"]
    assert m["trained"] is True and m["n_units"] == 1536
    for name in ("activation", "gaussian"):
        # one GELU layer: each unit's pre-activation is affine in s, so it flips at most once along s * a
        assert 0 < m[name]["hard_crossings_total"] <= m[name]["hard_flips_total"] <= m["n_units"]
        assert m[name]["soft_l1_total"] > 0
    assert any("untrained" in c["claim"] for c in rec["comparisons"])
