"""Torch calls (aten operators, views left out) that maso's codes, soft codes and maps issue, against the torch
forward of the same model: device-independent counts, and what sets the time on a GPU at small batches, where
each call is a kernel launch.

Run:  python benchmarks/count_torch_calls.py

Models as in ``bench_core.py``: a GPT-2-small MLP block (768 -> 3072 gelu_new -> 768), the same block with erf GELU
(BERT, MiniLM: the probit gate) and with SiLU (the logistic gate), an MLP 784-256-256-10 and the Inception-style
CNN (``maso.nn.inception_toy``, width 32). Prints one line per workload: the number of calls
and the calls by operator.
"""

from __future__ import annotations

import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import maso

# operators that only make views or metadata (no kernel)
VIEWS = {"aten.view", "aten.slice", "aten.detach", "aten.unsqueeze", "aten.permute", "aten.select", "aten.t",
         "aten.expand", "aten._unsafe_view", "aten.reshape", "aten.alias", "aten.lift_fresh", "aten.transpose",
         "aten.squeeze", "aten.as_strided"}


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def count(fn) -> tuple[int, dict[str, int]]:
    """Calls of one run of ``fn`` (after a warm-up run), views left out."""
    fn()
    with _Count() as c, torch.no_grad():
        fn()
    kept = {name: k for name, k in c.calls.most_common() if name not in VIEWS}
    return sum(kept.values()), kept


def main() -> None:
    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Linear(768, 3072), torch.nn.GELU(approximate="tanh"),
                                torch.nn.Linear(3072, 768)).eval()
    net = maso.from_torch(block, torch.zeros(1, 768))
    x = torch.randn(512, 768)
    rows = [("GPT-2 block", "forward", lambda: block(x)), ("GPT-2 block", "codes", lambda: net.codes(x)),
            ("GPT-2 block", "soft codes", lambda: net.soft_codes(x)),
            ("GPT-2 block", "expected affine + b", lambda: net.expected_affine_at(x, dense=False).b)]
    for label, act in (("erf-GELU block", torch.nn.GELU()), ("SiLU block", torch.nn.SiLU())):
        other = torch.nn.Sequential(torch.nn.Linear(768, 3072), act, torch.nn.Linear(3072, 768)).eval()
        onet = maso.from_torch(other, torch.zeros(1, 768))
        rows += [(label, "forward", lambda m=other: m(x)), (label, "soft codes", lambda n=onet: n.soft_codes(x)),
                 (label, "expected affine + b", lambda n=onet: n.expected_affine_at(x, dense=False).b)]
    mlp = maso.nn.mlp_module([784, 256, 256, 10], seed=0).eval()
    mnet, xm = maso.from_torch(mlp, torch.zeros(1, 784)), torch.randn(1000, 784)
    rows += [("MLP 784-256-256-10", "forward", lambda: mlp(xm)), ("MLP 784-256-256-10", "codes", lambda: mnet.codes(xm))]
    cnn = maso.nn.inception_toy(seed=0, width=32).eval()
    xc = torch.randn(16, 3, 32, 32)
    cnet = maso.from_torch(cnn, xc[:2])
    rows += [("Inception-style CNN", "forward", lambda: cnn(xc)), ("Inception-style CNN", "codes", lambda: cnet.codes(xc))]
    for model, what, fn in rows:
        n, by_op = count(fn)
        ops = ", ".join(f"{name.removeprefix('aten.')} {k}" for name, k in by_op.items())
        print(f"{model:<20s} {what:<20s} {n:4d} calls: {ops}")


if __name__ == "__main__":
    main()
