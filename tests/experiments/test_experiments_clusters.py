"""E1 (clusters) and E2 (NMF directions vs clusters): the clustering plumbing on synthetic data with known answers
(theory.md §3.6 item 6), then both experiments' quick runs (digits and a tiny random GPT-2) checked for
consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest
from exp_util import experiments, run_quick
from scipy.spatial.distance import cdist
from sklearn.metrics import adjusted_rand_score


@pytest.fixture(scope="module")
def ls():
    experiments()  # registers maso_experiments
    from maso_experiments import _lens_sources

    return _lens_sources


@pytest.fixture(scope="module")
def e2():
    experiments()
    from maso_experiments import e2_directions

    return e2_directions


def _blobs(rng, k=4, per=60, m=300, flip=0.05, levels=2):
    protos = rng.integers(0, levels, size=(k, m))
    y = np.repeat(np.arange(k), per)
    x = protos[y].copy()
    noise = rng.random(x.shape) < flip
    x[noise] = (x[noise] + rng.integers(1, levels, size=noise.sum())) % levels  # a flipped entry always changes
    return x.astype(np.uint8), y


def test_hamming_distances_match_scipy(ls):
    rng = np.random.default_rng(0)
    for levels in (2, 4):  # 0/1 codes by the product, max-pool-like integer codes by comparison
        x, _ = _blobs(rng, k=3, per=10, m=50, flip=0.3, levels=levels)
        d = ls.distances(x, "hamming")
        assert np.array_equal(d, np.round(cdist(x, x, "hamming") * x.shape[1]))
    a = rng.normal(size=(40, 7))
    assert np.allclose(ls.distances(a, "euclidean"), cdist(a, a), atol=1e-9)
    p = rng.random((40, 9))
    assert np.allclose(ls.distances(p, "l1"), cdist(p, p, "cityblock"), atol=1e-9)


@pytest.mark.parametrize("levels", [2, 4])
def test_hdbscan_recovers_code_blobs(ls, levels):
    """Well-separated code blobs are recovered (ARI ~ 1), as hdbscan's own Hamming metric does on the raw codes."""
    import hdbscan

    rng = np.random.default_rng(levels)
    x, y = _blobs(rng, levels=levels)
    lab = ls.cluster(x, "hamming", 10)
    assert adjusted_rand_score(y, lab) > 0.99 and (lab >= 0).mean() > 0.95
    own = hdbscan.HDBSCAN(min_cluster_size=10, metric="hamming").fit(x).labels_
    assert adjusted_rand_score(own, lab) > 0.99
    stats = ls.clustering_stats(lab, y)
    assert stats["n_clusters"] == 4 and stats["purity"] > 0.99 and stats["ari_vs_labels"] > 0.99


def test_summaries_are_consistent(ls):
    rng = np.random.default_rng(3)
    x, y = _blobs(rng, k=3, per=30)
    ref = y.copy()
    ref[:5] = 2  # five members of blob 0 get another label: its purity drops to 25/30
    d = ls.distances(x, "hamming")
    lab = ls.hdbscan_labels(d, 10)
    sums = ls.summarise(lab, ref, ("a", "b", "c"), d, top=4)
    stats = ls.clustering_stats(lab, ref)
    assert sum(s.size for s in sums) == (lab >= 0).sum()
    assert math.isclose(sum(s.purity * s.size for s in sums) / sum(s.size for s in sums), stats["purity"])
    for s in sums:
        assert all(lab[i] == s.cluster for i in s.top) and len(s.top) == 4
    assert min(s.purity for s in sums) == pytest.approx(25 / 30, abs=0.05)


def test_cosine_histograms_sum_to_n(ls, e2):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 12))
    dirs = rng.normal(size=(5, 12))
    cos = e2.cosines(x, dirs)
    assert np.allclose(cos, 1 - cdist(x, dirs, "cosine"))
    groups = rng.integers(-1, 4, size=200)
    bins = np.linspace(-1, 1, 21)
    for j in range(5):
        counts = e2.stacked_counts(cos[:, j], groups, bins)
        assert sum(int(c.sum()) for c in counts.values()) == 200


