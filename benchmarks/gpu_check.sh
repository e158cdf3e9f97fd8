#!/usr/bin/env bash
# The CUDA path end to end on a lent GPU machine (no network, its own torch): from the source tree, with the
# pure-Python wheels it lacks carried in .whl/ (see README "GPU"). Writes what it saw to $OUT (or ./gpu-check).
set -uo pipefail
OUT=${OUT:-gpu-check}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="$PWD/src:/tmp/site" ARL_HOME=/tmp/arl-home PYTHONUNBUFFERED=1
arl() { python3 -m autoresearch_rl.cli "$@"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
  time arl prepare --preset cpu-tiny
  time arl baseline --preset cpu-tiny --run-dir /tmp/gpu-baseline
  time arl run --preset cpu-tiny --agent ppo --max-iters "${ITERS:-3}" --calibration-seeds 2 --run-dir /tmp/gpu-run
  arl status --run-dir /tmp/gpu-run --json > "$OUT/status.json"
  arl report --run-dir /tmp/gpu-run
  cp /tmp/gpu-run/progress.png /tmp/gpu-run/results.tsv "$OUT/" 2>/dev/null
  grep -h -E "^(device|steps|tokens_per_second|mfu|peak_memory_mb|training_seconds|startup_seconds|compiled)" \
    /tmp/gpu-baseline/experiments/00001/train.log
  if [ -f benchmarks/throughput.py ]; then time python3 benchmarks/throughput.py --device cuda --quick; fi
} 2>&1 | tee "$OUT/gpu_check.log"
