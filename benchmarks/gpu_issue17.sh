#!/usr/bin/env bash
# Everything GPU-specific of issue 17 in one short run on a lent GPU machine (H200: about 8 minutes):
#   1. the CUDA-only tests (a GPU slice and GPU crossings equal the CPU's),
#   2. the InceptionV1-tail slice on the GPU: regions/s and vertices/s, against the CPU in the same process
#      (goal: >= 10,000 regions/s), with the check that both give the same regions,
#   3. segment crossings on the tail, GPU against CPU,
#   4. codes, soft codes and expected affine maps as ratios to the torch forward (goals: <= 1.2x, 1.5x, 2x),
#   5. the Inception tail's codes in float32 and float64.
# The machine has python3 with torch, numba, scikit-learn and pytest but no network: the other wheels maso
# needs travel in .wheels/ (ignored by git; carry it), made here beforehand with
#   pip download -d .wheels --no-deps daqp highspy
# Run (device tool): bash benchmarks/gpu_issue17.sh   with carry [".wheels"]; results land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if ls .wheels/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --find-links .wheels --no-deps .wheels/*.whl 2>&1 | tail -2
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/slices -k "gpu or device" 2>&1 | tail -5 \
    | tee "$OUT/tests_cuda.txt"
timeout 200 python3 benchmarks/bench_inception_slice.py --device cuda --windows 1e-4 3e-4 6e-4 1e-3 2e-3 \
    --cpu-windows 1e-4 3e-4 2>&1 | tee "$OUT/inception_slice_cuda.txt"
timeout 90 python3 - <<'PY' 2>&1 | tee "$OUT/crossings_cuda.txt"
import time, numpy as np, torch, maso
net = maso.from_torch(maso.nn.inception5_tail(seed=0, dtype=torch.float64), torch.zeros(1, 832, 7, 7, dtype=torch.float64))
x = np.maximum(np.random.default_rng(1).normal(size=(33, 832, 7, 7)), 0)
maso.segment_crossings(net, x[0], x[1], device="cuda")  # warm-up
res = {}
for dev in ("cuda", "cpu"):
    t = time.perf_counter()
    res[dev] = maso.segment_crossings(net, x[:16], x[16:32], device=dev)
    res[dev + "_s"] = time.perf_counter() - t
n = sum(len(s.t) for s in res["cuda"])
same = all(np.array_equal(a.codes, b.codes) and len(a.t) == len(b.t) for a, b in zip(res["cuda"], res["cpu"]))
print(f"16 segments between activations of the Inception tail: {n} crossings; cuda {res['cuda_s']:.2f} s, "
      f"cpu {res['cpu_s']:.2f} s, cpu/cuda {res['cpu_s'] / res['cuda_s']:.1f}x; same crossings and codes: {same}")
PY
timeout 120 python3 benchmarks/bench_core.py --device cuda --n 10000 --n-images 256 --n-tokens 8192 --repeat 15 \
    2>&1 | tee "$OUT/bench_core_cuda.txt"
timeout 120 python3 benchmarks/bench_inception_tail.py --device cuda --n 64 --soft-n 16 --repeat 7 2>&1 \
    | tee "$OUT/inception_tail_cuda.txt"