def test_split_is_exact_and_polysemanticity(ls, e2):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 6))
    xin, how = e2.nonnegative(x, "split")
    assert how.startswith("split") and xin.min() >= 0 and np.allclose(xin[:, :6] - xin[:, 6:], x)
    assert np.array_equal(e2.directions(xin[:2], 6), x[:2])
    assert e2.nonnegative(np.abs(x), "split")[0].shape == (30, 6)
    # direction 0 points at cluster 0's inputs only, direction 1 is spread over all three clusters
    clusters = np.repeat([0, 1, 2], 10)
    cos = np.zeros((30, 2))
    cos[:10, 0] = 1.0
    cos[::3, 1] = 1.0
    p = e2.polysemanticity(cos, clusters, clusters, top_n=10)
    assert p["n_clusters"].tolist() == [1, 3] and p["cluster_entropy_bits"][0] == 0
    assert p["cluster_entropy_bits"][1] == pytest.approx(ls.entropy_bits(clusters[::3]))


def _check_e1_source(r):
    rows = r["rows"]
    for row in r["sweep"].values():
        for name, st in row.items():
            if name == "between":
                assert all(-1 <= v["ari"] <= 1 and 0 <= v["nmi"] <= 1 + 1e-9 for v in st.values())
                continue
            assert 0 <= st["noise_fraction"] <= 1
            assert st["purity"] is None or st["majority_baseline_purity"] - 1e-9 <= 1 and 0 < st["purity"] <= 1
    fig = r["sweep"][str(r["figure_min_cluster_size"])]
    for name, clusters in r["clusters"].items():
        st = fig[name]
        assert len(clusters) == st["n_clusters"]
        clustered = sum(c["size"] for c in clusters)
        assert clustered == round(rows * (1 - st["noise_fraction"]))
        if clustered:
            assert math.isclose(sum(c["purity"] * c["size"] for c in clusters) / clustered, st["purity"], rel_tol=1e-9)


def test_e1_quick(tmp_path):
    rec = run_quick("e1_clusters", tmp_path)
    res = rec["results"]
    d, g = res["digits"], res["gpt2"]
    _check_e1_source(d)
    _check_e1_source(g)
    assert d["article_feature"] == "code_L_out" and d["features"]["code_L_out"]["width"] == 512 + 128 + 64
    assert d["features"]["code_L"]["width"] == 16 * 64 + 16 * 16
    # the trained CNN's code clusters are far purer by class than the majority share (0.1)
    best = max(row["code_L_out"]["purity"] or 0 for row in d["sweep"].values())
    assert best > 0.5 > d["sweep"]["5"]["code_L_out"]["majority_baseline_purity"]
    assert g["rows"] == 24 * 6 and g["article_feature"] == "code_L"
    assert g["features"]["code_L"]["width"] == 3072 and g["features"]["codes_later"]["width"] == 2 * 3072
    assert g["features"]["soft_L"]["metric"] == "l1"
    assert any("RANDOM" in v for k, v in rec["setup"].items() if k.startswith("gpt2"))
    assert any(c["verdict"].startswith("not tested here") for c in rec["comparisons"])
    examples = g["clusters"]["activations"]
    assert all("[[" in t for c in examples for t in c["top_examples"])


def test_e2_quick(tmp_path):
    rec = run_quick("e2_directions", tmp_path)
    for r in rec["results"].values():
        assert r["histogram_counts_sum_to_n"] is True
        assert r["nmf"]["n_components"] == 64 and 0 <= r["nmf"]["relative_error"] < 1
        k = r["nmf"]["n_components"]
        for v in r["directions"].values():
            assert len(v) == k
        assert all(0 <= h <= math.log2(13) + 1e-9 for h in r["directions"]["label_entropy_bits"])
        assert len(r["clusters_sizes"]) == r["clusters"]["n_clusters"]
    assert rec["results"]["digits"]["nmf"]["input"].startswith("none needed")
    assert rec["results"]["gpt2"]["nmf"]["input"].startswith("split")
    assert rec["results"]["gpt2"]["nmf"]["input_width"] == 2 * 3072
    assert rec["results"]["gpt2"]["nmf"]["negative_share_of_activations"] > 0
