#!/usr/bin/env bash
# The GPU checks of issue 10 in one script (at most 8 minutes; installs nothing): the CUDA checks
# (benchmarks/gpu_check.py), then the engine table and the worker-pipeline rate on CUDA
# (benchmarks/bench_inference.py --device cuda). It uses the machine's own python3 (torch with CUDA, numpy,
# opencv, PyYAML, safetensors, tqdm); it needs neither rclpy, rosbags, pytest nor the shared data folder.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]       (default OUT_DIR: $OUT, else benchmarks/results/gpu)
#
# Writes OUT_DIR/gpu_check.json, OUT_DIR/inference.json ({"cpu": ..., "cuda": {...}}) and OUT_DIR/inference_cuda.json,
# and a log of everything to OUT_DIR/gpu_check.log. Exit status: 0 all passed, 1 a check failed, 3 no CUDA here
# (the CPU part ran, the CUDA checks and timings did not), 124 out of time.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-benchmarks/results/gpu}}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
LOG="$OUT_DIR/gpu_check.log"
started=$(date +%s)
{
  echo "gpu_check: $(date -Iseconds) on $(hostname); python: $($PY --version 2>&1)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
} | tee "$LOG"

timeout 300 "$PY" benchmarks/gpu_check.py --out "$OUT_DIR/gpu_check.json" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "gpu_check: checks ended with status $status after $(( $(date +%s) - started )) s" | tee -a "$LOG"
  exit "$status"
fi
# What is left of the 8 minutes goes to the timings (CUDA: no node phase, rclpy is not there).
left=$(( 470 - ($(date +%s) - started) ))
if [ "$left" -lt 60 ]; then
  echo "gpu_check: only $left s left, timings skipped" | tee -a "$LOG"
  exit 124
fi
cp benchmarks/results/inference.json "$OUT_DIR/inference.json" 2>/dev/null || true
timeout "$left" "$PY" benchmarks/bench_inference.py --device cuda --runs 60 --node-seconds 10 \
  --out "$OUT_DIR/inference.json" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
echo "gpu_check: finished with status $status after $(( $(date +%s) - started )) s" | tee -a "$LOG"
exit "$status"
