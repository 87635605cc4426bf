"""The experiments' activation sampling: GPT-2 tokens/s and InceptionV1 images/s, as ratios to the model's own
forward of the same batch, measured in one process.

GPT-2 small (the real architecture; random weights offline, ``--weights DIR`` for a local trained copy) on
``--batch`` sequences of ``--seq-len`` tokens of the bundled Wikipedia text, 6 positions kept per sequence:

* ``forward``: the model alone, no hooks (the baseline, ratio 1);
* ``+ hooks``: hooks on all 12 MLP blocks keeping the 6 positions (inputs, pre-activations);
* ``+ hard codes``: maso's codes of all 12 blocks on the kept rows, computed on the device (``net.codes``);
* ``+ soft codes``: also maso's soft codes (GELU's gate);
* ``chunk``: what the sampler writes for one batch: all of the above moved to host memory as NumPy (the goal:
  within 1.2x of the forward);
* for comparison, hard and soft codes of all 12 blocks on *every* token of the batch.

Streaming: ``--stream-tokens N`` runs the whole sampler (:func:`sample.language_store`) over N tokens into a
temporary store and reports tokens/s and the peak memory, against the size of what it wrote (the store is
written chunk by chunk, never held).

InceptionV1 (random weights offline; ``--inception-weights FILE``): images/s of the forward to the logits,
of the channel vector at the centre of ``--layer``, and of maso's codes of everything after that layer
computed from the layer's activation (the tail network's ``codes``).

    python benchmarks/bench_sampling.py [--device cpu|cuda] [--batch 2] [--seq-len 1024] [--stream-tokens 16384]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

import maso


def load_experiments():
    """The checkout's ``experiments/`` as ``maso_experiments`` (what ``maso experiment`` does)."""
    from maso.cli import load_experiments as load

    return load()


