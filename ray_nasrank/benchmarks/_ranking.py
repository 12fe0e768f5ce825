"""How well each method ranks a whole table from a few labels (``ray-nasrank bench ranking``).

Each seed draws ``labels`` rows at random (seeded), every method learns from those rows (and
the weak-label columns of all rows), then scores **all** rows; the result holds, per method, the
seed means of Kendall tau, Spearman, NDCG@10, NDCG@50 and the best true target among the 10
top-ranked, plus the per-seed values.

Methods: ``nasrank`` (LTR predictor pretrained on the weak labels), ``nasrank_no_pretrain``
(same, no pretraining), ``weak`` (the mean rank of the weak labels alone, read in the target's
direction: higher is better for ``mode="max"``, lower for ``min``), ``weak_valid`` (the weak
column that orders the seed's labelled rows best, by the predictor's own validation score: the
column a user with those labels would pick), ``weak_single`` (each weak column alone; per metric
the best column, an oracle choice made with the true targets of all rows, shown for reference and
not counted as a baseline), ``mse`` (the pretrained predictor fine-tuned with MSE instead of a ranking loss, with
no trust blend), ``gbdt`` (scikit-learn gradient-boosted trees on the encoding plus the weak
labels), ``random``. ``nasrank``'s per-seed rows also hold the trust blend its fit chose (and,
with several weak labels, each one's weight in the prior) and who placed the top (``top``:
``network`` for the fine-tuned network's shortlist, ``blend`` where the prior's top held on the labels).
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ray_nasrank._checks import ConfigError, check_int
from ray_nasrank._config import option

from ._config import TableConfig, table_weak_labels

if TYPE_CHECKING:  # pragma: no cover
    from ray_nasrank.tabular import TabularBenchmark

log = logging.getLogger(__name__)

METHODS = ("nasrank", "nasrank_no_pretrain", "weak", "weak_valid", "weak_single", "mse", "gbdt", "random")
#: methods that are not baselines: an oracle (it reads every row's true target) and chance
NOT_BASELINES = ("weak_single", "random")
#: the methods the Markdown table shows: all but the oracle column
TABLE_METHODS = tuple(m for m in METHODS if m != "weak_single")
METRICS = ("kendall_tau", "spearman", "ndcg@10", "ndcg@50", "best_in_top10")


@dataclass
class RankingBenchConfig(TableConfig):
    """One ``bench ranking`` run: the table (see :class:`TableConfig`), the methods and their settings.

    Raises:
        ConfigError: a bad value; the message names its key.

    >>> cfg = RankingBenchConfig(table="t.csv", target="acc", labels=20, methods=["nasrank", "random"])
    >>> cfg.seeds, cfg.methods
    (10, ['nasrank', 'random'])
    >>> RankingBenchConfig(table="t.csv", target="acc", labels=1)
    Traceback (most recent call last):
    ...
    ray_nasrank._checks.ConfigError: labels must be >= 2 (a ranking needs two labelled rows), got 1
    """

    labels: int = option(50, "labelled rows drawn per seed")
    seeds: int = option(10, "number of seeds")
    first_seed: int = option(0, "seeds run from this one (e.g. 100 to choose settings on other seeds than "
                                "the reported 0..9)")
    out: str | None = option(None, "JSON file to write", required=True)
    methods: list[str] = option(default_factory=lambda: list(METHODS),
                                help=f"comma-separated subset of {','.join(METHODS)}")
    encoder: str = option("mlp", "predictor encoder", choices=("mlp", "gcn"))
    features: str = option("onehot+opdist", "encodings joined by '+'")
    loss: str = option("lambdarank", "fine-tuning loss of the nasrank methods")
    ensemble: int = option(3, "predictor ensemble size")
    device: str = option("cpu", "torch device (cpu, cuda)")
    threads: int = option(1, "torch CPU threads")
    predictor_args: dict = option(default_factory=dict, metavar="JSON",
                                  help="more PredictorConfig fields as a JSON object, e.g. '{\"weak_reg\": 1.0}'")
    pretrain_cache: str | None = option(None, metavar="DIR",
                                        help="keep the weak-label-pretrained predictor (and the computed "
                                             "--intrinsic labels of a built-in family) in DIR and reuse them across "
                                             "runs of the same table, weak columns and predictor settings (they do "
                                             "not depend on --labels/--seeds)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.methods = list(self.methods)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown} in `methods`; choose from {list(METHODS)}")
        if not self.methods:
            raise ConfigError("`methods` is empty")
        check_int("seeds", self.seeds, low=1)
        check_int("first_seed", self.first_seed, low=0)
        check_int("labels", self.labels)
        if self.labels < 2:
            raise ConfigError(f"`labels` must be >= 2 (a ranking needs two labelled rows), got {self.labels}")
        check_int("threads", self.threads, low=1)
        check_int("ensemble", self.ensemble, low=1)
        if not isinstance(self.predictor_args, dict):
            raise ConfigError("`predictor_args` must be a JSON object of PredictorConfig fields")

    def predictor_config(self):
        """The :class:`~ray_nasrank.predictor.PredictorConfig` of the nasrank methods."""
        from ray_nasrank.predictor import PredictorConfig

        try:
            return PredictorConfig.from_dict({**self.predictor_args, "encoder": self.encoder,
                                              "features": self.features, "loss": self.loss,
                                              "ensemble": self.ensemble, "device": self.device, "seed": 0})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"`predictor_args`: {e}") from None

    def command(self) -> str:
        """The ``ray-nasrank`` command line of this run."""
        parts = ["--table", str(self.table), "--space", self.space, "--target", self.target, "--mode", self.mode]
        if self.space == "columns":
            parts += ["--arch-cols", ",".join(self.arch_cols)] if self.arch_cols else []
            parts += ["--num-cols", ",".join(self.num_cols)] if self.num_cols else []
        else:
            parts += ["--arch-col", self.arch_col]
        if self.weak:
            parts += ["--weak", ",".join(self.weak)]
        parts += self.table_flags()
        parts += ["--labels", str(self.labels), "--seeds", str(self.seeds), "--out", str(self.out)]
        if self.first_seed:
            parts += ["--first-seed", str(self.first_seed)]
        if list(self.methods) != list(METHODS):
            parts += ["--methods", ",".join(self.methods)]
        if self.predictor_args:
            parts += ["--predictor-args", json.dumps(self.predictor_args, sort_keys=True)]
        defaults = {f.name: f.default for f in fields(self)}
        for key in ("encoder", "features", "loss", "ensemble"):
            if getattr(self, key) != defaults[key]:
                parts += [f"--{key}", str(getattr(self, key))]
        return "ray-nasrank bench ranking " + shlex.join(parts)


def weak_baseline_scores(weak: dict[str, Any]):
    """The weak labels alone: mean normal-score rank over the columns (missing rows last).

    Args:
        weak: weak-label columns (name -> array, NaN for missing), higher is better.

    Returns:
        One score per row, higher is better.
    """
    import numpy as np

    from ray_nasrank.predictor.weak import as_weak_matrix, combined_target, normalise_weak

    n = len(next(iter(weak.values())))
    _, matrix = as_weak_matrix(weak, n)
    s = combined_target(normalise_weak(matrix, "rank"))
    return np.where(np.isnan(s), np.nanmin(s) - 1.0, s)


def weak_valid_score(weak: dict[str, Any], idx, y_signed):
    """The weak column that orders the labelled rows ``idx`` best (``y_signed``: higher is better).

    Each column is read as :func:`weak_baseline_scores` reads it alone and scored on the labelled rows with
    the predictor's validation criterion (:func:`ray_nasrank.predictor.blend.validation_score`:
    the mean of Kendall tau and NDCG); the first of equally good columns wins.

    Args:
        weak: weak-label columns (name -> array over all rows, NaN for missing), higher is better.
        idx: the labelled rows.
        y_signed: every row's target, higher is better (only ``idx`` is read).

    Returns:
        ``(name, scores)``: the chosen column and its score for every row, higher is better.

    >>> import numpy as np
    >>> y = np.arange(6.0)
    >>> weak_valid_score({"backwards": -y, "noisy": y + [0, 2, 0, 2, 0, 2]}, np.array([0, 2, 4]), y)[0]
    'noisy'
    """
    import numpy as np

    from ray_nasrank.predictor.blend import validation_score

    best, best_v = None, -np.inf
    for name, col in weak.items():
        s = weak_baseline_scores({name: col})
        v = validation_score(np.asarray(y_signed)[idx], s[idx])
        if v > best_v:
            best, best_v = (name, s), v
    return best


def _gbdt_scores(features, weak_feats, idx, y_signed, seed: int):
    import numpy as np
    from sklearn.ensemble import GradientBoostingRegressor

    x = features if weak_feats is None else np.concatenate([features, weak_feats], axis=1)
    model = GradientBoostingRegressor(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8,
                                      random_state=seed)
    model.fit(x[idx], y_signed[idx])
    return model.predict(x)


def bench_ranking(config: RankingBenchConfig) -> dict:
    """Run the ranking benchmark of ``config`` and write its JSON to ``config.out`` (when set).

    Progress goes to the ``ray_nasrank`` logger (per seed at INFO, data notices at WARNING).

    Args:
        config: the run.

    Returns:
        ``{"config": {...}, "methods": {method: {metric: seed mean, "per_seed": [...]}}}``.

    Raises:
        ConfigError: a bad value (e.g. ``labels`` not smaller than the table).
        ValueError: a table that cannot be read as configured (missing columns, bad rows).
    """
    import dataclasses

    import numpy as np
    import torch

    from ray_nasrank._io import atomic_write_json, check_writable_dir
    from ray_nasrank.metrics import ranking_report
    from ray_nasrank.predictor import RankPredictor
    from ray_nasrank.predictor.features import feature_store
    from ray_nasrank.predictor.weak import normalise_weak

    cfg = config
    bench = cfg.load_table()
    n = len(bench.archs)
    if cfg.labels >= n:
        raise ConfigError(f"`labels` {cfg.labels} must be smaller than the table's {n} rows")
    methods = [m for m in METHODS if m in cfg.methods]
    if not bench.weak and not cfg.intrinsic and cfg.model is None:
        dropped = [m for m in methods if m in ("weak", "weak_valid", "weak_single")]
        methods = [m for m in methods if m not in ("weak", "weak_valid", "weak_single")]
        if "nasrank" in methods:
            log.warning("bench ranking: no weak columns: 'nasrank' fine-tunes without pretraining")
        if dropped:
            log.warning(f"bench ranking: no weak columns, skipping {dropped}")
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        check_writable_dir(out.parent if str(out.parent) else ".")
    torch.set_num_threads(cfg.threads)
    pcfg = cfg.predictor_config()
    try:
        feature_store(bench.space, pcfg.features, graph=pcfg.encoder == "gcn")
    except ValueError as e:
        raise ConfigError(f"`encoder`/`features`: {e}") from None

    y = bench.targets
    y_signed = y if bench.mode == "max" else -y
    weak = _cached_weak_labels(cfg, bench) if cfg.pretrain_cache else table_weak_labels(cfg, bench)
    # weak columns read in the target's direction: higher is better, as every scorer's output
    signed_weak = weak if bench.mode == "max" else {k: -v for k, v in weak.items()}
    timings: dict[str, float] = {m: 0.0 for m in methods}

    pretrained = None
    if weak and any(m in methods for m in ("nasrank", "mse")):
        t0 = time.perf_counter()
        cache = _cache_path(cfg, pcfg, n) if cfg.pretrain_cache else None
        if cache is not None and cache.is_file():
            pretrained = RankPredictor.load(cache, device=cfg.device)
            timings["pretrain_loaded"] = time.perf_counter() - t0
        else:
            pretrained = RankPredictor(bench.space, pcfg).pretrain(bench.archs, weak)
            timings["pretrain"] = time.perf_counter() - t0
            if cache is not None:
                pretrained.save(cache)

    features = weak_feats = None
    if "gbdt" in methods:
        store = feature_store(bench.space, pcfg.features)
        rows = store.rows(bench.archs)  # first: encoding them is what fills store.flat
        features = store.flat[rows]
        if weak:
            weak_feats = np.nan_to_num(normalise_weak(np.stack([weak[k] for k in weak], axis=1), "rank"), nan=0.0)

    # each weak column alone does not depend on the seed: its metrics are measured once
    single: dict[str, dict[str, float]] = {}
    if "weak_single" in methods:
        for name, col in weak.items():
            s = weak_baseline_scores({name: col})
            rep = ranking_report(y, s if bench.mode == "max" else -s, mode=bench.mode, ks=(10, 50))
            single[name] = {k: float(rep[k]) for k in METRICS}
    single_best = {k: max(single, key=lambda c: single[c][k]) for k in METRICS} if single else {}
    trust: dict[str, Any] = {}

    def nasrank_scores(archs, labels, seed: int) -> np.ndarray:
        q = fit_clone(pretrained, archs, labels, seed=seed if pretrained is None else 0)
        trust["weights"], trust["columns"] = q.blend_weights, q.blend_columns
        trust["top"] = None if q.blend is None else q.blend.top_ranker()
        return q.score(bench.archs)

    def fit_clone(base: RankPredictor | None, archs, labels, **over) -> RankPredictor:
        if base is None:
            return RankPredictor(bench.space, pcfg.updated(over)).fit(archs, labels, mode=bench.mode)
        p = base.clone()
        # the bench's own settings: a cached predictor shares only the pretraining ones (see _cache_path)
        p.config = pcfg.updated(over)
        return p.fit(archs, labels, mode=bench.mode)

    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=cfg.labels, replace=False))
        archs = [bench.archs[i] for i in idx]
        labels = y[idx]
        scorers: dict[str, Callable[[], np.ndarray]] = {
            "nasrank": lambda: nasrank_scores(archs, labels, seed),
            "nasrank_no_pretrain": lambda: fit_clone(None, archs, labels, seed=seed).score(bench.archs),
            # weak columns are read in the target's direction (higher is better for mode max)
            "weak": lambda: weak_baseline_scores(weak) if bench.mode == "max" else -weak_baseline_scores(weak),
            # the column the labels would choose
            "weak_valid": lambda: weak_valid_score(signed_weak, idx, y_signed)[1],
            # a plain baseline: MSE fine-tuning, no trust blend
            "mse": lambda: fit_clone(pretrained, archs, labels, finetune={"loss": "mse", "aux_loss": None}, blend={"mode": "off"},
                                     seed=seed if pretrained is None else 0).score(bench.archs),
            "gbdt": lambda: _gbdt_scores(features, weak_feats, idx, y_signed, seed),
            "random": lambda: np.random.default_rng(10_000 + seed).random(n),
        }
        line = []
        for m in methods:
            if m == "weak_single":
                per_seed[m].append({"seed": seed, **{k: single[single_best[k]][k] for k in METRICS}})
                continue
            t0 = time.perf_counter()
            scores = scorers[m]()  # every scorer: higher = better
            timings[m] += time.perf_counter() - t0
            # the metrics read scores in the target's units, so a 'min' run negates them
            rep = ranking_report(y, scores if bench.mode == "max" else -scores, mode=bench.mode, ks=(10, 50))
            per_seed[m].append({"seed": seed, **{k: float(rep[k]) for k in METRICS}})
            if m == "nasrank" and trust.get("weights") is not None:
                per_seed[m][-1]["trust"] = trust["weights"]
                if trust.get("columns") is not None:
                    per_seed[m][-1]["trust_columns"] = trust["columns"]
                per_seed[m][-1]["top"] = trust["top"]
            line.append(f"{m} {rep['ndcg@50']:.3f}/{rep['kendall_tau']:.3f}")
        log.info(f"seed {seed}: ndcg@50/tau " + ", ".join(line))

    result = {
        "config": {
            "table": str(cfg.table), "space": cfg.space, "arch_col": cfg.arch_col, "arch_cols": cfg.arch_cols, "num_cols": cfg.num_cols,
            "target": cfg.target, "mode": bench.mode, "weak": list(weak), "intrinsic": list(cfg.intrinsic),
            "model": cfg.model, "input_shape": cfg.input_shape,
            "labels": cfg.labels,
            "seeds": cfg.seeds, "first_seed": cfg.first_seed, "rows": n, "methods": methods, "threads": cfg.threads,
            "predictor": dataclasses.asdict(pcfg),
            "seconds": {k: round(v, 2) for k, v in timings.items()},
            "weak_single_best": single_best,
            "command": cfg.command(),
        },
        "methods": {m: seed_means(per_seed[m]) for m in methods},
    }
    if out is not None:
        atomic_write_json(out, result)
    return result


def _table_key(cfg: RankingBenchConfig, n_rows: int) -> dict:
    """What a table's weak labels depend on: the file (path, size, time), its rows and columns."""
    table = Path(cfg.table).resolve()
    st = table.stat()
    return {"table": str(table), "size": st.st_size, "mtime": st.st_mtime_ns, "rows": n_rows,
            "space": cfg.space, "arch_col": cfg.arch_col, "arch_cols": cfg.arch_cols, "num_cols": cfg.num_cols,
            "weak": list(cfg.weak), "intrinsic": list(cfg.intrinsic), "model": cfg.model,
            "input_shape": cfg.input_shape}


