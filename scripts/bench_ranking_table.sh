#!/usr/bin/env bash
# Regenerates results/ranking/*.json and the table in docs/benchmarks/ranking.md.
#   scripts/bench_ranking_table.sh [DATA_DIR] [OUT_DIR]
# DATA_DIR defaults to ../shared/data; every run is one `ray-nasrank bench ranking` call, so the
# same command works unchanged on other tables and targets. Env: SEEDS (10), FIRST_SEED (0: seeds
# 0..SEEDS-1; e.g. 100 for the seeds settings are chosen on), LABELS ("50 10 20 100"),
# SKIP_EXISTING=1 keeps result files already written, ONLY (space-separated result file names
# without .json, e.g. "nb201zc_val_acc_zc_L10": run just those cells), CACHE (pretrained predictors,
# reused across label counts; default /tmp/ray_nasrank_pretrain_cache), METHODS (e.g.
# "nasrank,weak_valid" after a change of the default: only those methods run, and where the cell's
# result file exists they replace its methods of the same name, the others kept, via
# scripts/merge_ranking_runs.py; the seeded baselines do not depend on the default).
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
  if [[ -n "${METHODS:-}" ]]; then
    local new="${out%.json}.new.json"
    ray-nasrank bench ranking "$@" --methods "$METHODS" --seeds "$SEEDS" --first-seed "$FIRST_SEED" \
      --pretrain-cache "$CACHE" --quiet --out "$new"
    if [[ -f "$out" ]]; then
      python "$(dirname "$0")/merge_ranking_runs.py" "$new" "$out" "$out" && rm "$new"
    else
      mv "$new" "$out"
    fi
    return
  fi
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
  # the package's own tables (weak labels: zero-cost proxies of each row's model): the mixed
  # architecture + hyperparameter CNN table, and the CNN family (kept aside until issue 24's second
  # round, which chose the learned rankers' shortlist on its seeds 100-109)
  run "$OUT/mixed_cnn_test_acc_L${L}.json" --table results/mixed_cnn/fmnist.csv --space columns --target test_acc \
    --arch-cols depth,op1,w1,op2,w2,op3,w3,act --num-cols lr:log,wd:log,dropout \
    --model examples/mixed_cnn.py:build_model --input-shape 1,10,10 --labels "$L"
  run "$OUT/cnn_family_test_acc_L${L}.json" --table results/own_model/cnn_fmnist.csv --space columns --target test_acc \
    --arch-cols w1,act,op1,w2,depth,head --intrinsic params,flops,synflow,naswot,jacov \
    --model examples/cnn_family.py:build_model --input-shape 1,12,12 --labels "$L"
  # the MLP family (architecture + lr/wd/dropout) kept aside for the final check of issue 24's
  # default: proxies chosen by what they are defined on (FLOPs repeat params in an MLP, NASWOT
  # fails on tanh), not by how any ranker does on this table
  run "$OUT/mlp_family_test_acc_L${L}.json" --table results/mlp_family/fmnist.csv --space columns --target test_acc \
    --arch-cols depth,w1,w2,w3,w4,act,norm --num-cols lr:log,wd:log,dropout --intrinsic params,synflow,snip,jacov \
    --model examples/mlp_family.py:build_model --input-shape 1,12,12 --labels "$L"
  # the GAP-CNN family on sklearn digits (architecture + AdamW lr/wd, label smoothing, batch size),
  # a family no rule of the ranker was chosen on, kept aside for issue 24's held-out check: proxies
  # chosen by what they are defined on (NASWOT's activation codes are ReLU's; the family also uses
  # SiLU/ELU), not by how any ranker does on this table
  run "$OUT/gap_cnn_family_test_acc_L${L}.json" --table results/gap_cnn_family/digits.csv --space columns \
    --target test_acc --arch-cols stages,width,growth,blocks,kernel,down,residual,norm,act,batch_size \
    --num-cols lr:log,wd:log,label_smoothing --intrinsic params,flops,synflow,snip,jacov \
    --model examples/gap_cnn_family.py:build_model --input-shape 1,8,8 --labels "$L"
done

python -m ray_nasrank.cli.bench_ranking "$OUT"/*_L*.json > "$OUT/table.md"  # the cells, not other result files
cat "$OUT/table.md"
