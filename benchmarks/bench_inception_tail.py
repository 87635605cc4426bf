"""InceptionV1's tail after ``mixed4a`` as a maso network: conversion time and peak memory, and the cost of codes,
outputs and soft codes as ratios to the torch forward of the same tail on the same batch, in the same process.

The tail is ``maso.nn.inception_v1(seed=0).tail(after="mixed4a")`` (mixed4b ... mixed5b, pooling and the 1008-way
logits: 99,568 inputs (508 x 14 x 14), 1,234,800 units), random init unless ``--weights FILE`` (a state dict in
maso's or Lucent's naming). Its inputs are the ``mixed4a`` activations of random 224x224 images. Each dtype runs
in a fresh process; the peak resident memory of the conversion is the process's high-water mark reset just
before ``from_torch`` (Linux ``/proc/self/clear_refs``), so it includes the model and the activations held then
(reported as the RSS before), and on CUDA the peak allocated GPU memory is reported too. The ratios are medians
over rounds that alternate the torch forward and maso's computation on the same batch.

    python benchmarks/bench_inception_tail.py [--n 16] [--device cpu|cuda] [--dtypes float32 float64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

import maso


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, device: str) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def _ratio(fn, base, device: str, repeat: int) -> tuple[float, float, float]:
    """(median time of fn, median time of base, median of the per-round ratios), alternating the two."""
    fn(), base()  # warm-up: allocations, parameter caches
    ts, bs = [], []
    for _ in range(repeat):
        bs.append(_time(base, device))
        ts.append(_time(fn, device))
    return statistics.median(ts), statistics.median(bs), statistics.median(t / b for t, b in zip(ts, bs))


def _status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def run(dtype_name: str, args: dict) -> dict:
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    device, n, repeat = args["device"], args["n"], args["repeat"]
    dtype = getattr(torch, dtype_name)
    model = maso.nn.inception_v1(args["weights"], seed=0, dtype=dtype).to(device)
    images = (torch.rand(n, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 255 - 117)
    acts = {}
    hook = model.mixed4a.register_forward_hook(lambda m, i, o: acts.__setitem__("x", o))
    with torch.no_grad():
        model(images.to(device=device, dtype=dtype))
    hook.remove()
    x = acts["x"]
    tail = model.tail(after="mixed4a")
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    reset = _reset_peak()
    rss0 = _status_mb("VmRSS")
    t = time.perf_counter()
    net = maso.from_torch(tail, x[:1])
    conv = time.perf_counter() - t
    out = {"dtype": dtype_name, "convert_s": conv, "rss_before_mb": rss0, "peak_rss_mb": _status_mb("VmHWM"),
           "peak_reset": reset, "rss_after_mb": _status_mb("VmRSS"), "units": net.n_units, "input_dim": net.input_dim,
           "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
           "threads": torch.get_num_threads()}
    t = time.perf_counter()
    maso.from_torch(tail, x[:1])  # again: the first conversion in a process also imports sympy (torch.fx shapes)
    out["convert_again_s"] = time.perf_counter() - t

    def forward(batch):
        with torch.no_grad():
            return tail(batch)

    out["codes"] = _ratio(lambda: net.codes(x), lambda: forward(x), device, repeat)
    out["outputs"] = _ratio(lambda: net(x), lambda: forward(x), device, repeat)
    small = x[: min(n, args["soft_n"])]  # soft codes are (n, units, 9) floats: a smaller batch
    out["soft_n"] = small.shape[0]
    out["soft"] = _ratio(lambda: net.soft_codes(small, temperature=1.0), lambda: forward(small), device, repeat)
    with torch.no_grad():
        err = (net(x) - tail(x)).abs().max().item() / tail(x).abs().max().item()
    out["max_rel_diff"] = err
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="activations per batch (codes and outputs)")
    ap.add_argument("--soft-n", type=int, default=4, help="batch of the soft-code timing")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--weights", default=None, help="a state dict file for maso.nn.inception_v1")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cfg = {"device": args.device, "n": args.n, "soft_n": args.soft_n, "repeat": args.repeat,
           "threads": args.threads, "weights": args.weights}
    if args.child:
        print(json.dumps(run(args.child, cfg)))
        return
    print(f"InceptionV1 tail after mixed4a ({'weights ' + args.weights if args.weights else 'random init'}), "
          f"device {args.device}, batch {args.n}, {os.cpu_count()} CPUs")
    for name in args.dtypes:
        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", name], capture_output=True,
                              text=True, check=False)
        if done.returncode:
            sys.exit(f"{name}: the measurement failed:\n{done.stderr}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        gpu = f", peak GPU memory {r['gpu_peak_mb']:.0f} MiB" if r["gpu_peak_mb"] is not None else ""
        peak = f"peak {r['peak_rss_mb']:.0f} MiB" if r["peak_reset"] else "peak not measurable here"
        print(f"\n{name}: {r['input_dim']:,} inputs, {r['units']:,} units, torch threads {r['threads']}")
        print(f"  conversion {r['convert_s']:.2f} s (again in the same process: {r['convert_again_s']:.2f} s); "
              f"resident memory: {r['rss_before_mb']:.0f} MiB before, {peak} "
              f"during the first, {r['rss_after_mb']:.0f} MiB after it{gpu}")
        for key, label, batch in (("codes", "net.codes", args.n), ("outputs", "net(x)", args.n),
                                  ("soft", "net.soft_codes(temperature=1)", r["soft_n"])):
            t, b, q = r[key]
            print(f"  {label:<32s} batch {batch:3d}: {t * 1e3:9.1f} ms, torch forward {b * 1e3:8.1f} ms, "
                  f"ratio {q:5.2f}x")
        print(f"  largest difference of net(x) from the module, relative to the largest output: "
              f"{r['max_rel_diff']:.1e}")
        print("  raw:", json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
