#!/usr/bin/env bash
# Four-method supernet comparison (SPOS, landmark, RD-NAS, few-shot) at the same total epochs.
#
#   scripts/run_supernet_bench.sh GT.csv OUT_ROOT [DEVICE] [ARCHS] [extra bench args...]
#
# Defaults are the CPU-sized configuration of docs/benchmarks/supernet.md, matching the recipe of
# the ground truth (scripts/ground_truth.py): C=8, N=1, Fashion-MNIST at 16x16, the same 4,000
# training images (seed 0); 12 supernet epochs; weak labels for the ground-truth archs only (ARCHS=gt).
# The ground truth is copied first (OUT_ROOT/ground_truth_snapshot.csv), so every method holds out
# the same landmarks and is scored on the same archs even if GT.csv is still growing. On a GPU use DEVICE=cuda ARCHS=all and larger settings, e.g.
#   scripts/run_supernet_bench.sh GT.csv results/supernet_gpu cuda all --epochs 50
# Each method writes OUT_ROOT/<method>/{weak_labels.parquet,summary.json} as soon as it finishes.
set -euo pipefail
GT=${1:?ground-truth CSV}
OUT=${2:?output root}
DEVICE=${3:-cpu}
ARCHS=${4:-gt}
shift $(( $# < 4 ? $# : 4 ))
mkdir -p "$OUT"
cp "$GT" "$OUT/ground_truth_snapshot.csv"
COMMON=(--dataset fashion-mnist --image-size 16 --limit-train 4000 --epochs 12 --channels 8
        --cells-per-stage 1 --device "$DEVICE" --ground-truth "$OUT/ground_truth_snapshot.csv"
        --archs "$ARCHS" --batch-size 64 --lr 0.05 --eval-batch-size 128 --calib-batches 1
        --eval-batches 4 --landmarks 20 --seed 0)
if [[ "$DEVICE" == cpu ]]; then COMMON+=(--threads 1); fi
for METHOD in spos landmark rd fewshot; do
  echo "=== $METHOD $(date -u +%H:%M:%S)"
  ray-nasrank bench supernet --method "$METHOD" "${COMMON[@]}" "$@" --out "$OUT/$METHOD"
done
echo "=== done $(date -u +%H:%M:%S)"
