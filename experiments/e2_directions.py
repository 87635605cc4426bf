"""E2: NMF directions vs spline-code clusters (are directions polysemantic where polytope clusters are not?).

For each source (see :mod:`maso_experiments._lens_sources`): HDBSCAN clusters the inputs by the article's spline
code (as in E1, at one ``min_cluster_size``); NMF with 64 components factorises the activations; for every
direction and every input the cosine similarity is computed, its histogram stacked by cluster, and each direction
gets a polysemanticity score: the number of clusters and the entropy of the cluster (and of the reference label)
distribution among its top-N inputs by cosine. The clusters get the same label entropy among their N members
nearest their medoid, so the two can be compared.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from maso_experiments import _lens_sources as ls

NAME = "e2_directions"
TITLE = "E2: NMF directions vs spline-code clusters (polysemantic directions, monosemantic polytopes?)"
CLAIM = """\
Black, Sharkey et al., "Interpreting Neural Networks through the Polytope Lens" (Conjecture, 2022), abstract:
polytopes "can be used to identify monosemantic regions of activation space (while directions are not in
general monosemantic)". The article factorises activations with NMF (64 components) and shows histograms of the
cosine similarity between activations and NMF directions, coloured by (spline-code) cluster: a direction's high
cosines come from several clusters. Sharkey (AF reply) chose clustering over decomposition to capture the
monosemanticity of local regions. The NMF settings beyond the 64 components are not given."""

#: {option: (default, quick value)}
OPTIONS: dict[str, tuple[Any, Any]] = {
    "source": ("gpt2", "digits,gpt2"),     # comma list of digits, gpt2, minilm, inception
    "layer": ("auto", "auto"),
    "min_cluster_size": (10, 5),           # HDBSCAN on the article's code
    "n_components": (64, 64),              # fewer when there are fewer rows
    "max_iter": (1000, 500),
    "solver": ("mu", "mu"),                # sklearn NMF solver: mu (multiplicative updates) | cd
    "negatives": ("split", "split"),       # split ([x+, x-]) | clip (GELU outputs below 0)
    "top_n": (50, 20),                     # the top inputs of a direction by cosine
    "max_rows": (0, 600),
    "store": (None, None),
    "weights": (None, None),               # as in e1_clusters
    "n_layer": (12, 2),
    "seq_len": (1024, 128),
    "n_seq": (0, 24),
    "articles": (0, 150),
    "batch": (8, 8),
    "later_blocks": (False, False),
    "inception_weights": (None, None),
    "per_photo": (25, 3),
    "shown": (8, 8),                       # directions in the histogram grid
}


def nonnegative(x: np.ndarray, how: str) -> tuple[np.ndarray, str]:
    """``x`` made non-negative for NMF: unchanged if it already is; else ``split`` gives ``[x+, x-]`` (exact:
    ``x = x+ - x-``), ``clip`` gives ``max(x, 0)`` (drops the negative part)."""
    if x.min() >= 0:
        return x, "none needed (the activations are non-negative)"
    if how == "split":
        return np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], 1), "split into [x+, x-]"
    if how == "clip":
        return np.maximum(x, 0), "clipped at 0"
    raise ValueError(f"negatives must be 'split' or 'clip'; got {how!r}")


def directions(components: np.ndarray, d: int) -> np.ndarray:
    """NMF components as directions of the activation space: ``h+ - h-`` for split inputs (width ``2 d``)."""
    return components[:, :d] - components[:, d:] if components.shape[1] == 2 * d else components


def cosines(x: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """(n, k) cosine similarities between the rows of ``x`` and of ``dirs`` (0 for a zero row)."""
    xn = np.linalg.norm(x, axis=1, keepdims=True)
    dn = np.linalg.norm(dirs, axis=1, keepdims=True)
    return (x @ dirs.T) / np.maximum(xn, 1e-30) / np.maximum(dn, 1e-30).T


def stacked_counts(cos_j: np.ndarray, groups: np.ndarray, bins: np.ndarray) -> dict[int, np.ndarray]:
    """Histogram counts of one direction's cosines, one row per group (cluster); they sum to n over groups."""
    return {int(g): np.histogram(cos_j[groups == g], bins=bins)[0] for g in np.unique(groups)}


