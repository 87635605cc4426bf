"""E1: HDBSCAN clusters of activations, hard spline codes and soft codes (the polytope lens's Prediction 1).

For each source (see :mod:`maso_experiments._lens_sources`) and each ``min_cluster_size`` of the sweep, HDBSCAN
(the ``hdbscan`` package, on precomputed distances) clusters the inputs by their activations (Euclidean), their
hard codes (Hamming) of layer L alone and of the layers L -> output, and their soft codes (L1). Reported: the
number of clusters, the noise fraction, each clustering's purity by the reference label (class, topic, photo),
ARI/NMI against the labels and between clusterings, and the top examples of the largest clusters.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from maso_experiments import _lens_sources as ls

NAME = "e1_clusters"
TITLE = "E1: HDBSCAN clusters of spline codes vs activations (are polytope clusters monosemantic?)"
CLAIM = """\
Black, Sharkey et al., "Interpreting Neural Networks through the Polytope Lens" (Conjecture, 2022), abstract:
polytopes "can be used to identify monosemantic regions of activation space (while directions are not in
general monosemantic)". The article clusters spline codes (and activations) with HDBSCAN and shows the top
examples of clusters as monosemantic. Sharkey (AF reply): "For GPT2-small, we selected 6/1024 tokens in each
sequence ... and clustered on the entire MLP hidden dimension (4 * 768). For InceptionV1, we clustered the vectors
corresponding to all the channel dimensions for a single fixed spatial dimension (i.e. one example of size
[n_channels] per image)." The HDBSCAN parameters and the exact code used are not given."""

#: {option: (default, quick value)}
OPTIONS: dict[str, tuple[Any, Any]] = {
    "source": ("gpt2", "digits,gpt2"),     # comma list of digits, gpt2, minilm, inception
    "layer": ("auto", "auto"),             # gpt2/minilm: block index; digits: block1|block2|hidden; inception: mixedXY
    "min_cluster_size": ("5,10,25,50", "5,15"),
    "max_rows": (0, 600),                  # cap on the rows clustered (0 = all)
    "store": (None, None),                 # an existing activation store (folder) to reuse (gpt2/minilm)
    "weights": (None, None),               # GPT-2 weights (hub name or folder); None = random weights. With
                                           # source=inception alone: its weights file (or use inception_weights)
    "n_layer": (12, 2),                    # random GPT-2's layers
    "seq_len": (1024, 128),
    "n_seq": (0, 24),                      # 0 = every sequence the text gives (~1,000 -> ~6,000 rows)
    "articles": (0, 150),
    "batch": (8, 8),
    "later_blocks": (True, True),          # gpt2/minilm: also cluster the concatenated codes of blocks >= L
    "inception_weights": (None, None),     # InceptionV1 weights file; None = random weights
    "per_photo": (25, 3),                  # inception: augmented views per photo
    "top": (6, 6),                         # top examples shown per cluster
}


def _sweep(spec: Any) -> list[int]:
    return [int(v) for v in str(spec).split(",") if str(v).strip()]


