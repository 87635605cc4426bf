"""Core throughput: spline codes and exact affine maps against a plain torch forward of the same batch.

Run: ``python benchmarks/bench_core.py [--n 10000] [--device cpu|cuda] [--repeat 5]``

Prints, for each workload, the median wall time of the torch forward (the baseline, measured in the same
process) and of maso's computation, and their ratio. Goals (issue 2): codes + affine maps of a 784-256-256-10
MLP on 10,000 inputs, and codes of an Inception-style CNN, within 1.5x of the torch forward. Issue 5 adds a
GPT-2 MLP block with soft codes (no stated goal; reported for reference).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import maso


def _time(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


class Timer:
    """Times candidates against a baseline, alternating the two so that machine noise hits both alike.

    The ratio reported is the median of per-round ratios; times are medians.
    """

    def __init__(self, baseline, repeat: int, device: str) -> None:
        self.baseline, self.repeat, self.device = baseline, repeat, device
        baseline()  # warm-up
        self.base = statistics.median(_time(baseline, device) for _ in range(repeat))
        print(f"  {'torch forward (baseline)':<48s} {self.base * 1e3:9.2f} ms")

    def row(self, name: str, fn) -> None:
        fn()  # warm-up (allocations, parameter caches)
        times, ratios = [], []
        for _ in range(self.repeat):
            b = _time(self.baseline, self.device)
            t = _time(fn, self.device)
            times.append(t)
            ratios.append(t / b)
        print(f"  {name:<48s} {statistics.median(times) * 1e3:9.2f} ms   "
              f"ratio to torch forward {statistics.median(ratios):6.2f}x")


def bench_mlp(n: int, repeat: int, device: str) -> None:
    module = maso.nn.mlp_module([784, 256, 256, 10], seed=0).to(device).eval()
    net = maso.from_torch(module, torch.zeros(1, 784, device=device))
    x = torch.randn(n, 784, generator=torch.Generator().manual_seed(0)).to(device)
    print(f"MLP 784-256-256-10, {n} inputs, float32, {device}, {torch.get_num_threads()} threads")
    with torch.no_grad():
        timer = Timer(lambda: module(x), repeat, device)
    timer.row("maso forward", lambda: net(x))
    timer.row("maso codes", lambda: net.codes(x))
    timer.row("maso codes + affine maps (JVP operator, b lazy)", lambda: net.affine_at(x, dense=False, with_codes=True))
    timer.row("maso codes + affine maps (operator, b formed)",
              lambda: net.affine_at(x, dense=False, with_codes=True)[1].b)
    timer.row("maso codes + affine maps (dense A: n x 10 x 784)", lambda: net.affine_at(x, with_codes=True))
    # Lower bound of the dense maps: A = (W3 D2 W2 D1) W1 costs n*10*(256*256 + 256*784) multiply-adds.
    flops = 2 * n * 10 * (256 * 256 + 256 * 784)
    fwd_flops = 2 * n * (784 * 256 + 256 * 256 + 256 * 10)
    print(f"  dense maps need {flops / 1e9:.1f} GFLOP vs {fwd_flops / 1e9:.1f} GFLOP for the forward "
          f"({flops / fwd_flops:.1f}x the arithmetic)")


def bench_cnn(n: int, repeat: int, device: str) -> None:
    module = maso.nn.inception_toy(seed=0, width=32).to(device)
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    net = maso.from_torch(module, x[:2])
    print(f"Inception-style CNN (stem + 2 Inception blocks, width 32), {n} images 3x32x32, float32, {device}; "
          f"{net.n_units} units")
    with torch.no_grad():
        timer = Timer(lambda: module(x), repeat, device)
    timer.row("maso forward", lambda: net(x))
    timer.row("maso codes", lambda: net.codes(x))
    timer.row("maso codes by layer", lambda: net.codes(x, by_layer=True))


def bench_gpt2_mlp(n: int, repeat: int, device: str) -> None:
    """Soft codes (issue 5): a GPT-2-small MLP block (768 -> 3072 gelu_new -> 768) on n token activations."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(768, 3072), torch.nn.GELU(approximate="tanh"),
                                 torch.nn.Linear(3072, 768)).to(device).eval()
    net = maso.from_torch(module, torch.zeros(1, 768, device=device))
    x = torch.randn(n, 768, generator=torch.Generator().manual_seed(0)).to(device)
    print(f"GPT-2 MLP block 768-3072(gelu_new)-768, {n} tokens, float32, {device}")
    with torch.no_grad():
        timer = Timer(lambda: module(x), repeat, device)
    timer.row("maso forward", lambda: net(x))
    timer.row("maso hard codes (pre-activation > 0)", lambda: net.codes(x))
    timer.row("maso soft codes (n x 3072 x 2)", lambda: net.soft_codes(x))
    timer.row("maso expected affine maps (operator) + b", lambda: net.expected_affine_at(x, dense=False).b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="MLP batch size (default 10000)")
    parser.add_argument("--n-images", type=int, default=256, help="CNN batch size (default 256)")
    parser.add_argument("--n-tokens", type=int, default=2048, help="GPT-2 MLP batch (default 2048)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    bench_mlp(args.n, args.repeat, args.device)
    bench_cnn(args.n_images, args.repeat, args.device)
    bench_gpt2_mlp(args.n_tokens, args.repeat, args.device)


if __name__ == "__main__":
    main()