def _cache_file(cfg: RankingBenchConfig, prefix: str, key: dict, suffix: str) -> Path:
    import hashlib

    from ray_nasrank._io import check_writable_dir

    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return check_writable_dir(cfg.pretrain_cache) / f"{prefix}_{digest}{suffix}"


def _cache_path(cfg: RankingBenchConfig, pcfg, n_rows: int) -> Path:
    """Cache file named by a hash of everything the pretraining depends on (not the fine-tuning settings)."""
    return _cache_file(cfg, "pretrained", {**_table_key(cfg, n_rows), "predictor": pcfg.pretraining_settings()}, ".pt")


def _cached_weak_labels(cfg: RankingBenchConfig, bench: TabularBenchmark) -> dict:
    """:func:`table_weak_labels`, kept in the pretrain cache when the space's own family computes
    some (``--intrinsic`` without ``--model``: SynFlow of 15,625 NB201 cells takes minutes and does
    not depend on the labels). A ``--model`` is user code that may change under the same name, so
    its proxies are recomputed. The file holds plain arrays (read without pickle)."""
    import numpy as np

    if not cfg.intrinsic or cfg.model is not None:
        return table_weak_labels(cfg, bench)
    path = _cache_file(cfg, "weak", _table_key(cfg, len(bench.archs)), ".npz")
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            weak = {name: saved[f"col{i}"] for i, name in enumerate(saved["names"].tolist())}
        log.info(f"weak labels {list(weak)} read from {path}")
        return weak
    weak = table_weak_labels(cfg, bench)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array(list(weak), dtype=str), **{f"col{i}": v for i, v in enumerate(weak.values())})
    tmp.replace(path)
    return weak


