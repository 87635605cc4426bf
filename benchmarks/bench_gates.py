"""Soft codes and expected affine maps of an MLP block with each gate, against the torch forward of the same
block: GPT-2's tanh GELU, erf GELU (the probit gate: BERT, MiniLM) and SiLU (the logistic gate).

Run:  python benchmarks/bench_gates.py [--tokens 2048] [--repeat 15] [--gates tanh probit logistic]

Each round times the forward, the soft codes and the expected affine operator with its offsets formed, one after
the other (so that machine noise hits all alike); printed are the medians of the per-round ratios to the forward.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import maso

ACTIVATIONS = {"tanh": lambda: torch.nn.GELU(approximate="tanh"), "probit": torch.nn.GELU,
               "logistic": torch.nn.SiLU}


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--gates", nargs="+", choices=list(ACTIVATIONS), default=list(ACTIVATIONS))
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.tokens, 768)
    for gate in args.gates:
        block = torch.nn.Sequential(torch.nn.Linear(768, 3072), ACTIVATIONS[gate](), torch.nn.Linear(3072, 768)).eval()
        net = maso.from_torch(block, torch.zeros(1, 768))
        work = {"soft codes": lambda n=net: n.soft_codes(x),
                "expected affine + b": lambda n=net: n.expected_affine_at(x, dense=False).b}
        ratios: dict[str, list[float]] = {k: [] for k in work}
        with torch.no_grad():
            block(x)
            for fn in work.values():
                fn()  # warm-up
            for _ in range(args.repeat):
                base = _seconds(lambda b=block: b(x))
                for k, fn in work.items():
                    ratios[k].append(_seconds(fn) / base)
        print(f"{gate:8s} block, {args.tokens} tokens: "
              + ", ".join(f"{k} {statistics.median(v):.2f}x" for k, v in ratios.items()) + " the forward", flush=True)


if __name__ == "__main__":
    main()