def polysemanticity(cos: np.ndarray, clusters: np.ndarray, ref: np.ndarray, top_n: int) -> dict[str, np.ndarray]:
    """Per direction, among its ``top_n`` inputs by cosine: the number of distinct clusters (noise excluded), the
    entropy (bits) of their clusters (noise as one more cluster), the noise share, and the entropy of their
    reference labels."""
    order = np.argsort(-cos, axis=0, kind="stable")[:top_n]
    n_cl, h_cl, noise, h_ref = [], [], [], []
    for j in range(cos.shape[1]):
        top = order[:, j]
        c = clusters[top]
        n_cl.append(len(np.unique(c[c >= 0])))
        h_cl.append(ls.entropy_bits(c))
        noise.append(float(np.mean(c < 0)))
        h_ref.append(ls.entropy_bits(ref[top]))
    return {"n_clusters": np.array(n_cl), "cluster_entropy_bits": np.array(h_cl), "noise_share": np.array(noise),
            "label_entropy_bits": np.array(h_ref)}


def run_source(ctx: Any, d: ls.LensData) -> dict[str, Any]:
    """E2 on one source. Returns its results."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import NMF

    art = d.features[d.article_feature]
    t0 = time.perf_counter()
    dist = ls.distances(art.x, art.metric, ctx.device)
    clusters = ls.hdbscan_labels(dist, int(ctx.opt["min_cluster_size"]))
    t_cluster = time.perf_counter() - t0
    stats = ls.clustering_stats(clusters, d.labels)
    x = d.features["activations"].x.astype(np.float64)
    xin, how = nonnegative(x, str(ctx.opt["negatives"]))
    k = min(int(ctx.opt["n_components"]), len(x) - 1, xin.shape[1])
    t0 = time.perf_counter()
    nmf = NMF(n_components=k, init="nndsvda", max_iter=int(ctx.opt["max_iter"]), solver=str(ctx.opt["solver"]),
              random_state=ctx.seed)
    w = nmf.fit_transform(xin)
    t_nmf = time.perf_counter() - t0
    rel_err = float(np.linalg.norm(xin - w @ nmf.components_) / max(np.linalg.norm(xin), 1e-30))
    dirs = directions(nmf.components_, x.shape[1])
    cos = cosines(x, dirs)
    top_n = min(int(ctx.opt["top_n"]), len(x))
    poly = polysemanticity(cos, clusters, d.labels, top_n)
    # clusters scored the same way: label entropy among the top_n members nearest the medoid (fewer if smaller)
    sums = ls.summarise(clusters, d.labels, d.label_names, dist, top=top_n)
    cl_h = np.array([ls.entropy_bits(d.labels[list(s.top)]) for s in sums])
    cl_pur = np.array([s.purity for s in sums])
    # the same score for HDBSCAN clusters of the activations themselves: separates "clusters vs directions" from
    # "spline codes vs activations"
    act_dist = ls.distances(x, "euclidean", ctx.device)
    act_clusters = ls.hdbscan_labels(act_dist, int(ctx.opt["min_cluster_size"]))
    act_sums = ls.summarise(act_clusters, d.labels, d.label_names, act_dist, top=top_n)
    act_h = np.array([ls.entropy_bits(d.labels[list(s.top)]) for s in act_sums])
    rng = ctx.rng(21)
    rand_h = np.array([ls.entropy_bits(d.labels[rng.choice(len(x), top_n, replace=False)]) for _ in range(200)])
    res: dict[str, Any] = {
        "rows": d.n, "layer": d.layer, "clustered_feature": d.article_feature, "clusters": stats,
        "nmf": {"n_components": k, "solver": str(ctx.opt["solver"]),
                "converged": int(nmf.n_iter_) < int(ctx.opt["max_iter"]), "input": how,
                "input_width": int(xin.shape[1]), "n_iter": int(nmf.n_iter_),
                "relative_error": rel_err, "seconds": t_nmf,
                "negative_share_of_activations": float(np.mean(x < 0))},
        "timings_s": {**d.timings, "cluster_s": t_cluster, "nmf_s": t_nmf},
        "top_n": top_n,
        "directions": {key: v.tolist() for key, v in poly.items()},
        "directions_summary": {f"mean_{key}": float(v.mean()) for key, v in poly.items()},
        "clusters_label_entropy_bits": cl_h.tolist(), "clusters_purity": cl_pur.tolist(),
        "clusters_sizes": [s.size for s in sums],
        "mean_cluster_label_entropy_bits": float(cl_h.mean()) if len(cl_h) else None,
        "random_top_n_label_entropy_bits": float(rand_h.mean()),
        "activation_clusters": ls.clustering_stats(act_clusters, d.labels),
        "activation_clusters_label_entropy_bits": act_h.tolist(),
        "mean_activation_cluster_label_entropy_bits": float(act_h.mean()) if len(act_h) else None,
        "labels_entropy_bits": ls.entropy_bits(d.labels),
    }
    # the histogram grid: the shown directions with the highest cosine spread (most informative), stacked by the
    # largest clusters, the rest of the clusters, and noise
    shown = np.argsort(-cos.std(0), kind="stable")[: int(ctx.opt["shown"])]
    bins = np.linspace(min(-0.05, cos.min()), 1.0, 41)
    big = [s.cluster for s in sums[:8]]
    groups = np.where(np.isin(clusters, big), clusters, np.where(clusters >= 0, -2, -1))
    cols = int(np.ceil(len(shown) / 2))
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 5.6), squeeze=False)
    counts_ok = []
    palette = plt.get_cmap("tab10")
    order = big + [-2, -1]
    for ax, j in zip(axes.ravel(), shown):
        counts = stacked_counts(cos[:, j], groups, bins)
        counts_ok.append(int(sum(c.sum() for c in counts.values())) == len(x))
        bottom = np.zeros(len(bins) - 1)
        for gi, g in enumerate(order):
            if g not in counts:
                continue
            colour = "lightgray" if g == -1 else ("dimgray" if g == -2 else palette(gi % 10))
            label = "noise" if g == -1 else ("other clusters" if g == -2 else f"c{g}")
            ax.bar(bins[:-1], counts[g], width=np.diff(bins), bottom=bottom, align="edge", color=colour, label=label)
            bottom += counts[g]
        ax.set_title(f"direction {j}: {poly['n_clusters'][j]} clusters in top {top_n}", fontsize=8)
        ax.set_xlabel("cosine", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.suptitle(f"{d.source}, layer {d.layer}: cosine of every input with NMF directions, stacked by "
                 f"{d.article_feature} cluster", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 0.95))
    res["histogram_counts_sum_to_n"] = bool(all(counts_ok))
    res["histogram_directions"] = shown.tolist()
    ctx.figure(f"e2-{d.source}-histograms", fig,
               f"{d.source} ({'trained' if d.trained else 'RANDOM weights'}), layer {d.layer}: histograms of the "
               f"cosine between each input's activation and {len(shown)} of the {k} NMF directions (those with the "
               f"widest cosine spread), stacked by HDBSCAN cluster of {d.article_feature}.")
    # polysemanticity: directions vs clusters
    fig, ax = plt.subplots(figsize=(6, 3.4))
    hi = max(1.0, float(np.log2(len(d.label_names))))
    b = np.linspace(0, hi, 25)
    ax.hist(poly["label_entropy_bits"], bins=b, alpha=0.6, label=f"NMF directions (top {top_n} by cosine)")
    if len(cl_h):
        ax.hist(cl_h, bins=b, alpha=0.6, label=f"clusters of {d.article_feature} (top {top_n} by medoid)")
    if len(act_h):
        ax.hist(act_h, bins=b, alpha=0.4, histtype="step", lw=1.5, label=f"clusters of activations (top {top_n})")
    ax.axvline(rand_h.mean(), color="k", ls="--", lw=0.8, label=f"random {top_n} inputs")
    ax.set_xlabel(f"entropy of the {d.label_kind} labels (bits)")
    ax.legend(fontsize=7)
    ax.set_title(f"{d.source}, layer {d.layer}: label entropy, directions vs clusters", fontsize=9)
    ctx.figure(f"e2-{d.source}-polysemanticity", fig,
               f"{d.source} ({'trained' if d.trained else 'RANDOM weights'}): entropy of the {d.label_kind} labels "
               f"among each NMF direction's top {top_n} inputs by cosine and among each cluster's {top_n} members "
               "nearest its medoid (0 = one label: monosemantic by this label); dashed: random inputs.")
    _compare(ctx, d, res)
    return res


def _compare(ctx: Any, d: ls.LensData, res: dict[str, Any]) -> None:
    dh = res["directions_summary"]["mean_label_entropy_bits"]
    ch = res["mean_cluster_label_entropy_bits"]
    nc = res["directions_summary"]["mean_n_clusters"]
    found = (f"{d.source} layer {d.layer}: {res['nmf']['n_components']} NMF directions ({res['nmf']['input']}); "
             f"their top {res['top_n']} inputs span {nc:.1f} clusters on average (noise share "
             f"{res['directions_summary']['mean_noise_share']:.0%}); {d.label_kind} entropy of a direction's top "
             f"{res['top_n']}: {dh:.2f} bits, of a cluster's: " + ("n/a (no clusters)" if ch is None else f"{ch:.2f} bits")
             + ", of an activation cluster's: " + ("n/a" if res["mean_activation_cluster_label_entropy_bits"] is None
                                                    else f"{res['mean_activation_cluster_label_entropy_bits']:.2f} bits")
             + f", of random inputs: {res['random_top_n_label_entropy_bits']:.2f} bits "
             f"({res['clusters']['n_clusters']} clusters, {res['clusters']['noise_fraction']:.0%} noise)")
    claim = "NMF directions are polysemantic while polytope clusters are monosemantic"
    if d.source == "digits":
        if ch is None:
            verdict = "not tested here: HDBSCAN found no clusters"
        elif dh > ch + 0.25:
            verdict = "consistent: a direction's top inputs mix more classes than a cluster's"
        elif dh < ch - 0.25:
            verdict = "not consistent: a direction's top inputs mix fewer classes than a cluster's"
        else:
            verdict = "not consistent: directions and clusters mix classes about equally (within 0.25 bits)"
        ah = res["mean_activation_cluster_label_entropy_bits"]
        if ch is not None and ah is not None and ah <= ch + 0.25 and dh > ch + 0.25:
            verdict += (f"; but clusters of the activations themselves are as pure ({ah:.2f} bits): the contrast is "
                        "between clustering and decomposing, not between spline codes and activations")
        ctx.compare(claim, found, verdict)
    elif not d.trained:
        ctx.compare(claim, found, f"not tested here: {d.source} has RANDOM weights offline, so neither its directions "
                    "nor its clusters mean anything; the numbers test the plumbing")
    else:
        ctx.compare(claim, found, f"not tested here: {d.label_kind} labels are too coarse a semantics; the numbers "
                    "compare label mixing only")


def run(ctx: Any) -> None:
    """Run E2 on every source of ``ctx.opt["source"]``."""
    srcs = ls.sources(ctx.opt["source"])
    ctx.choice(f"NMF: scikit-learn's NMF(n_components=64, init='nndsvda', solver={ctx.opt['solver']!r}) (Frobenius "
               "loss), max_iter as in the options, seeded; fewer components only where there are fewer rows. The "
               "multiplicative-update solver by default: coordinate descent took 31 s for 144 x 6,144 split GPT-2 "
               "rows (500 iterations) against 2 s for 'mu' at a relative error within 0.01, and would take tens of "
               "minutes on the full ~6,000 rows.")
    if ctx.opt["negatives"] == "split":
        ctx.choice("GELU outputs are negative down to -0.17 (and most of them are below 0), so NMF cannot take them "
                   "as they are: each row is split into [x+, x-] = [max(x, 0), max(-x, 0)], which keeps all of x "
                   "(x = x+ - x-) instead of clipping its negative part away; a component (h+, h-) is the direction "
                   "h+ - h- of the activation space, and cosines are taken there, against the original x.")
    else:
        ctx.choice("GELU outputs clipped at 0 before NMF (their negative part, down to -0.17, is dropped).")
    ctx.choice("Clusters: HDBSCAN (hdbscan package, precomputed Hamming distances) on the article's code (the "
               "'layers L -> output' code; GPT-2: MLP block L's code) at one min_cluster_size.")
    ctx.choice("Polysemanticity of a direction: among its top-N inputs by cosine, the number of clusters and the "
               "entropy of clusters and of labels; a cluster's label entropy is taken among its N members nearest its "
               "medoid, so both are measured on N inputs (smaller clusters: all members).")
    for src in srcs:
        ctx.log(f"loading source {src}")
        d = ls.load_source(src, ctx.opt, ctx)
        for note in d.notes:
            ctx.choice(note)
        ctx.describe(**{f"{src}: {k}": v for k, v in d.setup.items()})
        ctx.describe(**{f"{src}: clustered": d.features[d.article_feature].describe,
                        f"{src}: factorised": d.features["activations"].describe})
        ctx.results[src] = run_source(ctx, d)
