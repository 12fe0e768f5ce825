#!/usr/bin/env bash
# Regenerates results/ranking/*.json and the table in docs/benchmarks/ranking.md.
#   scripts/bench_ranking_table.sh [DATA_DIR] [OUT_DIR]
# DATA_DIR defaults to ../shared/data; every run is one `ray-nasrank bench ranking` call, so the
# same command works unchanged on other tables and targets. Env: SEEDS (10), FIRST_SEED (0: seeds
# 0..SEEDS-1; e.g. 100 for the seeds settings are chosen on), LABELS ("50 10 20 100"),
# SKIP_EXISTING=1 keeps result files already written, ONLY (space-separated result file names
# without .json, e.g. "nb201zc_val_acc_zc_L10": run just those cells), CACHE (pretrained predictors,
# reused across label counts; default /tmp/ray_nasrank_pretrain_cache).
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-results/ranking}
SEEDS=${SEEDS:-10}
FIRST_SEED=${FIRST_SEED:-0}
LABELS=${LABELS:-"50 10 20 100"}
CACHE=${CACHE:-/tmp/ray_nasrank_pretrain_cache}
mkdir -p "$OUT"

run() {  # run OUT_FILE ARGS...: one benchmark, skipped when SKIP_EXISTING=1 and the file exists
  local out=$1; shift
  if [[ "${SKIP_EXISTING:-0}" == 1 && -f "$out" ]]; then echo "keep $out"; return; fi
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $(basename "$out" .json) "* ]]; then return; fi
  ray-nasrank bench ranking "$@" --seeds "$SEEDS" --first-seed "$FIRST_SEED" --pretrain-cache "$CACHE" --quiet --out "$out"
}
export TQDM_DISABLE=1

NB201="$DATA/nb201/nb201_cifar10.parquet"
ZC="$DATA/nb201/nb201_zc_cifar10.parquet"

for L in $LABELS; do
  for W in supernet_oneshot_acc supernet_fewshot_acc supernet_oneshot_acc,supernet_fewshot_acc; do
    tag=$(echo "$W" | sed 's/supernet_//g; s/_acc//g; s/,/+/g')
    run "$OUT/nb201_test_acc_${tag}_L${L}.json" --table "$NB201" --space nb201 --arch-col arch \
      --target test_acc --weak "$W" --labels "$L"
  done
  # the one-shot label plus the package's intrinsic labels (params, FLOPs, SynFlow: NASRank's search default)
  run "$OUT/nb201_test_acc_oneshot+intrinsic_L${L}.json" --table "$NB201" --space nb201 --arch-col arch \
    --target test_acc --weak supernet_oneshot_acc --intrinsic params,flops,synflow --labels "$L"
  # zero-cost proxies as weak labels (725 cells, validation accuracy)
  run "$OUT/nb201zc_val_acc_zc_L${L}.json" --table "$ZC" --space nb201 --arch-col arch --target val_acc \
    --weak synflow,nwot,jacov,snip --labels "$L"
done

python -m ray_nasrank.cli.bench_ranking "$OUT"/*.json > "$OUT/table.md"
cat "$OUT/table.md"