def seed_means(rows: Sequence[dict]) -> dict:
    """Seed means of :data:`METRICS` plus the per-seed rows.

    Args:
        rows: one dict per seed with every metric of :data:`METRICS`.

    Returns:
        ``{metric: mean, ..., "per_seed": rows}``.
    """
    import numpy as np

    return {**{k: float(np.mean([r[k] for r in rows])) for k in METRICS}, "per_seed": list(rows)}


def format_summary(result: dict) -> str:
    """A plain-text table of a :func:`bench_ranking` result: one line per method.

    Args:
        result: what :func:`bench_ranking` returned.

    Returns:
        The table.
    """
    c = result["config"]
    head = (f"{c['target']} on {Path(c['table']).name}, weak={','.join(c['weak']) or '-'}, "
            f"labels={c['labels']}, seeds={c['seeds']}")
    lines = [head, f"{'method':<22}" + "".join(f"{k:>14}" for k in METRICS)]
    for m, v in result["methods"].items():
        lines.append(f"{m:<22}" + "".join(f"{v[k]:>14.4f}" for k in METRICS))
    return "\n".join(lines)


def markdown_table(paths: Sequence[str | Path], methods: Sequence[str] = TABLE_METHODS,
                   metrics: Sequence[str] = ("ndcg@10", "ndcg@50", "kendall_tau")) -> str:
    """One Markdown table from result JSONs: a row per (table, weak set, labels), a column per method and metric.

    The last column names every metric on which ``nasrank`` trails a baseline (any method but
    :data:`NOT_BASELINES`), with the best baseline, the mean per-seed difference and its seed
    noise (:func:`paired_gap`); ``(noise)`` marks a gap within twice that noise.

    Args:
        paths: JSON files written by :func:`bench_ranking`.
        methods: the methods to show (a missing one prints ``-``).
        metrics: the metrics to show; the best value of each row is bold.

    Returns:
        The Markdown table.
    """
    rows = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        c = r["config"]
        weak = ",".join(c["weak"]) or "-"
        # a run with --predictor-args is a variant of the same cell: say which
        cmd = shlex.split(c.get("command", ""))
        if "--predictor-args" in cmd:
            weak += f" (predictor {cmd[cmd.index('--predictor-args') + 1]})"
        # the folder too: two tables of one file name (e.g. two families' fmnist.csv) stay apart
        table = Path(c["table"])
        rows.append((f"{table.parent.name}/{table.name}" if table.parent.name else table.name,
                     c["target"], weak, c["labels"], c["seeds"], r["methods"]))
    rows.sort(key=lambda t: (t[0], t[2], t[3]))
    methods = [m for m in methods if any(m in row[5] for row in rows)]
    cols = [(m, k) for k in metrics for m in methods]
    out = ["| table | target | weak labels | labels | seeds | " + " | ".join(f"{m} {k}" for m, k in cols)
           + " | nasrank not best on |",
           "|" + "---|" * (6 + len(cols))]
    for table, target, weak, labels, seeds, res in rows:
        best = {k: max((res[m][k] for m in methods if m in res), default=None) for k in metrics}
        cells = []
        for m, k in cols:
            if m not in res:
                cells.append("-")
                continue
            v = f"{res[m][k]:.3f}"
            cells.append(f"**{v}**" if res[m][k] == best[k] else v)
        out.append(f"| {table} | {target} | {weak} | {labels} | {seeds} | " + " | ".join(cells)
                   + f" | {_not_best(res, methods, metrics)} |")
    return "\n".join(out)


