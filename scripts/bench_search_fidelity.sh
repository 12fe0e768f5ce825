#!/usr/bin/env bash
# Searches under a scheduler on the learning-curve table results/learning_curves/mixed_cnn_fmnist.csv
# (built by scripts/learning_curve_table.py): NASRank vs TPE vs random at an equal epoch budget,
# Tune + ASHA and Optuna + HyperbandPruner, seeds FIRST_SEED..FIRST_SEED+SEEDS-1.
# Results: results/learning_curves/search_{tune_asha,optuna_hyperband}.json (docs/benchmarks/search_fidelity.md).
set -euo pipefail
SEEDS=${SEEDS:-10}
FIRST_SEED=${FIRST_SEED:-0}
OUT=${OUT:-results/learning_curves}
CURVES=valid_acc_1,valid_acc_2,valid_acc_3,valid_acc_4,valid_acc_5,valid_acc_6,valid_acc_7,valid_acc_8,valid_acc_9
# equal epochs within a framework: ASHA stops trials from the first rung on (45 epochs: about 19 configs),
# Optuna's HyperbandPruner prunes only once a bracket holds a few trials, so it gets 120
for spec in tune-asha:45 optuna-hyperband:120; do
  scheduler=${spec%%:*} budget=${spec##*:}
  nice -n 10 ray-nasrank bench search --table results/learning_curves/mixed_cnn_fmnist.csv --space columns \
    --arch-cols depth,op1,w1,op2,w2,op3,w3,act --num-cols lr:log,wd:log,dropout --target valid_acc_9 \
    --curve-cols "$CURVES" --model examples/mixed_cnn.py:build_model --input-shape 1,10,10 \
    --strategies nasrank,optuna-tpe,random --seeds "$SEEDS" --seed "$FIRST_SEED" --epoch-budget "$budget" \
    --scheduler "$scheduler" --out "$OUT/search_${scheduler//-/_}.json" &
done
wait
