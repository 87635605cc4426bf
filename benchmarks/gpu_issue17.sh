#!/usr/bin/env bash
# Everything GPU-specific of issue 17 in one short run on a lent GPU machine (H200: about 9 minutes; give it
# timeout_s 600: the steps are ordered so that a cut-off loses only the last ones):
#   1. the CUDA-only tests (a GPU slice, GPU crossings, a GPU tiled slice and GPU code rows equal the CPU's; a
#      GPU tiled slice resumes from its checkpoint to the uninterrupted one),
#   2. the InceptionV1-tail slice on the GPU: regions/s and vertices/s, against the CPU in the same process
#      (goal: >= 10,000 regions/s), with the check that both give the same regions,
#   3. segment crossings on the tail, GPU against CPU,
#   4. codes, soft codes and expected affine maps as ratios to the torch forward (goals: <= 1.2x, 1.5x, 2x),
#   5. the Inception tail's codes in float32 and float64,
#   6. last (a timeout there loses nothing before it): where a tail slice spends its time on the device
#      (torch.profiler by operator and device time, the calls that make the host wait, cProfile's host share),
#      and the torch calls of codes, soft codes and maps (device-independent; for the record beside the ratios).
# The machine has python3 with torch, numba, scikit-learn and pytest but no network: the other wheels maso
# needs travel in .wheels/ (ignored by git; carry it), made here beforehand with
#   pip download -d .wheels --no-deps daqp highspy
# Run (device tool): bash benchmarks/gpu_issue17.sh   with carry [".wheels"]; results land in $OUT.
# Smoke test anywhere (small sizes, no GPU): DEVICE=cpu QUICK=1 PYTHON=.venv/bin/python bash benchmarks/gpu_issue17.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
if [ -n "${QUICK:-}" ]; then
    WINDOWS="1e-4"; CPU_WINDOWS="1e-4"; SEGMENTS=2; CORE="--n 2000 --n-images 16 --n-tokens 256 --repeat 3"
    TAIL="--n 4 --soft-n 2 --repeat 2 --dtypes float32"; PROFILE_WINDOW=1e-4
else
    WINDOWS="1e-4 3e-4 6e-4 1e-3 2e-3"; CPU_WINDOWS="1e-4 3e-4"; SEGMENTS=16
    CORE="--n 10000 --n-images 256 --n-tokens 8192 --repeat 15"; TAIL="--n 64 --soft-n 16 --repeat 7"
    PROFILE_WINDOW=6e-4
fi
mkdir -p "$OUT"
if [ "$DEVICE" != cpu ]; then
    if ls .wheels/*.whl >/dev/null 2>&1; then
        $PY -m pip install -q --no-index --find-links .wheels --no-deps .wheels/*.whl 2>&1 | tail -2
    fi
    $PY -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
    nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
fi
export PYTHONUNBUFFERED=1 DEVICE SEGMENTS
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/slices tests/core/test_code_rows.py -k "gpu or device" 2>&1 | tail -5 \
    | tee "$OUT/tests_$DEVICE.txt"
# shellcheck disable=SC2086
timeout 200 $PY benchmarks/bench_inception_slice.py --device "$DEVICE" --windows $WINDOWS \
    --cpu-windows $CPU_WINDOWS 2>&1 | tee "$OUT/inception_slice_$DEVICE.txt"
timeout 150 $PY - <<'PY' 2>&1 | tee "$OUT/crossings_$DEVICE.txt"
import os, time, numpy as np, torch, maso
device, k = os.environ["DEVICE"], int(os.environ["SEGMENTS"])
net = maso.from_torch(maso.nn.inception5_tail(seed=0, dtype=torch.float64), torch.zeros(1, 832, 7, 7, dtype=torch.float64))
x = np.maximum(np.random.default_rng(1).normal(size=(2 * k, 832, 7, 7)), 0)
maso.segment_crossings(net, x[0], 0.99 * x[0] + 0.01 * x[1], device=device)  # warm-up
res = {}
for dev in (device, "cpu"):
    t = time.perf_counter()
    # short segments (1/1000 of the way to another activation: about 50 crossings each) keep the CPU side short
    res[dev] = maso.segment_crossings(net, x[:k], x[:k] + 1e-3 * (x[k:] - x[:k]), device=dev)
    res[dev + "_s"] = time.perf_counter() - t
n = sum(len(s.t) for s in res[device])
same = all(np.array_equal(a.codes, b.codes) and len(a.t) == len(b.t) for a, b in zip(res[device], res["cpu"]))
print(f"{k} short segments from activations of the Inception tail: {n} crossings; {device} {res[device + '_s']:.2f} s, "
      f"cpu {res['cpu_s']:.2f} s, cpu/{device} {res['cpu_s'] / res[device + '_s']:.1f}x; same crossings and codes: {same}")
PY
# shellcheck disable=SC2086
timeout 120 $PY benchmarks/bench_core.py --device "$DEVICE" $CORE 2>&1 | tee "$OUT/bench_core_$DEVICE.txt"
# shellcheck disable=SC2086
timeout 120 $PY benchmarks/bench_inception_tail.py --device "$DEVICE" $TAIL 2>&1 | tee "$OUT/inception_tail_$DEVICE.txt"
timeout 120 $PY benchmarks/profile_slice.py --device "$DEVICE" --window "$PROFILE_WINDOW" 2>&1 \
    | tee "$OUT/profile_slice_$DEVICE.txt"
timeout 60 $PY benchmarks/count_torch_calls.py 2>&1 | tee "$OUT/torch_calls.txt"
