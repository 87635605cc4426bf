"""GPT-2 small's 12 MLP blocks as maso networks: conversion time and memory, and the cost of codes, soft codes
and maps as ratios to the torch forward of the same block on the same tokens, in the same process.

The real architecture (``GPT2LMHeadModel(GPT2Config())``, 124M parameters) with random weights, since no
trained GPT-2 ships offline; ``--weights DIR`` loads a local copy (``from_pretrained``). Token activations are
hooked at every block's MLP input on random token ids and converted token by token (``batch_dims=2``).

    python benchmarks/bench_gpt2_mlps.py [--tokens 1024] [--device cpu|cuda] [--weights DIR]
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import torch

import maso


def best(fn, repeats: int = 5) -> float:
    out = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out = min(out, time.perf_counter() - t)
    return out


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=1024, help="tokens per block (batch of 8 sequences)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=None, help="a local GPT-2 directory for from_pretrained")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.weights:
            model = transformers.GPT2LMHeadModel.from_pretrained(args.weights)
        else:
            torch.manual_seed(0)
            model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    model = model.eval().to(args.device)
    seq = max(1, args.tokens // 8)
    ids = torch.randint(0, 50257, (8, seq), generator=torch.Generator().manual_seed(0)).to(args.device)
    acts = {}
    hooks = [b.mlp.register_forward_hook(lambda m, i, o, k=k: acts.__setitem__(k, i[0]))
             for k, b in enumerate(model.transformer.h)]
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    print(f"GPT-2 small ({'weights ' + args.weights if args.weights else 'random init'}), {8 * seq} tokens per "
          f"block, device {args.device}, torch threads {torch.get_num_threads()}")
    rss0 = rss_gb()
    t = time.perf_counter()
    nets = [maso.from_torch(b.mlp, acts[k], batch_dims=2) for k, b in enumerate(model.transformer.h)]
    conv = time.perf_counter() - t
    print(f"conversion of the 12 MLPs: {conv:.2f} s ({conv / 12 * 1e3:.0f} ms each), peak RSS {rss0:.2f} -> "
          f"{rss_gb():.2f} GB; {sum(n.n_units for n in nets):,} units")
    rows = []
    for k in (0, 5, 11):
        mlp, net, x = model.transformer.h[k].mlp, nets[k], acts[k]
        with torch.no_grad():
            t_fwd = best(lambda: mlp(x))
        t_codes = best(lambda: net.codes(x))
        t_soft = best(lambda: net.soft_codes(x))
        t_op = best(lambda: net.expected_affine_at(x, dense=False).b)
        rows.append((k, t_fwd, t_codes, t_soft, t_op))
    print(f"{'block':>5} {'forward ms':>11} {'codes':>7} {'soft':>7} {'E[map] b':>10}   (ratios to the forward)")
    for k, f, c, s, o in rows:
        print(f"{k:5d} {f * 1e3:11.2f} {c / f:7.2f} {s / f:7.2f} {o / f:10.2f}")


if __name__ == "__main__":
    main()
