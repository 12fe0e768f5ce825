#!/usr/bin/env bash
# Four-method supernet comparison (SPOS, landmark, RD-NAS, few-shot) at the same total epochs.
#
#   scripts/run_supernet_bench.sh train   GT.csv OUT_ROOT [DEVICE] [ARCHS] [extra bench args...]
#   scripts/run_supernet_bench.sh rescore GT.csv OUT_ROOT [DEVICE] [ARCHS] [extra bench args...]
#   scripts/run_supernet_bench.sh table   -      OUT_ROOT      (markdown table of the rescored summaries)
#
# train: each method trains a supernet and writes OUT_ROOT/<method>/train/{supernet.pt,
#   weak_labels.parquet,summary.json} (scored against GT.csv as it is at that moment).
# rescore: copies GT.csv once (OUT_ROOT/ground_truth_snapshot.csv) and re-evaluates every saved
#   supernet against that one snapshot into OUT_ROOT/<method>/{weak_labels.parquet,summary.json},
#   so all methods are scored on the same archs (the ground truth may still be growing).
# Landmarks are the first 10 ground-truth rows when the landmark method trains; rescoring holds
# out exactly those archs (read from landmark/train/summary.json) for every method.
#
# Defaults are the CPU-sized configuration of docs/benchmarks/supernet.md, matching the recipe of
# the ground truth (scripts/ground_truth.py): C=8, N=1, Fashion-MNIST at 16x16, the same 4,000
# training images (seed 0); 8 supernet epochs; weak labels for the ground-truth archs only
# (ARCHS=gt). On a GPU: DEVICE=cuda ARCHS=all plus larger settings, e.g. --epochs 50.
set -euo pipefail
MODE=${1:?train, rescore or table}
GT=${2:?ground-truth CSV}
OUT=${3:?output root}
DEVICE=${4:-cpu}
ARCHS=${5:-gt}
shift $(( $# < 5 ? $# : 5 ))
COMMON=(--dataset fashion-mnist --image-size 16 --limit-train 4000 --epochs 8 --channels 8
        --cells-per-stage 1 --device "$DEVICE" --archs "$ARCHS" --batch-size 64 --lr 0.05
        --eval-batch-size 128 --calib-batches 1 --eval-batches 4 --landmarks 10 --seed 0)
if [[ "$DEVICE" == cpu ]]; then COMMON+=(--threads 1); fi
mkdir -p "$OUT"
case "$MODE" in
  train)
    for METHOD in ${METHODS:-spos rd fewshot landmark}; do
      echo "=== train $METHOD $(date -u +%H:%M:%S)"
      ray-nasrank bench supernet --method "$METHOD" "${COMMON[@]}" --ground-truth "$GT" --save-supernet \
        "$@" --out "$OUT/$METHOD/train"
    done ;;
  rescore)
    cp "$GT" "$OUT/ground_truth_snapshot.csv"
    for METHOD in spos landmark rd fewshot; do
      echo "=== rescore $METHOD $(date -u +%H:%M:%S)"
      ray-nasrank bench supernet --method "$METHOD" "${COMMON[@]}" \
        --ground-truth "$OUT/ground_truth_snapshot.csv" --load-supernet "$OUT/$METHOD/train/supernet.pt" \
        --landmarks-from "$OUT/landmark/train/summary.json" "$@" --out "$OUT/$METHOD"
    done ;;
  table)
    python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
print("| method | Kendall tau | Spearman | NDCG@50 | tau (-loss) | tau (all GT) | archs ranked | train s | weak labels/s |")
print("|---|---|---|---|---|---|---|---|---|")
for m in ("spos", "landmark", "rd", "fewshot"):
    f = root / m / "summary.json"
    if not f.is_file():
        continue
    s = json.loads(f.read_text())
    print(f"| {m} | {s['kendall_tau']:.3f} | {s['spearman']:.3f} | {s['ndcg@50']:.3f} | {s['kendall_tau_neg_loss']:.3f} "
          f"| {s['kendall_tau_all_gt']:.3f} | {s['n_ranked']} | {s['train_seconds']:.0f} | {s['weak_labels_per_second']:.1f} |")
PY
    ;;
  *) echo "mode must be train, rescore or table, got $MODE" >&2; exit 2 ;;
esac
echo "=== done $(date -u +%H:%M:%S)"