def paired_gap(a: dict, b: dict, metric: str) -> tuple[float, float]:
    """Mean per-seed difference ``a - b`` of ``metric`` and its standard error over the shared seeds.

    >>> a = {"per_seed": [{"seed": 0, "m": 0.5}, {"seed": 1, "m": 0.7}]}
    >>> b = {"per_seed": [{"seed": 0, "m": 0.4}, {"seed": 1, "m": 0.4}]}
    >>> tuple(round(x, 3) for x in paired_gap(a, b, "m"))
    (0.2, 0.1)
    """
    import numpy as np

    bs = {r["seed"]: r[metric] for r in b["per_seed"]}
    d = np.array([r[metric] - bs[r["seed"]] for r in a["per_seed"] if r["seed"] in bs])
    if d.size == 0:
        return float("nan"), float("nan")
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return float(d.mean()), se


def _not_best(res: dict, methods: Sequence[str], metrics: Sequence[str]) -> str:
    """The metrics on which ``nasrank`` trails a baseline: the best one, the gap and its seed noise."""
    if "nasrank" not in res:
        return "-"
    parts = []
    for k in metrics:
        others = {m: res[m][k] for m in methods if m in res and m != "nasrank" and m not in NOT_BASELINES}
        if others:
            m = max(others, key=others.get)
            if others[m] > res["nasrank"][k]:
                gap, se = paired_gap(res["nasrank"], res[m], k)
                noise = " (noise)" if -gap <= 2 * se else ""
                parts.append(f"{k} ({m} {others[m]:.3f}, {gap:+.3f} ± {se:.3f}){noise}")
    return "; ".join(parts) or "-"
