#!/usr/bin/env bash
# Searches under a scheduler on the learning-curve table results/learning_curves/mixed_cnn_fmnist.csv
# (built by scripts/learning_curve_table.py) at an equal epoch budget, seeds FIRST_SEED..FIRST_SEED+SEEDS-1:
#   Tune + ASHA and Optuna + HyperbandPruner: NASRank vs TPE vs random;
#   HpBandSter's Hyperband brackets: BOHB vs NASRank vs random configs (plain Hyperband); needs
#   pip install 'ray_nasrank[bohb]'.
# Results: results/learning_curves/search_{tune_asha,optuna_hyperband,hpbandster}.json
# and search_hpbandster_360.json (docs/benchmarks/search_fidelity.md). SPECS picks the runs:
# scheduler:epochs:strategies[:suffix of the JSON file's name], e.g. SPECS=hpbandster:120:bohb,nasrank,random
set -euo pipefail
SEEDS=${SEEDS:-10}
FIRST_SEED=${FIRST_SEED:-0}
OUT=${OUT:-results/learning_curves}
CURVES=valid_acc_1,valid_acc_2,valid_acc_3,valid_acc_4,valid_acc_5,valid_acc_6,valid_acc_7,valid_acc_8,valid_acc_9
# scheduler:epochs:strategies. Equal epochs within a framework: ASHA stops trials from the first rung on
# (45 epochs: about 19 configs); Optuna's HyperbandPruner prunes only once a bracket holds a few trials,
# so it gets 120, and so do HpBandSter's brackets (the same reduction factor 3, 1 to 9 epochs). BOHB's model
# needs 2 x (11 decisions + 1) results at one budget, which 120 epochs never give: 360 epochs let it act
SPECS=${SPECS:-"tune-asha:45:nasrank,optuna-tpe,random optuna-hyperband:120:nasrank,optuna-tpe,random
hpbandster:120:bohb,nasrank,random hpbandster:360:bohb,nasrank,random:_360"}
for spec in $SPECS; do
  IFS=: read -r scheduler budget strategies suffix <<< "$spec"
  nice -n 10 ray-nasrank bench search --table results/learning_curves/mixed_cnn_fmnist.csv --space columns \
    --arch-cols depth,op1,w1,op2,w2,op3,w3,act --num-cols lr:log,wd:log,dropout --target valid_acc_9 \
    --curve-cols "$CURVES" --model examples/mixed_cnn.py:build_model --input-shape 1,10,10 \
    --strategies "$strategies" --seeds "$SEEDS" --seed "$FIRST_SEED" --epoch-budget "$budget" \
    --scheduler "$scheduler" --out "$OUT/search_${scheduler//-/_}${suffix:-}.json" &
done
wait
