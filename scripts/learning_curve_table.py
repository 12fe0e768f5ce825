"""Learning-curve table: every config of a family trained from scratch, validated after every epoch.

The multi-fidelity companion of ``scripts/own_model_ground_truth.py`` (same family files, same data
and seeding rules): each row holds the decisions (``inactive`` for an inactive one), then
``valid_acc_1`` ... ``valid_acc_<E>`` (validation accuracy after each epoch of one training of
``E`` epochs with a cosine schedule over all ``E``), ``test_acc`` (after the last epoch),
``diverged_epoch`` (0, or the epoch whose loss became non-finite: that epoch and the later ones
hold 10.0, the chance accuracy of 10 balanced classes, because a diverged model predicts one
class), ``params``, ``seconds`` (wall) and ``cpu_seconds``. ``bench search --fidelity-cols``
reads such a table to replay schedulers (ASHA, Hyperband) at an equal epoch budget.

Rows are appended as they finish (a partial table is usable, a rerun resumes) and ``--shard i/n``
lets n processes share the sample: a row does not depend on which process trained it (one seed for
weights, batch order and dropout masks).

    nice -n 10 python scripts/learning_curve_table.py --family examples/mixed_cnn.py \\
        --num-configs 400 --epochs 9 --shard 0/2 --out results/learning_curves/mixed_cnn_fmnist.csv
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_model_ground_truth import start_table, table_parser  # noqa: E402

#: validation accuracy (%) recorded for the epochs of a diverged training
CHANCE_ACC = 10.0


def main(argv=None) -> int:
    p = table_parser(__doc__, "mixed_cnn.py", 400)
    p.add_argument("--epochs", type=int, default=9)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from ray_nasrank.training import train_model

    build = start_table(args, {"epochs": args.epochs}, "learning_curve_table.py", flags=f" --epochs {args.epochs}",
                        before={"eval_every": 1},
                        after=lambda family: {"diverged": f"valid_acc {CHANCE_ACC} from the diverged epoch on"})
    for k, config, values in build.pending():
        cfg = build.train_config(config, eval_every=1)
        curve: list[float] = []
        t0, c0 = time.perf_counter(), time.process_time()
        diverged = 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(build.recipe["seed"])
            model = build.family.build_model(config)
            try:
                res = train_model(model, build.splits, cfg, report=lambda e, m: curve.append(float(m["valid_acc"])))
                test_acc = float(res["test_acc"])
            except FloatingPointError:
                diverged = len(curve) + 1
                test_acc = CHANCE_ACC
        curve += [CHANCE_ACC] * (args.epochs - len(curve))
        row = {**values, **{f"valid_acc_{e + 1}": round(a, 3) for e, a in enumerate(curve)},
               "test_acc": round(test_acc, 3), "diverged_epoch": diverged,
               "params": sum(q.numel() for q in model.parameters()),
               "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}
        build.append(row)
        print(f"[{k}] {config} curve={[round(a, 1) for a in curve]} test={test_acc:.2f} "
              f"(cpu {row['cpu_seconds']}s){' DIVERGED' if diverged else ''}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