def timed(fn, device: str, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (synchronising the device)."""
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpt2_part(args, exps) -> None:
    data, sample = exps.data, exps.sample
    lm = data.gpt2(args.weights, seed=0)
    tok = data.gpt2_tokenizer()
    stream = data.token_stream(data.wiki_articles(600), tok, args.seq_len, args.batch)
    ids = torch.as_tensor(stream.ids).to(args.device)
    pos = data.kept_positions(args.seq_len)
    layers = list(range(len(lm.blocks)))
    model = lm.model.to(args.device)
    print(f"GPT-2: {lm.describe.split(':')[0]}; {args.batch} x {args.seq_len} tokens, {len(pos)} kept per sequence, "
          f"{len(layers)} MLP blocks, device {args.device}, {torch.get_num_threads()} threads")

    def forward():
        with torch.no_grad():
            model(input_ids=ids)

    rows = []
    base = timed(forward, args.device, args.repeats)
    rows.append(("forward (no hooks)", base))
    with sample.MLPSampler(lm, layers, pos, args.device, soft=True) as sampler:
        got = sampler.forward(ids)
        sampler.codes(got)  # converts the 12 blocks once (float64 check), outside the timings
        rows.append(("+ hooks (6 positions kept)", timed(lambda: sampler.forward(ids), args.device, args.repeats)))
        sampler.soft = False
        rows.append(("+ hard codes of the kept rows", timed(lambda: sampler.codes(sampler.forward(ids)), args.device,
                                                             args.repeats)))
        sampler.soft = True
        rows.append(("+ soft codes of the kept rows", timed(lambda: sampler.codes(sampler.forward(ids)), args.device,
                                                             args.repeats)))
        art = np.asarray(stream.article)
        rows.append(("chunk: all of it, as NumPy on the host", timed(lambda: sampler.chunk(stream.ids, 0, art),
                                                                     args.device, args.repeats)))
        nets = sampler.nets
    full = {}

    def grab_all():
        full.clear()
        hooks = [b.register_forward_hook(lambda m, i, o, k=k: full.__setitem__(k, i[0]))
                 for k, b in enumerate(lm.blocks)]
        with torch.no_grad():
            model(input_ids=ids)
        for h in hooks:
            h.remove()

    grab_all()
    hard_all = timed(lambda: [nets[k].codes(full[k]) for k in layers], args.device, args.repeats)
    soft_all = timed(lambda: [nets[k].soft_codes(full[k]) for k in layers], args.device, args.repeats)
    n_tok = ids.numel()
    print(f"{'step':44s} {'seconds':>9s} {'tokens/s':>10s} {'x forward':>10s}")
    for name, t in rows:
        print(f"{name:44s} {t:9.3f} {n_tok / t:10.0f} {t / base:10.2f}")
    print(f"{'(hard codes, all tokens, 12 blocks, alone)':44s} {hard_all:9.3f} {n_tok / hard_all:10.0f} "
          f"{hard_all / base:10.2f}")
    print(f"{'(soft codes, all tokens, 12 blocks, alone)':44s} {soft_all:9.3f} {n_tok / soft_all:10.0f} "
          f"{soft_all / base:10.2f}")
    chunk = rows[-1][1]
    print(f"goal: sampling + codes within 1.2x the forward: {chunk / base:.2f}x "
          f"({'met' if chunk / base <= 1.2 else 'NOT met'})")

    if args.stream_tokens:
        n_seq = max(1, args.stream_tokens // args.seq_len)
        before = rss_mb()
        with tempfile.TemporaryDirectory() as tmp:
            opt = {"model": "gpt2", "weights": args.weights, "n_layer": 12, "layers": "all", "seq_len": args.seq_len,
                   "n_seq": n_seq, "batch": args.batch, "articles": 0, "shard": "0/1"}
            t = time.perf_counter()
            folder, summary = sample.language_store(Path(tmp) / "store", opt, device=args.device, seed=0)
            seconds = time.perf_counter() - t
            size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        print(f"stream: {summary['tokens_seen']:,} tokens in {seconds:.1f} s ({summary['tokens_seen'] / seconds:,.0f} "
              f"tokens/s, including tokenising the text and converting the blocks); store {size:.0f} MB on disk; "
              f"peak RSS {rss_mb():.0f} MB (before: {before:.0f} MB)")


def inception_part(args, exps) -> None:
    data = exps.data
    model, what = data.inception(args.inception_weights, seed=0)
    model = model.to(args.device)
    views, _, _ = data.photo_views(max(1, args.images // 4 + 1), rng=np.random.default_rng(0),
                                   photos=("astronaut", "chelsea", "coffee", "rocket"))
    x = data.inception_input(views[:args.images]).to(args.device)
    print(f"\nInceptionV1: {what.split(':')[0]}; {len(x)} images 224x224, layer {args.layer}, device {args.device}")
    layer = dict(model.named_modules())[args.layer]
    got = {}
    hook = layer.register_forward_hook(lambda m, i, o: got.__setitem__("a", o))

    def forward():
        with torch.no_grad():
            model(x)

    base = timed(forward, args.device, args.repeats)
    forward()
    hook.remove()
    act = got["a"]
    h, w = act.shape[-2:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tail = maso.from_torch(model, x[:2], start=args.layer)
    vec = timed(lambda: act[:, :, h // 2, w // 2].cpu().numpy(), args.device, args.repeats)
    codes = timed(lambda: tail.codes(act), args.device, args.repeats)
    n = len(x)
    print(f"{'step':44s} {'seconds':>9s} {'images/s':>10s} {'x forward':>10s}")
    for name, t in [("forward to the logits", base), ("centre channel vector to the host", vec),
                    (f"codes of the {tail.n_units:,} units after {args.layer}", codes),
                    ("forward + vector + codes", base + vec + codes)]:
        print(f"{name:44s} {t:9.3f} {n / t:10.1f} {t / base:10.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=2, help="GPT-2 sequences per forward")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--weights", default=None, help="GPT-2 weights (hub name or local directory)")
    ap.add_argument("--stream-tokens", type=int, default=16384, help="tokens for the streaming run (0: skip)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--layer", default="mixed4c")
    ap.add_argument("--inception-weights", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip", choices=["gpt2", "inception"], default=None)
    args = ap.parse_args()
    load_experiments()
    from maso_experiments import data, sample

    exps = SimpleNamespace(data=data, sample=sample)
    if args.skip != "gpt2":
        gpt2_part(args, exps)
    if args.skip != "inception":
        inception_part(args, exps)


if __name__ == "__main__":
    main()
