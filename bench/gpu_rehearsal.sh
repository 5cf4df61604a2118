#!/usr/bin/env bash
# The GPU check of the real configs (see bench/gpu_rehearsal.py): each at
# its per-GPU batch with --amp on one GPU, against mmpretrain's ViT-B/16 and
# mmdet's Mask R-CNN on the same data in the same run. Needs mmcv built with
# CUDA ops (FORCE_CUDA=1 bash tools/install.sh on the GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}
exec "$PY" bench/gpu_rehearsal.py "$@"
