"""In the shape of optuna-examples' ``sklearn_simple.py``: a define-by-run objective choosing a
classifier and, per branch, its own hyperparameters. Only the sampler argument is added."""

from __future__ import annotations

import optuna
import sklearn.ensemble
import sklearn.model_selection
import sklearn.svm
from _data import digits

from ray_nasrank.integrations.optuna import NASRankSampler


def objective(trial):
    xt, yt, _, _ = digits()
    x, y = xt[:400], yt[:400]
    classifier_name = trial.suggest_categorical("classifier", ["SVC", "RandomForest"])
    if classifier_name == "SVC":
        svc_c = trial.suggest_float("svc_c", 1e-10, 1e10, log=True)
        classifier_obj = sklearn.svm.SVC(C=svc_c, gamma="auto")
    else:
        rf_max_depth = trial.suggest_int("rf_max_depth", 2, 32, log=True)
        classifier_obj = sklearn.ensemble.RandomForestClassifier(max_depth=rf_max_depth, n_estimators=10, random_state=0)
    score = sklearn.model_selection.cross_val_score(classifier_obj, x, y, n_jobs=1, cv=3)
    return score.mean()


def main(n_trials: int = 30) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=NASRankSampler())
    study.optimize(objective, n_trials=n_trials)
    return study


if __name__ == "__main__":
    print(main().best_trial)
