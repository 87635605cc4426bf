"""Soft codes and expected affine maps of an MLP block with each gate, against the torch forward of the same
block: GPT-2's tanh GELU, erf GELU (the probit gate: BERT, MiniLM) and SiLU (the logistic gate).

Run:  python benchmarks/bench_gates.py [--tokens 2048] [--repeat 15] [--gates tanh probit logistic] [--device cpu]

Each round times the forward, the soft codes and the expected affine operator with its offsets formed, one after
the other (so that machine noise hits all alike); printed are the medians of the per-round ratios to the forward.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from bench_core import _time

import maso

ACTIVATIONS = {"tanh": lambda: torch.nn.GELU(approximate="tanh"), "probit": torch.nn.GELU,
               "logistic": torch.nn.SiLU}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--gates", nargs="+", choices=list(ACTIVATIONS), default=list(ACTIVATIONS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.tokens, 768).to(args.device)
    for gate in args.gates:
        block = torch.nn.Sequential(torch.nn.Linear(768, 3072), ACTIVATIONS[gate](), torch.nn.Linear(3072, 768)).eval()
        block = block.to(args.device)
        net = maso.from_torch(block, torch.zeros(1, 768, device=args.device))
        work = {"soft codes": lambda n=net: n.soft_codes(x),
                "expected affine + b": lambda n=net: n.expected_affine_at(x, dense=False).b}
        ratios: dict[str, list[float]] = {k: [] for k in work}
        with torch.no_grad():
            block(x)
            for fn in work.values():
                fn()  # warm-up
            for _ in range(args.repeat):
                base = _time(lambda b=block: b(x), args.device)
                for k, fn in work.items():
                    ratios[k].append(_time(fn, args.device) / base)
        print(f"{gate:8s} block, {args.tokens} tokens, {args.device}: "
              + ", ".join(f"{k} {statistics.median(v):.2f}x" for k, v in ratios.items()) + " the forward", flush=True)


if __name__ == "__main__":
    main()