def run_source(ctx: Any, d: ls.LensData) -> dict[str, Any]:
    """E1 on one source: every feature at every min_cluster_size; figures; comparisons. Returns its results."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    res: dict[str, Any] = {"rows": d.n, "layer": d.layer, "article_feature": d.article_feature,
                           "features": {k: {"metric": f.metric, "width": int(f.x.shape[1]), "describe": f.describe}
                                        for k, f in d.features.items()},
                           "timings_s": dict(d.timings), "sweep": {}}
    sweep = _sweep(ctx.opt["min_cluster_size"])
    dists: dict[str, np.ndarray] = {}
    for name, f in d.features.items():
        t0 = time.perf_counter()
        dists[name] = ls.distances(f.x, f.metric, ctx.device)
        res["timings_s"][f"distances_{name}"] = time.perf_counter() - t0
    labels_at: dict[int, dict[str, np.ndarray]] = {}
    for mcs in sweep:
        row: dict[str, Any] = {}
        labels_at[mcs] = {}
        for name in d.features:
            t0 = time.perf_counter()
            lab = ls.hdbscan_labels(dists[name], mcs)
            stats = ls.clustering_stats(lab, d.labels)
            stats["hdbscan_s"] = time.perf_counter() - t0
            row[name] = stats
            labels_at[mcs][name] = lab
        names = list(d.features)
        row["between"] = {f"{a} vs {b}": {"ari": float(adjusted_rand_score(labels_at[mcs][a], labels_at[mcs][b])),
                                          "nmi": float(normalized_mutual_info_score(labels_at[mcs][a], labels_at[mcs][b]))}
                          for i, a in enumerate(names) for b in names[i + 1:]}
        res["sweep"][str(mcs)] = row
        ctx.log(f"{d.source}: min_cluster_size {mcs}: " + ", ".join(
            f"{k} {v['n_clusters']} clusters/{v['noise_fraction']:.0%} noise" for k, v in row.items() if k != "between"))
    # summaries and examples at the figure's min_cluster_size: the smallest of the sweep that gives >= 2 clusters
    # for the article's feature (else the smallest)
    art = d.article_feature
    fig_mcs = next((m for m in sweep if res["sweep"][str(m)][art]["n_clusters"] >= 2), sweep[0])
    res["figure_min_cluster_size"] = fig_mcs
    res["clusters"] = {}
    for name in d.features:
        sums = ls.summarise(labels_at[fig_mcs][name], d.labels, d.label_names, dists[name], top=int(ctx.opt["top"]))
        res["clusters"][name] = [{"cluster": s.cluster, "size": s.size, "majority": s.majority, "purity": s.purity,
                                  "label_entropy_bits": s.label_entropy_bits, "top": list(s.top),
                                  "top_examples": [d.show(i) for i in s.top]} for s in sums]
        if name in (art, "activations"):
            ctx.figure(f"e1-{d.source}-{name}-examples",
                       ls.examples_figure(d, sums, f"{d.source}, layer {d.layer}: top examples of the largest clusters of "
                                          f"{name} (min_cluster_size {fig_mcs})", per_cluster=int(ctx.opt["top"])),
                       f"{d.source} ({'trained' if d.trained else 'RANDOM weights'}), layer {d.layer}: the largest "
                       f"HDBSCAN clusters of {name} ({d.features[name].metric} distance) at min_cluster_size "
                       f"{fig_mcs}, each with the members nearest its medoid "
                       + ("(token in [[...]])" if d.contexts is not None else "(thumbnails)")
                       + f"; purity by {d.label_kind}.")
    _sweep_figure(ctx, d, res, sweep)
    _compare(ctx, d, res, fig_mcs)
    return res


def _sweep_figure(ctx: Any, d: ls.LensData, res: dict[str, Any], sweep: list[int]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for name in d.features:
        rows = [res["sweep"][str(m)][name] for m in sweep]
        style = "-" if "untrained" not in name else ":"
        axes[0].plot(sweep, [r["n_clusters"] for r in rows], style, marker="o", label=name)
        axes[1].plot(sweep, [r["noise_fraction"] for r in rows], style, marker="o", label=name)
        axes[2].plot(sweep, [np.nan if r["purity"] is None else r["purity"] for r in rows], style, marker="o",
                     label=name)
    base = res["sweep"][str(sweep[0])]["activations"]["majority_baseline_purity"]
    axes[2].axhline(base, color="gray", lw=0.8, ls="--", label="majority label share")
    for ax, t in zip(axes, ("clusters", "noise fraction", f"purity by {d.label_kind} (clustered points)")):
        ax.set_xscale("log")
        ax.set_xlabel("min_cluster_size")
        ax.set_title(t, fontsize=9)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{d.source}, layer {d.layer}: HDBSCAN sweep ({d.n} inputs)", fontsize=10)
    ctx.figure(f"e1-{d.source}-sweep", fig, f"{d.source} ({'trained' if d.trained else 'RANDOM weights'}): number of "
               f"clusters, noise fraction and {d.label_kind} purity of every representation against min_cluster_size.")


def _compare(ctx: Any, d: ls.LensData, res: dict[str, Any], mcs: int) -> None:
    row = res["sweep"][str(mcs)]
    art, act = row[d.article_feature], row["activations"]

    def fmt(r: dict[str, Any]) -> str:
        pur = "n/a" if r["purity"] is None else f"{r['purity']:.2f}"
        share = "" if r["share_of_clusters_purity_ge_0.9"] is None else \
            f" ({r['share_of_clusters_purity_ge_0.9']:.0%} of clusters >= 0.9 pure)"
        return (f"{r['n_clusters']} clusters, {r['noise_fraction']:.0%} noise, purity {pur}{share}, "
                f"ARI {r['ari_vs_labels']:.2f} / NMI {r['nmi_vs_labels']:.2f} vs {d.label_kind}")

    found = (f"{d.source} layer {d.layer}, min_cluster_size {mcs}: {d.article_feature}: {fmt(art)}; activations: "
             f"{fmt(act)} (majority {d.label_kind} share {art['majority_baseline_purity']:.2f})")
    if d.source == "digits":
        un = row.get(d.article_feature + "_untrained")
        if un:
            found += f"; untrained control's {d.article_feature}: {fmt(un)}"
        pure = art["purity"] is not None and art["purity"] >= 0.9 and art["n_clusters"] >= 2
        verdict = ("consistent: the code clusters are nearly single-class (purity >= 0.9)" if pure else
                   "not consistent: the code clusters mix classes (purity < 0.9)") + (
            f"; {art['noise_fraction']:.0%} of the inputs are noise, in no cluster" if art["noise_fraction"] > 0.3
            else "")
        if art["purity"] is not None and act["purity"] is not None:
            verdict += ("; the activation clusters are as pure or purer" if act["purity"] >= art["purity"] else
                        "; purer than the activation clusters")
        pix = row.get("pixels")
        if pix:
            found += f"; raw pixels: {fmt(pix)}"
        controls = [(w, r["purity"]) for w, r in (("the untrained network's codes", un), ("the raw pixels", pix))
                    if r and r["purity"] is not None and art["purity"] is not None and r["purity"] >= art["purity"] - 0.05]
        if pure and controls:
            verdict += ("; but " + " and ".join(f"{w} ({p:.2f})" for w, p in controls) + " cluster about as purely, "
                        "so the purity reflects how separable the digits are, not what training put into the codes")
        rng_ = {}
        for name in (d.article_feature, "activations", d.article_feature + "_untrained", "pixels"):
            vals = [r[name]["purity"] for r in res["sweep"].values() if name in r and r[name]["purity"] is not None]
            if vals:
                rng_[name] = f"{min(vals):.2f}-{max(vals):.2f}"
        found += "; purity over the whole min_cluster_size sweep: " + ", ".join(f"{k} {v}" for k, v in rng_.items())
        ctx.compare("Polytope (spline-code) clusters are monosemantic", found, verdict)
    elif not d.trained:
        ctx.compare("Polytope (spline-code) clusters are monosemantic", found,
                    f"not tested here: {d.source} has RANDOM weights offline (no trained weights ship), so its "
                    "clusters say nothing about what a trained network represents; the numbers test the plumbing")
    else:
        ctx.compare("Polytope (spline-code) clusters are monosemantic", found,
                    f"not tested here: {d.label_kind} labels are too coarse a semantics to call a cluster "
                    "monosemantic or not; see the examples figure")


def run(ctx: Any) -> None:
    """Run E1 on every source of ``ctx.opt["source"]``."""
    srcs = ls.sources(ctx.opt["source"])
    ctx.choice("HDBSCAN from the hdbscan package (excess of mass, min_samples = min_cluster_size) on precomputed "
               "distance matrices: scikit-learn's HDBSCAN mis-clusters integer Hamming distances (ARI 0.73 vs 1.0 "
               "measured); the article's min_cluster_size is unknown, so it is swept.")
    ctx.choice("Distances: Hamming (number of differing units; a max-pool unit counts once when its argmax moved) "
               "on hard codes, Euclidean on activations, L1 on soft codes (= expected Hamming with shared uniforms, "
               "theory.md §2.4). Hard code = 1[pre-activation > 0] for ReLU and GELU units.")
    ctx.choice("Purity of a clustering = size-weighted share of each cluster's majority label, over the clustered "
               "(non-noise) points; ARI/NMI count noise as one more label (and are also given on the clustered "
               "points only). Top examples of a cluster = its members nearest its medoid.")
    for src in srcs:
        ctx.log(f"loading source {src}")
        d = ls.load_source(src, ctx.opt, ctx)
        for note in d.notes:
            ctx.choice(note)
        ctx.describe(**{f"{src}: {k}": v for k, v in d.setup.items()})
        ctx.describe(**{f"{src}: {k}": f.describe for k, f in d.features.items()})
        ctx.results[src] = run_source(ctx, d)
    if "gpt2" in srcs or "minilm" in srcs:
        ctx.choice("GPT-2/MiniLM: the 'layers L -> output' code is the code of MLP block L: the later blocks are "
                   "reached through attention and LayerNorm, which are not piecewise affine, so no spline code of a "
                   "map from block L exists; 'codes_later' concatenates the codes of blocks >= L as sampled on the "
                   "real forward (our guess at what the article may have done), not a spline code of a CPA map.")
