"""E3: the exact density of polytope boundaries between the layer-L activations of two examples.

For pairs of examples of the same class and of different classes, the straight path between their layer-L
activations is walked exactly (``maso.ray_crossings`` from one to the other: every crossing of a boundary of
layers L...output, with the units that flip there), and the predicted class is followed exactly along it (the
logits are affine between crossings). Densities are per unit of Euclidean length in layer L's activation
space; same vs different class is tested per layer (Mann-Whitney U, permutation test, effect sizes).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import torch

NAME = "e3_between"
TITLE = "E3: exact polytope-boundary density between same-class and different-class examples"
CLAIM = """\
Black, Sharkey et al., "Interpreting Neural Networks through the Polytope Lens" (2022), section "Polytope
boundaries reflect semantic boundaries": "activations caused by images of different classes should be separated
by regions of denser polytope boundaries than those caused by images of the same class"; measured "by dividing
the distance between two activation vector's spline codes by their Euclidean distance", "it indeed turns out to
be the case [...]. The intra- and inter-class difference is small, but significant. The difference gets more
robust as we look at higher layers." (InceptionV1, trained, ImageNet; Appendix A.) The article gives no numbers,
pair counts or test."""

#: {option: (full default, quick value)}
OPTIONS: dict[str, tuple[Any, Any]] = {
    "models": ("digits,effnet,inception,fashion", "digits"),
    "layers": ("input,block1,block2,hidden", "block1,block2,hidden"),   # digits / fashion CNN layers L
    "pairs": (200, 20),                 # pairs per group (same class, different class) and layer
    "epochs": (30, 5),                  # training epochs of the digits CNN
    "untrained": (True, True),          # also walk the untrained CNN (control)
    "effnet_block": (15, 15),           # EfficientNet-Lite0: L = the output of _blocks.K
    "effnet_pairs": (6, 2),
    "inception_layer": ("mixed5a", "mixed5a"),
    "inception_weights": (None, None),  # an inception5h weights file; None: random weights
    "inception_pairs": (6, 2),
    "photos_per_group": (4, 2),         # views per photo (effnet, inception)
    "pieces": (40, 40),                 # sub-paths per path in the big networks (memory of the walk)
    "n_bins": (20, 20),                 # bins per path for density near class changes
    "n_perm": (5000, 1000),
}


def _labelled_walks(ctx: Any, tail: Any, acts: np.ndarray, same: np.ndarray, diff: np.ndarray, *,
                    pieces: int = 1, batch: int = 64) -> tuple[list[Any], list[Any], float]:
    from maso_experiments import _density as D

    t0 = time.perf_counter()
    pairs = np.concatenate([same, diff])
    ws = D.walks(tail, acts[pairs[:, 0]], acts[pairs[:, 1]] - acts[pairs[:, 0]], 0.0, 1.0, pieces=pieces,
                 batch=batch, log=ctx.log)
    return ws[:len(same)], ws[len(same):], time.perf_counter() - t0


def _group_stats(ctx: Any, ws_same: list[Any], ws_diff: list[Any], stream: int, seconds: float, n_units: int,
                 dim: int) -> dict[str, Any]:
    from maso_experiments import _density as D

    rng = ctx.rng(stream)
    s, d = D.walk_summary(ws_same), D.walk_summary(ws_diff)
    tests = {}
    for key in ("flip_density", "density", "endpoint_density"):
        tests[key] = D.compare_groups(s["per_path"][key], d["per_path"][key], rng, int(ctx.opt["n_perm"]))
    near = D.density_near_changes(ws_same + ws_diff, int(ctx.opt["n_bins"]))
    return {"n_units": n_units, "input_dim": dim, "seconds": seconds, "same": s, "different": d,
            "tests_different_vs_same": tests, "density_near_class_changes": near,
            "uncertified_pieces": int(sum(w.uncertified for w in ws_same + ws_diff))}


def _cnn(ctx: Any, name: str, cnn: Any, layers: list[str], stream: int,
         walks_kept: dict[str, dict[str, list]]) -> dict[str, Any]:
    from maso_experiments import _density as D

    test = cnn.test
    same, diff = D.pair_indices(test.y, int(ctx.opt["pairs"]), int(ctx.opt["pairs"]), ctx.rng(stream))
    x = torch.from_numpy(test.x).double().to(ctx.device)
    out: dict[str, Any] = {"accuracy": cnn.accuracy, "pairs_same": same, "pairs_different": diff, "layers": {}}
    nets = [("trained", cnn.model)] + ([("untrained", cnn.untrained)] if ctx.opt["untrained"] else [])
    for which, model in nets:
        model = model.to(ctx.device)
        for k, layer in enumerate(layers):
            tail, acts = D.digits_tail(model, layer, x)
            ws, wd, sec = _labelled_walks(ctx, tail, acts, same, diff)
            r = _group_stats(ctx, ws, wd, stream * 100 + k + (50 if which == "untrained" else 0), sec,
                             tail.n_units, tail.input_dim)
            out["layers"].setdefault(which, {})[layer] = r
            if which == "trained":
                walks_kept[layer] = {"same": ws, "different": wd}
            t = r["tests_different_vs_same"]["flip_density"]
            ctx.log(f"{name} {which} {layer}: {tail.n_units} units, flips/length same {t['mean_x']:.3g} vs "
                    f"different {t['mean_y']:.3g} (MW p {_p(t['mann_whitney_p'])}) in {sec:.1f} s")
    return out


def _photos(ctx: Any, kind: str, stream: int) -> dict[str, Any]:
    from maso_experiments import _density as D, data

    rng = ctx.rng(stream)
    n_pairs = int(ctx.opt[f"{kind}_pairs"])
    images, photo, names = data.photo_views(int(ctx.opt["photos_per_group"]), rng=rng)
    pt = D.photo_tail(kind, images, ctx.opt, device=ctx.device, seed=ctx.seed)
    model, x, layer, tail, acts, what = pt.model, pt.x, pt.layer, pt.net, pt.acts, pt.what
    with torch.no_grad():
        pred = model(x).argmax(1).cpu().numpy()
    same, diff = D.pair_indices(photo, n_pairs, n_pairs, rng)
    ctx.log(f"{kind}: tail after {layer}, {tail.input_dim} dims, {tail.n_units} units; walking {2 * n_pairs} pairs")
    ws, wd, sec = _labelled_walks(ctx, tail, acts, same, diff, pieces=int(ctx.opt["pieces"]), batch=1)
    r = _group_stats(ctx, ws, wd, stream * 100, sec, tail.n_units, tail.input_dim)
    r.update(model=what, layer=layer, photos=list(names), predicted_class=pred, photo_of_view=photo,
             seconds_per_pair=sec / max(1, 2 * n_pairs))
    ctx.log(f"{kind}: {sec:.0f} s for {2 * n_pairs} pairs")
    return r


def _figure(ctx: Any, name: str, res: dict[str, Any], layers: list[str]) -> None:
    import matplotlib.pyplot as plt

    rows = [w for w in ("trained", "untrained") if w in res["layers"]]
    fig, axes = plt.subplots(len(rows), len(layers), figsize=(3.2 * len(layers), 2.8 * len(rows)), squeeze=False)
    for r, which in enumerate(rows):
        for c, layer in enumerate(layers):
            g = res["layers"][which][layer]
            ax = axes[r][c]
            s = g["same"]["per_path"]["flip_density"]
            d = g["different"]["per_path"]["flip_density"]
            ax.boxplot([s, d], tick_labels=["same", "different"], showfliers=True)
            p = g["tests_different_vs_same"]["flip_density"]["mann_whitney_p"]
            ax.set_title(f"{which} {layer} ({g['n_units']} units)\nMW p = {p:.2g}" if p is not None else
                         f"{which} {layer} ({g['n_units']} units)", fontsize=8)
            if c == 0:
                ax.set_ylabel("units flipped per unit length\n(exact)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    ctx.figure(f"{name}-density", fig, f"{name}: exact boundary density (units flipped per unit length in layer L's "
               "space) along straight paths between same-class and different-class test images, by layer L.")


def _profile_figure(ctx: Any, name: str, res: dict[str, Any], layers: list[str], ws_by_layer: dict) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 2.6), squeeze=False)
    edges = np.linspace(0, 1, 21)
    mid = (edges[:-1] + edges[1:]) / 2
    for c, layer in enumerate(layers):
        ax = axes[0][c]
        for key, color in (("same", "tab:blue"), ("different", "tab:red")):
            prof = np.mean([w.binned(edges)[1] for w in ws_by_layer[layer][key]], axis=0)
            ax.plot(mid, prof, color=color, label=key)
            changes = np.concatenate([w.class_t for w in ws_by_layer[layer][key]] or [np.zeros(0)])
            ax.plot(changes, np.zeros_like(changes), "|", color=color, ms=8)
        ax.set_title(f"{layer}", fontsize=8)
        ax.set_xlabel("t along the path (ticks: class changes)", fontsize=7)
        ax.tick_params(labelsize=7)
        if c == 0:
            ax.set_ylabel("mean flips per unit length", fontsize=8)
            ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure(f"{name}-profile", fig, f"{name} (trained): mean exact flip density along the path t in [0, 1] "
               "(20 bins), same vs different class; ticks on the axis mark the exact class changes.")


def run(ctx: Any) -> None:
    from maso_experiments import data

    models = [m.strip() for m in str(ctx.opt["models"]).split(",") if m.strip()]
    layers = [v.strip() for v in str(ctx.opt["layers"]).split(",") if v.strip()]
    ctx.choice("Path: the straight segment between the two layer-L activations, walked exactly (all crossings of "
               "the boundaries of layers L...output, i.e. of the network from layer L's output to the logits); the "
               "article divides the endpoint codes' Hamming distance by the Euclidean distance. Both are reported: "
               "'flip_density' = units flipped summed over all crossings / length (exact), 'density' = distinct "
               "crossing points / length, 'endpoint_density' = the article's endpoint Hamming / length (a lower "
               "bound of flip_density), and flip density / code length.")
    ctx.choice("Layer L = the OUTPUT of the named module (maso.from_torch(..., start=L)); its own nonlinearity is "
               "not in the code (the code is of layers after L). The digits CNN's 'hidden' output feeds only the "
               "linear head: its tail has no units, so its density is 0 by construction (class changes still exist).")
    ctx.choice("Class changes: the argmax of the tail's logits, followed exactly (logits are affine between "
               "crossings; switch points solved from the affine logit differences). Density near class changes: "
               "each path cut into n_bins equal bins, bins holding a class change vs the others.")
    ctx.choice("Test: two-sided Mann-Whitney U and a permutation test (n_perm) on the mean difference of per-pair "
               "densities, different-class minus same-class; effect sizes rank-biserial r and Cohen's d. Pairs are "
               "random test-set pairs (same: equal labels; different: unequal).")
    results: dict[str, Any] = {}
    ws_profile: dict[str, dict[str, list]] = {}
    if "digits" in models:
        cnn = data.digits_cnn(seed=ctx.seed, epochs=int(ctx.opt["epochs"]))
        ctx.describe(digits_model=cnn.describe, digits_data=cnn.test.describe + f" ({len(cnn.test.y)} images)")
        res = _cnn(ctx, "digits", cnn, layers, 1, ws_profile)
        results["digits"] = res
        _figure(ctx, "digits", res, layers)
        _profile_figure(ctx, "digits", res, layers, ws_profile)
        _compare_cnn(ctx, "digits", res, layers)
    if "fashion" in models:
        try:
            train = data.fashion_mnist(None, split="train")
            test = data.fashion_mnist(2000, split="t10k")
            cnn = data.digits_cnn(seed=ctx.seed, epochs=max(3, int(ctx.opt["epochs"]) // 6), images=(train, test))
            ctx.describe(fashion_model=cnn.describe, fashion_data=test.describe)
            results["fashion"] = _cnn(ctx, "fashion", cnn, layers, 2, {})
            _compare_cnn(ctx, "fashion", results["fashion"], layers)
        except data.MissingDataError as e:
            results["fashion"] = {"missing": str(e)}
            ctx.compare("(Fashion-MNIST)", f"not run: {e}", "not tested here: data not installed")
    for kind, stream in (("effnet", 3), ("inception", 4)):
        if kind not in models:
            continue
        try:
            r = _photos(ctx, kind, stream)
        except data.MissingDataError as e:
            results[kind] = {"missing": str(e)}
            ctx.compare(f"({kind})", f"not run: {e}", "not tested here: model not installed")
            continue
        results[kind] = r
        ctx.describe(**{f"{kind}_model": r["model"], f"{kind}_data": "scikit-image photos, augmented views (crops, "
                        "flips, brightness); same class = views of the same photo"})
        t = r["tests_different_vs_same"]["flip_density"]
        trained = kind == "effnet" or bool(ctx.opt["inception_weights"])
        ctx.compare(f"({kind}, L = {r['layer']}) different-class pairs cross denser boundaries than same-class",
                    f"flips per unit length: same {t['mean_x']:.3g}, different {t['mean_y']:.3g} over "
                    f"{t['n_x']}+{t['n_y']} pairs (MW p {_p(t['mann_whitney_p'])}); {r['seconds_per_pair']:.0f} s per "
                    f"pair, {r['n_units']} units",
                    ("consistent" if (t["mann_whitney_p"] or 1) < 0.05 and t["mean_diff"] > 0 else
                     "not significant at this size") if trained else
                    "not tested here: InceptionV1 has RANDOM weights offline (no trained InceptionV1 ships)")
    ctx.results.update(results)


def _compare_cnn(ctx: Any, name: str, res: dict[str, Any], layers: list[str]) -> None:
    tr = res["layers"]["trained"]
    live = [ly for ly in layers if tr[ly]["n_units"] > 0]
    effects = {ly: tr[ly]["tests_different_vs_same"]["flip_density"] for ly in live}
    found = "; ".join(f"{ly}: same {e['mean_x']:.3g} vs different {e['mean_y']:.3g} flips/length, r = "
                      f"{e['rank_biserial']:.2f}, MW p = {e['mann_whitney_p']:.2g}" for ly, e in effects.items()
                      if e["mann_whitney_p"] is not None)
    sig = [ly for ly, e in effects.items() if (e["mann_whitney_p"] or 1) < 0.05 and e["mean_diff"] > 0]
    opposite = [ly for ly, e in effects.items() if (e["mann_whitney_p"] or 1) < 0.05 and e["mean_diff"] < 0]
    verdict = ("consistent" if sig and len(sig) == len(live) else
               "partly consistent" if sig else "not consistent" if opposite else "not significant at this size")
    ctx.compare(f"({name}, trained) different-class pairs are separated by denser boundaries than same-class "
                f"pairs; small but significant", found + f" ({effects[live[0]]['n_x'] if live else 0} pairs per "
                "group)", verdict)
    rb = [effects[ly]["rank_biserial"] for ly in live]
    grows = len(rb) >= 2 and all(b > a for a, b in itertools.pairwise(rb))
    res["gap_grows_with_depth"] = grows
    res["rank_biserial_by_layer"] = dict(zip(live, rb))
    ctx.compare(f"({name}) the difference gets more robust at higher layers",
                "rank-biserial effect (different > same) by layer L: " + ", ".join(f"{ly} {v:.2f}"
                                                                                  for ly, v in zip(live, rb)),
                "consistent" if grows else "not consistent at this size" if len(rb) >= 2 else
                "not tested here: fewer than two layers with units")
    near = {ly: tr[ly]["density_near_class_changes"] for ly in live}
    ctx.compare(f"({name}) boundaries are denser where the class changes (Prediction 2's reading)",
                "; ".join(f"{ly}: {v['mean_density_with_change']:.3g} in bins with a class change vs "
                          f"{v['mean_density_without']:.3g} without (p {_p(v.get('mann_whitney_p'))})"
                          for ly, v in near.items() if v["mean_density_with_change"] is not None),
                "see numbers (exploratory; the article states it for scaling, not for these paths)")
    if "untrained" in res["layers"]:
        un = res["layers"]["untrained"]
        ctx.compare(f"({name}) (control, not in the article) the same test on the untrained network",
                    "; ".join(f"{ly}: r = {un[ly]['tests_different_vs_same']['flip_density']['rank_biserial']:.2f},"
                              f" MW p = {un[ly]['tests_different_vs_same']['flip_density']['mann_whitney_p']:.2g}"
                              for ly in live if un[ly]["tests_different_vs_same"]["flip_density"]["mann_whitney_p"]
                              is not None),
                    "control")


def _p(value: float | None) -> str:
    """A p-value for the report (two significant digits; the exact value is in results.json)."""
    return "n/a" if value is None else f"{value:.2g}"
