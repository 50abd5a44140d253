#!/usr/bin/env bash
# The Astyx distillation table on one GPU, as one prepared run (sized for an H200-class GPU: <= 9 minutes):
# the cross-modal teacher, 3 direct and 3 KD students at 224x768 for 40 epochs, the gate, evaluation of every
# run on frames 350-435 at the payload's resolution (images 768 wide), results as JSON + markdown.
#
# The GPU machine has the project tree but not ../shared and no internet. Make the payload beforehand, from the
# project root on a machine with the data (it is ignored by git and travels with the tree):
#     .venv/bin/python ../shared/tools/device_payload.py ../shared/data/astyx_hires2019 .device 768
# then, on the GPU machine from the project root:
#     bash benchmarks/gpu_distill.sh
# It needs python3 with torch (CUDA), numpy, opencv, PyYAML, safetensors and tqdm; nothing else (no rclpy, no
# rosbags, no matplotlib, no tensorboard: plots and TensorBoard are off).
#
# Environment (defaults for the H200 run): GPU_TABLE_PAYLOAD (.device), GPU_TABLE_OUT (out/gpu_table),
# GPU_TABLE_DEVICE (cuda), GPU_TABLE_HEIGHT (224), GPU_TABLE_WIDTH (768), GPU_TABLE_EPOCHS (40), GPU_TABLE_BATCH (8),
# GPU_TABLE_JOBS (4: the teacher and the 3 direct students share the GPU, then the 3 KD students),
# GPU_TABLE_THREADS (2), GPU_TABLE_WORKERS (3 loader processes per job), GPU_TABLE_OFFLINE (0: the KD students run
# the teacher on the GPU each step; 1: offline targets), PYTHON (python3). Extra arguments are passed to
# training.run_table as overrides of every run (the CPU test passes a tiny budget this way).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PAYLOAD=${GPU_TABLE_PAYLOAD:-.device}
OUT=${GPU_TABLE_OUT:-out/gpu_table}
DEVICE=${GPU_TABLE_DEVICE:-cuda}
HEIGHT=${GPU_TABLE_HEIGHT:-224}
WIDTH=${GPU_TABLE_WIDTH:-768}
EPOCHS=${GPU_TABLE_EPOCHS:-40}
BATCH=${GPU_TABLE_BATCH:-8}
JOBS=${GPU_TABLE_JOBS:-4}
THREADS=${GPU_TABLE_THREADS:-2}
WORKERS=${GPU_TABLE_WORKERS:-3}
OFFLINE=${GPU_TABLE_OFFLINE:-0}

if [ ! -f "$PAYLOAD/astyx.tar.xz" ] || [ ! -d "$PAYLOAD/site" ]; then
    echo "gpu_distill: no payload in $PAYLOAD (astyx.tar.xz and site/); make it with ../shared/tools/device_payload.py" >&2
    exit 2
fi
mkdir -p "$OUT"
DATA="$OUT/data"
if [ ! -f "$DATA/astyx_hires2019/dataset.json" ]; then
    rm -rf "$DATA" && mkdir -p "$DATA"
    tar -xJf "$PAYLOAD/astyx.tar.xz" -C "$DATA"
    mv "$DATA/astyx" "$DATA/astyx_hires2019"
fi
export PYTHONPATH="$(cd "$PAYLOAD" && pwd)/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export RCDEPTH_DATA="$(cd "$DATA" && pwd)"
export RCDEPTH_CACHE="$(cd "$OUT" && pwd)/cache"
export PYTHONUNBUFFERED=1

"$PYTHON" - "$DEVICE" <<'EOF' | tee "$OUT/machine.json"
import json, os, sys, torch
device = sys.argv[1]
info = {'torch': torch.__version__, 'cuda': torch.version.cuda, 'device': device, 'cpu_count': os.cpu_count()}
if device.startswith('cuda'):
    if not torch.cuda.is_available():
        sys.exit('gpu_distill: CUDA is not available (set GPU_TABLE_DEVICE=cpu for a CPU check)')
    info['gpu'] = torch.cuda.get_device_name(0)
    info['bf16'] = torch.cuda.is_bf16_supported()
print(json.dumps(info))
EOF

start=$(date +%s)
"$PYTHON" -m training.run_table --spec training/tables/distill_astyx.yaml --out "$OUT/runs" \
    --results "$OUT/results" --jobs "$JOBS" --threads "$THREADS" --eval-device "$DEVICE" \
    "input.height=$HEIGHT" "input.width=$WIDTH" "train.epochs=$EPOCHS" "train.batch_size=$BATCH" \
    "train.device=$DEVICE" train.amp=auto train.plots=false train.tensorboard=false train.progress=false \
    train.val_every_epochs=10 train.checkpoint_every_steps=1000 "data.workers=$WORKERS" \
    "distill.targets.offline=$([ "$OFFLINE" = 1 ] && echo true || echo false)" "$@" | tee "$OUT/table.log"
echo "gpu_distill: $(( $(date +%s) - start )) s; results in $OUT/results/distill_astyx.{json,md}" | tee -a "$OUT/table.log"
