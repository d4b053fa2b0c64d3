#!/usr/bin/env bash
# Every recipe a few steps on a CUDA device: the machine's default precision, gradient checkpointing,
# random-init models of the recipes' shapes; per method step time, tokens/s, MFU, peak memory and
# what broke (benchmarks/gpu_check.py does the work, one process per recipe).
#
#   bash benchmarks/gpu_check.sh [--steps 5] [--recipes spam,classify,instruction,chat,preference] [--shared ../shared]
#   bash benchmarks/gpu_check.sh --dry     # CPU, a tiny model, a slice of each data set (what CI runs)
#
# Exit status: 0 when every recipe ran, 1 when one broke, 2 without a CUDA device (and no --dry).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --dry "* ]] && command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
