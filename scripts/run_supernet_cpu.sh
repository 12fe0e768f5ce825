#!/usr/bin/env bash
# The CPU supernet comparison of docs/benchmarks/supernet.md ("CPU recipe"): four methods at one
# training budget, scored on the Fashion-MNIST ground truth, then the full-space sweep of one.
#
#   scripts/run_supernet_cpu.sh compare GT.csv OUT_ROOT          # spos, rd, fewshot, landmark -> OUT_ROOT/<method>/
#   scripts/run_supernet_cpu.sh sweep   GT.csv OUT_DIR METHOD SUPERNET_PT  # weak labels of all 15,625 cells
#   scripts/run_supernet_cpu.sh ranker  GT.csv OUT_DIR           # each label, 0-label and 10/20-label rankers
#   scripts/run_supernet_cpu.sh table   GT.csv OUT_ROOT          # markdown table of the compare summaries
#
# The recipe: Fashion-MNIST at the ground truth's 12x12, 20,000 training images (seed 0; the
# ground truth's 3,000 are among them), NB201 C=8, N=1 (the ground truth's network), batch 64,
# lr 0.05, one torch thread (two threads on a loaded 2-core machine spend most of their CPU time
# waiting). One budget for all: about 300,000 single-path image passes, i.e. SPOS and few-shot 15
# epochs; RD-NAS 8 epochs (2 paths a step); landmark 7 epochs (1 path, then 3 from 37.5 % of the
# run on). Weak labels: BN recalibrated per cell on 2 training batches of 200, scored on the
# ground truth's own 1,000 validation images. The first 10 ground-truth cells are the landmarks
# and are held out of `kendall_tau` for every method (`kendall_tau_all_gt` scores all 100).
# Every summary.json records train_cpu_seconds (user + sys) and the load average.
#
# On a GPU: add --device cuda (drop --threads), raise --epochs / --limit-train, and use
# `sweep` with --archs all; the evaluator batches many cells per forward (see the page).
set -euo pipefail
MODE=${1:?compare, sweep or ranker}
GT=${2:?ground-truth CSV}
OUT=${3:?output directory}
COMMON=(--dataset fashion-mnist --image-size 12 --limit-train 20000 --channels 8 --cells-per-stage 1
        --device cpu --threads 1 --batch-size 64 --lr 0.05 --seed 0 --ground-truth "$GT" --landmarks 10)
GT_EVAL=(--archs gt --eval-batch-size 200 --calib-batches 2 --eval-batches 5)
# SCALE=k multiplies every method's epochs (the same budget for all, k times larger)
epochs() { case $1 in spos|fewshot) echo $((15 * ${SCALE:-1})) ;; rd) echo $((8 * ${SCALE:-1})) ;; landmark) echo $((7 * ${SCALE:-1})) ;; esac; }
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
case "$MODE" in
  compare)
    for M in ${METHODS:-spos rd fewshot landmark}; do
      echo "=== $M $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
      ray-nasrank bench supernet --method "$M" --epochs "$(epochs "$M")" --teacher params "${COMMON[@]}" \
        "${GT_EVAL[@]}" --save-supernet --out "$OUT/$M"
    done ;;
  sweep)
    M=${4:?method}
    PT=${5:?supernet.pt of the compare run of METHOD}
    # the weights `compare` trained (its OUT_ROOT/METHOD/supernet.pt); one cell per isomorphism class
    # (6,466 evaluated), its value copied to the class; BN on 1 batch of 200, scored on 600 images
    ray-nasrank bench supernet --method "$M" --epochs "$(epochs "$M")" --teacher params "${COMMON[@]}" \
      --archs iso --eval-batch-size 200 --calib-batches 1 --eval-batches 3 --load-supernet "$PT" --out "$OUT" ;;
  ranker)
    python scripts/supernet_ranker.py --ground-truth "$GT" --weak "$OUT/weak_labels.parquet" --label acc \
      --out "$OUT/ranker_0_labels.json" --table-out "$OUT/gt_with_supernet.csv"
    for L in 10 20; do
      ray-nasrank bench ranking --table "$OUT/gt_with_supernet.csv" --target test_acc --intrinsic params,flops,synflow \
        --labels "$L" --seeds 10 --methods nasrank,gbdt,random --quiet --out "$OUT/ranking_intrinsic_$L.json"
      ray-nasrank bench ranking --table "$OUT/gt_with_supernet.csv" --target test_acc --intrinsic params,flops,synflow \
        --weak supernet --labels "$L" --seeds 10 --methods nasrank,gbdt,random --quiet \
        --out "$OUT/ranking_intrinsic+supernet_$L.json"
    done ;;
  table)
    python - "$GT" "$OUT" <<'PY'
import json, sys
from pathlib import Path

import pandas as pd

from ray_nasrank.metrics import kendall_tau

gt, root = pd.read_csv(sys.argv[1]), Path(sys.argv[2])
print("| method | epochs | train CPU s | train wall s | load (1 min, start) | tau acc (held-out) | tau -loss (held-out) "
      "| tau acc (all) | tau -loss (all) |")
print("|---|---|---|---|---|---|---|---|---|")
held = None
for m in ("spos", "rd", "fewshot", "landmark"):
    if not (root / m / "summary.json").is_file():
        continue
    s = json.loads((root / m / "summary.json").read_text())
    w = gt.merge(pd.read_parquet(root / m / "weak_labels.parquet"), on="arch", how="left", validate="1:1")
    held = ~w["arch"].isin(s["landmark_archs"])
    taus = [kendall_tau(w["test_acc"][r], sign * w[c][r]) for r in (held, slice(None))
            for c, sign in (("weak_acc", 1), ("weak_loss", -1))]
    print(f"| {m} | {s['config']['epochs']} | {s['train_cpu_seconds']:.0f} | {s['train_seconds']:.0f} "
          f"| {s['load_average']['start'][0]:.1f} | " + " | ".join(f"{t:.3f}" for t in taus) + " |")
if held is not None:
    print(f"| params (count of the trained C=8, N=1 network) | - | 0 | 0 | - "
          f"| {kendall_tau(gt['test_acc'][held], gt['params'][held]):.3f} | - "
          f"| {kendall_tau(gt['test_acc'], gt['params']):.3f} | - |")
PY
    ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
