"""NASRank: propose the top predicted unseen candidates of a learning-to-rank predictor.

The predictor (:class:`ray_nasrank.predictor.RankPredictor`) is pretrained once on weak labels
of every candidate (on NB201 also on each cell's params, FLOPs and SynFlow at initialisation,
``intrinsic_weak``: AceNAS's extra targets and the zero-cost proxy that ranks the top of NB201
best, all computed by the package itself). The first batch is half the pretrained
ranking's best cells, one per op-count vector (``first_diverse``), half op-distribution
Thompson draws (``first_explore``). Then each round it is re-fitted (a clone of the pretrained one, fine-tuned
on all true labels so far) and the next batch is:

- ``1 - explore`` of it *exploitation*: the best predicted unseen candidates, one per
  isomorphism class; a ``local`` share of these slots is restricted to the one-edit
  neighbourhood of the best archs measured so far (a trust region: the predictor ranks well
  locally long before it ranks the whole space well);
- ``explore`` of it *exploration*: cells drawn by operation-distribution Thompson sampling
  (:class:`OpDistModel`, prior from the per-vector mean of the pretraining labels, intrinsic
  ones included when ``prior_intrinsic``, updated with every result) when
  ``opdist_prior``, else the highest ensemble upper confidence bound.

Several objectives (a list ``mode``) and constraints (``tell(..., constraints=[...])``) are
searched as in ``docs/concepts/multi_objective.md``: objectives and constraints known without
training (``known_objectives``, ``known_constraints``: params, FLOPs, a latency column) are
computed exactly for every candidate, each other one gets its own fine-tuned clone of the
pretrained ranker, mapped to the told values' units; the exploited slots of a round go one by one
to the candidate with the largest predicted hypervolume improvement over the feasible front
(times its predicted probability of being feasible), each pick joining the front as predicted.

The refit runs synchronously inside :meth:`ask`, or with ``async_refit=True`` in a background
thread started by :meth:`tell` (``ready`` is False meanwhile, so a Tune searcher can answer
``None`` instead of blocking its event loop).

>>> import numpy as np
>>> from ray_nasrank.spaces import NB201Space
>>> from ray_nasrank.predictor import FineTuneConfig, PredictorConfig, PretrainConfig
>>> space = NB201Space()
>>> pool = space.sample_many(300, rng=0, unique=True)
>>> weak = np.array([a.count("nor_conv_3x3") for a in pool], dtype=float)
>>> cfg = PredictorConfig(ensemble=1, pretrain=PretrainConfig(epochs=2), finetune=FineTuneConfig(epochs=10))
>>> s = NASRankStrategy(space, seed=0, candidates=pool, weak={"convs": weak}, predictor=cfg, batch_size=4)
>>> batch = s.ask(4)
>>> for a in batch:
...     s.tell(a, float(a.count("nor_conv_3x3")))
>>> len(s.ask(2))
2
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from ray_nasrank._checks import check_int, check_number
from ray_nasrank._state import state_class
from ray_nasrank.spaces import Arch, SearchSpace

from ._base import _ENUMERABLE, Strategy, nearest_first
from ._objectives import Known, LinearConstraint, hypervolume_improvement, known_values
from ._opdist import OpDistModel
from ._weak import WeakLabels, WeakSpec, pretraining_labels, resolve_weak, weak_rank_score

#: costs a space may compute without training that learned constraints read first (most NAS
#: constraints, latency, memory, size, grow with them)
COST_FEATURES = ("params", "flops")


@contextlib.contextmanager
def limit_torch_threads(n: int | None):
    """Run the block with ``n`` torch threads (``None``: as they are), restoring the count after.

    A refit inside a Tune or Optuna driver would otherwise take every core the trials need.
    """
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def search_predictor_config(space: SearchSpace, **overrides: Any):
    """The predictor settings NASRank uses by default (measured on NB201, docs/benchmarks/search.md).

    The space's ``ranker_features`` (NB201 adds the path encoding: it ranked the top of the table
    far better after 10-30 labels), and no weak-label regulariser during fine-tuning: once true labels exist they
    should override the weak ones, which are least reliable exactly at the top. The trust blend
    of the ranking default (``blend.mode="cv"``) is off here: the search's figures were measured
    without it, and its exploration reads the fine-tuned ensemble's spread.

    Args:
        space: the search space.
        **overrides: settings to change, as :meth:`~ray_nasrank.predictor.PredictorConfig.updated` takes them.

    Returns:
        The ``PredictorConfig``.
    """
    from ray_nasrank.predictor import BlendConfig, FineTuneConfig, PredictorConfig

    base = PredictorConfig(features=space.ranker_features, finetune=FineTuneConfig(weak_reg=0.0),
                           blend=BlendConfig(mode="off"))
    return base.updated(overrides)


def default_intrinsic(space: SearchSpace) -> tuple[str, ...]:
    """The intrinsic pretraining labels NASRank adds by default.

    Args:
        space: the search space.

    Returns:
        The space's own ``intrinsic_names``: ``("params", "flops", "synflow")`` for NB201 cells
        (computed by the package itself, :func:`~ray_nasrank.search.intrinsic_weak`), ``()`` for
        spaces without them.
    """
    return tuple(space.intrinsic_names)


@state_class
class NASRankStrategy(Strategy):
    """Predictor-driven batches of the top predicted unseen candidates.

    Without a finite ``candidates`` pool the whole space is ranked when it is finite with at most
    2**20 archs. Any other space (continuous, mixed, conditional or huge) is searched through
    candidates drawn each round: ``n_candidates`` prior samples plus ``local_moves`` moves
    (categorical switches, numeric steps in the transformed space) around each of the
    ``local_parents`` best configs; the predictor ranks the whole configs.

    Args:
        space: the search space.
        seed: seed of every random choice (``None``: not reproducible).
        mode: ``max`` when higher told values are better, ``min`` when lower are.
        candidates: a finite pool to propose from (e.g. a table's archs); ``None``: the whole space.
        weak: weak labels of the candidates: a :class:`~ray_nasrank.search.WeakLabels` (labels you
            have, your model family's zero-cost proxies, a trained supernet's labels), or
            the labels alone: a dict of arrays aligned to ``candidates``, one array, or a
            callable ``archs -> dict``.
        predictor: a ``PredictorConfig`` (a new predictor is pretrained here) or a
            ``RankPredictor`` (cloned; if it is already pretrained, e.g. shared by several seeds of
            a benchmark, pretraining is skipped); default :func:`search_predictor_config`.
        batch_size: archs planned per round.
        first_batch: archs of the first round (default ``batch_size``).
        refit_every: new labels that trigger a refit (default ``batch_size``).
        refit_share: ...or this share of all labels, whichever is more. A refit costs time linear
            in the labels, so refitting every few labels makes long runs quadratic; growing the
            gap with the labels keeps the cost per trial flat (the default 0.05 changes nothing
            before 80 labels; at 1,000 labels it refits every 50).
        explore: share of each round explored instead of exploited.
        first_explore: share of the first round explored (weak labels are often least reliable
            at the very top).
        local: share of exploited archs taken around the best configs (default 1; 0.5 in a pool
            of a space with numeric decisions, where the neighbourhood is the nearest rows
            instead of exact one-edit moves; see ``docs/benchmarks/mixed_space.md``).
        local_parents: best configs the local moves start from (default 1 for a pool, 3 otherwise).
        local_nearest: in a pool of a space with numeric decisions (a table of runs holds no
            config one exact step away), the unseen pool configs nearest to each parent
            (:func:`~ray_nasrank.search.nearest_first`) that form its neighbourhood.
        opdist_prior: let the op-distribution model shape exploration.
        ucb_beta: weight of the ensemble's spread in the exploration score.
        async_refit: refit in a background thread while proposals continue.
        pool_size: prior samples the weak labels are computed on when there is no finite pool
            (default 2,000).
        intrinsic_weak: intrinsic labels added to ``weak`` as pretraining targets (default:
            ``("params", "flops", "synflow")`` on NB201, none elsewhere; ``()`` switches them off;
            used even without ``weak``).
        prior_intrinsic: let the intrinsic labels shape the op-distribution prior too.
        first_diverse: take the first round's exploited cells from distinct op-count vectors.
        n_candidates: prior samples drawn per round (no finite pool).
        local_moves: moves around each parent per round (no finite pool).
        torch_threads: torch threads of pretraining, refits and scoring (``None``: as they are;
            the Tune and Optuna drivers pass 1); the previous count is restored after.
        max_fidelity: the full fidelity of :meth:`~Strategy.tell` (see :class:`~ray_nasrank.search.Strategy`).
        partial_weight: weight of partial-fidelity results in the ranker's fit: a level at
            fidelity ``f`` weighs ``partial_weight * f / full`` against 1 for full-fidelity
            results, each level ranked on its own (0: learn from full-fidelity results only).
        known_objectives: objectives known without training, by position (a dict position ->
            quantity): a name the space computes (``"params"``, ``"flops"``), values aligned to
            ``candidates`` or a callable ``archs -> values``. They are computed for every
            candidate instead of predicted; the others are predicted by the ranker.
        known_constraints: constraints known without training (see :class:`Strategy`);
            candidates they rule out are never proposed, the other constraints are learned from
            the told values.
        feasible_temperature: with learned constraints, how much ranker quantile one unit of
            log P(feasible) is worth in the exploited picks (0.3: a config at the top quantile
            with P = 0.37 ranks with one at the 0.7 quantile sure to be feasible; chosen among
            0.1, 0.3 and 1 on NB201 with the gold_6226 and pixel3 latencies, other seeds than
            those reported, docs/benchmarks/objectives.md).

    Raises:
        ValueError: a count below 1, a share outside [0, 1], weak labels not aligned to the pool,
            or a predictor built for another space.
        TypeError: a ``predictor`` that is neither a config nor a ``RankPredictor``.
    """

    name = "nasrank"
    multi_objective = True
    _KNOWN = ("_known_constraints", "known_objectives")
    _TRANSIENT = ("_thread", "_lock", "_refit_error", "_space_list", "_pool_features", "_pool_known")

    def __init__(self, space: SearchSpace, *, seed: int | None = None, mode: str | Sequence[str] = "max",
                 candidates: Sequence[Arch] | None = None, weak: WeakSpec | WeakLabels = None, predictor: Any = None,
                 batch_size: int = 3, first_batch: int | None = None, refit_every: int | None = None,
                 refit_share: float = 0.05,
                 explore: float = 0.2, first_explore: float = 0.5, local: float | None = None,
                 local_parents: int | None = None, local_nearest: int = 8, opdist_prior: bool = True,
                 ucb_beta: float = 1.0, async_refit: bool = False, pool_size: int | None = None,
                 intrinsic_weak: Sequence[str] | None = None, prior_intrinsic: bool = True,
                 first_diverse: bool = True, n_candidates: int = 1000, local_moves: int = 64,
                 torch_threads: int | None = None, max_fidelity: float | None = None,
                 partial_weight: float = 1.0, known_objectives: Mapping[int, Known] | None = None,
                 known_constraints: Sequence[Known] | Mapping[int, Known] | None = None,
                 feasible_temperature: float = 0.3) -> None:
        super().__init__(space, seed=seed, mode=mode, candidates=candidates, max_fidelity=max_fidelity,
                         known_constraints=known_constraints)
        self.feasible_temperature = check_number("feasible_temperature", feasible_temperature, 1e-6, 1e6)
        self.known_objectives = _check_known_objectives(known_objectives, self.n_objectives)
        self._models: dict[str, Any] = {}  # rankers of the objectives beyond the first, by target name
        self._constraint_models: dict[int, LinearConstraint] = {}  # each learned constraint, by position
        self._constraint_fits = 0   # constraint models fitted so far
        self._plan_fits = 0         # ...when the current plan was made (a newer model re-checks it)
        from ray_nasrank.predictor import PredictorConfig, RankPredictor

        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.first_batch = check_int("first_batch", first_batch if first_batch is not None else batch_size, low=1)
        self.refit_every = check_int("refit_every", refit_every if refit_every is not None else batch_size, low=1)
        self.refit_share = check_number("refit_share", refit_share, 0.0, 1.0)
        self.explore = check_number("explore", explore, 0.0, 1.0)
        self.first_explore = check_number("first_explore", first_explore, 0.0, 1.0)
        if local is None:
            # several objectives: the front spans many configs, so half the slots search the whole pool
            local = 0.5 if (candidates is not None and space.numeric) or self.n_objectives > 1 else 1.0
        self.local = check_number("local", local, 0.0, 1.0)
        self.local_nearest = check_int("local_nearest", local_nearest, low=1)
        self.opdist_prior = bool(opdist_prior)
        self.ucb_beta = float(ucb_beta)
        self.async_refit = bool(async_refit)
        self.first_diverse = bool(first_diverse)
        self.partial_weight = check_number("partial_weight", partial_weight, 0.0, 1e6)

        self.n_candidates = check_int("n_candidates", n_candidates, low=1)
        self.local_moves = check_int("local_moves", local_moves, low=1)
        self.torch_threads = None if torch_threads is None else check_int("torch_threads", torch_threads, low=1)
        self.intrinsic_weak = default_intrinsic(space) if intrinsic_weak is None else tuple(intrinsic_weak)
        # the user's model family and supernet join ``weak`` (one callable over the pool's configs)
        weak = WeakLabels.of(weak).resolve(space)
        # a finite pool (the candidates, or a space small enough to list) is ranked as a whole; any
        # other space is searched through prior samples plus local moves around the best configs
        self._sampled = self._candidates is None and not (space.finite and space.size <= _ENUMERABLE)
        self.local_parents = check_int("local_parents", local_parents if local_parents is not None else (3 if self._sampled else 1), low=1)
        if self._candidates is not None:
            pool = self._candidates
        elif not self._sampled:
            pool = list(space.enumerate())
        elif weak is not None or self.intrinsic_weak:
            # only pretraining needs a pool here: a seeded prior sample
            n_pool = check_int("pool_size", pool_size if pool_size is not None else 2000, low=1)
            pool = space.sample_many(min(n_pool, space.size), self._rng, unique=True)
        else:
            pool = []
        self._pool = pool
        self._pool_index = {a: i for i, a in enumerate(pool)}
        keys = [space.iso_key(a) for a in pool]
        key_ids: dict[Hashable, int] = {}
        self._pool_kid = np.array([key_ids.setdefault(k, len(key_ids)) for k in keys], dtype=np.int64)
        self._kid_of = key_ids
        self._kid_seen = np.zeros(len(key_ids), dtype=bool)

        cols = resolve_weak(weak, pool) if pool else None
        # intrinsic labels (params, flops, synflow) join the caller's weak labels as pretraining targets
        # (without weak labels of its own a search still has them: a free prior on NB201)
        pre_cols = pretraining_labels(space, pool, cols, self.intrinsic_weak) if pool else None
        if isinstance(predictor, RankPredictor):
            if predictor.space != space:
                raise ValueError(f"predictor was built for {predictor.space!r}, not {space!r}")
            base = predictor.clone()
            if pre_cols is not None and not base.weak_names:
                with limit_torch_threads(self.torch_threads):
                    base.pretrain(pool, pre_cols)
        elif predictor is None or isinstance(predictor, PredictorConfig):
            base = RankPredictor(space, predictor if predictor is not None else search_predictor_config(space))
            if pre_cols is not None:
                with limit_torch_threads(self.torch_threads):
                    base.pretrain(pool, pre_cols)
        else:
            raise TypeError(f"predictor must be a PredictorConfig, a RankPredictor or None, got {type(predictor).__name__}")
        self._pretrained = base
        self._model = base if base.weak_names else None  # None: no ranking until the first fit
        self._labels_at_fit = 0
        self._plan: list[Arch] = []
        self._rounds = 0
        w = weak_rank_score(pre_cols if prior_intrinsic else cols)
        self._opdist = OpDistModel(space, pool, w) if self.opdist_prior and not self._sampled else None
        self._restore_transient()

    # ------------------------------------------------------------------ background refit
    def _restore_transient(self) -> None:
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._refit_error: BaseException | None = None
        self._pool_features: np.ndarray | None = None  # a cache for the nearest-config neighbourhood
        self._pool_known: dict[str, np.ndarray] = {}      # known objectives / feasibility of the pool

    @property
    def ready(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def _wait(self) -> None:
        t = self._thread
        if t is not None:
            t.join()
            self._thread = None
        if self._refit_error is not None:
            err, self._refit_error = self._refit_error, None
            raise RuntimeError(f"the predictor refit failed: {err}") from err

    def _labels(self) -> tuple[list[Arch], np.ndarray]:
        """The archs and scores of the primary target: the one objective, or the first learned one."""
        archs, y = self.observations()
        if y.ndim == 2:
            y = y[:, self._primary()] if self._primary() is not None else y[:, 0]
        return archs, y

    def _primary(self) -> int | None:
        """The first objective the ranker predicts (``None`` when every one is known)."""
        return next((i for i in range(self.n_objectives) if i not in self.known_objectives), None)

    def _targets(self) -> dict[str, tuple[list[Arch], np.ndarray, list | None, dict | None]]:
        """What the ranker learns, higher is better: each objective not known (``objective:i``)."""
        # fidelity levels as groups when partial results exist, for every learned objective
        return {f"objective:{i}": self._fit_inputs(i) for i in range(self.n_objectives)
                if i not in self.known_objectives}

    def _fit_constraints(self) -> None:
        """Refit the model of each constraint not known, on its told values (quick: no torch)."""
        carchs, c = self.constraint_observations()
        for j in range(self.n_constraints or 0):
            if j in self._known_constraints:
                continue
            told = ~np.isnan(c[:, j])
            if told.sum() >= 2 and np.ptp(c[told, j]) > 0:
                x, sizes = self._constraint_features([a for a, t in zip(carchs, told) if t], sizes=True)
                self._constraint_models[j] = LinearConstraint.fit_nested(x, c[told, j], sizes)
                self._constraint_fits += 1

    def _constraint_features(self, archs: list[Arch], cache: bool = False, sizes: bool = False):
        """What the constraint models read, simplest first: the costs the space computes without
        training (params and FLOPs on NB201), how often each choice is taken, then the one-hot
        features (and squares of numeric values: a budget on width * width is a line there).

        A cost additive in the choices is a short line in the counts, and mostly one direction
        along params or FLOPs: the models keep the leading columns that predict the told values
        best (:meth:`LinearConstraint.fit_nested`), so a few values find the boundary. With
        ``sizes`` the column counts of the nested sets come too."""
        if cache and "constraint_features" in self._pool_known:
            x, n = self._pool_known["constraint_features"], self._pool_known["constraint_sizes"]
        else:
            names = [n for n in COST_FEATURES if n in tuple(getattr(self.space, "intrinsic_names", ()))]
            cost = [known_values(self.space, n, archs) for n in names] if archs else []
            cost_x = np.stack(cost, axis=1) if cost else np.zeros((len(archs), 0))
            f = self.space.features(archs)
            numeric = f[:, ~np.all((f == 0) | (f == 1), axis=0)] if len(f) else f[:, :0]
            counts = self.space.encode(archs, "opcounts")
            x = np.hstack([cost_x, counts, f, numeric ** 2])
            n = np.array([cost_x.shape[1], cost_x.shape[1] + counts.shape[1], x.shape[1]])
            if cache:
                self._pool_known["constraint_features"], self._pool_known["constraint_sizes"] = x, n
        return (x, [int(k) for k in n]) if sizes else x

    def _fit_inputs(self, objective: int | None = None) -> tuple[list[Arch], np.ndarray, list | None, dict | None]:
        """The labels the ranker is fitted on (of ``objective``, default the primary one): the
        full-fidelity results alone (``groups`` None) or, once partial results exist, one group
        per fidelity level (docs/concepts/fidelity.md).

        A level's weight is ``partial_weight * fidelity / full fidelity`` (the full level 1): a
        curve's early point is weaker evidence of the final order than a late one. A level holding
        the same configs as the next higher one kept is left out (a trial reporting every epoch
        between two rungs adds nothing the later of its results does not say better).
        """
        col = self._primary() if objective is None else objective
        if self.__dict__.get("_top_fidelity") is None or self.partial_weight <= 0:
            archs, y = self.observations()
            return archs, (y[:, col if col is not None else 0] if y.ndim == 2 else y), None, None
        full = self.full_fidelity
        archs: list[Arch] = []
        ys: list[np.ndarray] = []
        groups: list = []
        weights: dict = {}
        above: set | None = None
        for level, (f, a, y) in reversed(list(enumerate(self.fidelity_levels()))):
            if not a or set(a) == above:
                continue
            above = set(a)
            archs += a
            ys.append(y[:, col if col is not None else 0] if y.ndim == 2 else y)
            groups += [level] * len(a)
            weights[level] = 1.0 if f is None else self.partial_weight * min(f / full, 1.0)
        return archs, (np.concatenate(ys) if ys else np.zeros(0)), groups, weights

    def _fit_model(self, archs: list[Arch], y: np.ndarray, groups: list | None = None, weights: dict | None = None):
        with limit_torch_threads(self.torch_threads):
            if groups is None:
                return self._pretrained.clone().fit(archs, y, mode="max")
            return self._pretrained.clone().fit(archs, y, mode="max", groups=groups, group_weights=weights)

    def _can_fit(self, y: np.ndarray, groups: list | None = None) -> bool:
        from ray_nasrank.predictor.losses import MIN_ITEMS

        need = MIN_ITEMS[self._pretrained.config.finetune.loss]
        if groups is None:
            return y.size >= need and np.ptp(y) > 0
        g = np.asarray(groups)
        return any((g == k).sum() >= need and np.ptp(y[g == k]) > 0 for k in np.unique(g))

    def _fit_all(self, targets: dict[str, tuple[list[Arch], np.ndarray, list | None, dict | None]]) -> dict[str, Any]:
        return {name: self._fit_model(a, y, g, w) for name, (a, y, g, w) in targets.items() if self._can_fit(y, g)}

    def _install(self, fitted: dict[str, Any]) -> None:
        primary = self._primary()
        model = fitted.pop(f"objective:{primary}", None)
        if model is not None:
            self._model = model
        self._models.update(fitted)

    def _refit_now(self) -> None:
        self._fit_constraints()
        targets = self._targets()
        if not any(self._can_fit(y, g) for _, y, g, _ in targets.values()):
            return
        self._install(self._fit_all(targets))
        self._labels_at_fit = self._n_informative()

    def _start_async_refit(self) -> None:
        self._fit_constraints()
        targets = self._targets()
        if not any(self._can_fit(y, g) for _, y, g, _ in targets.values()):
            return
        self._labels_at_fit = self._n_informative()

        def work() -> None:
            try:
                fitted = self._fit_all(targets)
                with self._lock:
                    self._install(fitted)
            except BaseException as e:  # surfaced by the next ask/_wait
                self._refit_error = e

        self._thread = threading.Thread(target=work, name="nasrank-refit", daemon=True)
        self._thread.start()

    def _due(self) -> bool:
        # configs observed (a partial result counts) plus full-fidelity results: a trial reporting
        # every epoch does not refit at every epoch, one that ends or a new one does
        n_ok = self._n_informative()
        gap = max(self.refit_every, int(self.refit_share * n_ok))
        return n_ok - self._labels_at_fit >= gap or (self._model is None and self._primary() is not None and n_ok > 0)

    def _n_informative(self) -> int:
        if self.__dict__.get("_top_fidelity") is None:
            return sum(h["status"] == "ok" for h in self._history)
        return sum((h["status"] in ("ok", "partial")) + (h["status"] == "ok") for h in self._history)

    # ------------------------------------------------------------------ hooks
    def _observe(self, arch: Arch, score: float | None, source: str) -> None:
        kid = self._kid_of.get(self.space.iso_key(arch))
        if kid is not None:
            self._kid_seen[kid] = True
        if (self.n_constraints or 0) > len(self._known_constraints):
            # a learned constraint's model is a quick ridge: refit at every result, so the plan
            # of a round (made before the first values came, or before the last) is checked on it
            self._fit_constraints()
        if score is not None and self._opdist is not None and arch in self._pool_index:
            if np.ndim(score):  # several objectives: the op distribution follows the first learned one
                score = float(score[self._primary() if self._primary() is not None else 0])
            self._opdist.update(arch, score)
        if self.async_refit and self.ready and self._due():
            self._start_async_refit()

    def _observe_partial(self, arch: Arch, score: float, fidelity: float) -> None:
        kid = self._kid_of.get(self.space.iso_key(arch))
        if kid is not None:
            self._kid_seen[kid] = True
        if self.async_refit and self.ready and self._due():
            self._start_async_refit()

    def _propose(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        while len(out) < n:
            if not self._plan:
                if self._due():
                    if self.async_refit:
                        self._start_async_refit()
                        self._wait()
                    else:
                        self._refit_now()
                self._plan = self._plan_round(self.first_batch if self._rounds == 0 else self.batch_size)
                self._plan_fits = self._constraint_fits
                self._rounds += 1
                if not self._plan:
                    break
            if self._plan_outdated():
                # the archs a newer constraint model predicts infeasible give their slots to the
                # best predicted now (the round's exploration share stays what it was)
                prob = self._feasibility(self._plan, cache=False)
                kept = [a for a, p in zip(self._plan, prob) if p >= 0.5]
                self._plan = kept + self._plan_round(len(self._plan) - len(kept), exploit_only=True,
                                                     exclude={self.space.iso_key(a) for a in kept})
                if not self._plan:
                    break
            a = self._plan.pop(0)
            if self.is_new(a):
                out.append(a)
        return out

    def _plan_outdated(self) -> bool:
        """Whether the constraint models changed since the plan was made and now predict one of
        its archs infeasible (e.g. the first round, planned before any constraint value came):
        the rest of the round is then planned again."""
        if self._constraint_fits == self._plan_fits or not self._plan:
            return False
        self._plan_fits = self._constraint_fits
        return bool((self._feasibility(list(self._plan), cache=False) < 0.5).any())

    # ------------------------------------------------------------------ planning
    def _unseen_mask(self) -> np.ndarray:
        seen = self._kid_seen.copy()
        for k in self._seen:  # asked, queued or pending
            kid = self._kid_of.get(k)
            if kid is not None:
                seen[kid] = True
        return ~seen[self._pool_kid]

    def _plan_round(self, k: int, exploit_only: bool = False, exclude: set[Hashable] | None = None) -> list[Arch]:
        """A round of ``k`` archs; ``exploit_only``: all of them the best predicted (refilling the
        slots of a round's plan a newer constraint model dropped); ``exclude``: iso keys kept out."""
        with limit_torch_threads(self.torch_threads):
            taken = set(exclude or ())
            return self._plan_sampled(k, exploit_only, taken) if self._sampled else self._plan_pool(k, exploit_only, taken)

    def _multi(self) -> bool:
        """Whether rounds aim at a front: several objectives, or an objective known for every candidate."""
        return self.n_objectives > 1 or bool(self.known_objectives)

    def _n_exploit(self, k: int, exploit_only: bool = False) -> int:
        """Slots of a round of ``k`` that go to the best predicted (none before any ranking)."""
        share = 0.0 if exploit_only else self.first_explore if self._rounds == 0 else self.explore
        ranked = self._model is not None or (self._multi() and self._primary() is None)
        return k - int(round(share * k)) if ranked else 0

    def _plan_sampled(self, k: int, exploit_only: bool = False, taken: set[Hashable] | None = None) -> list[Arch]:
        """A round without a finite pool: the best predicted of fresh prior samples and of local
        moves around the best configs measured so far (a ``local`` share of the exploited slots
        from the moves alone); ``explore`` of the round are prior samples."""
        taken = set() if taken is None else taken
        n_exploit = self._n_exploit(k, exploit_only)
        plan: list[Arch] = []
        if n_exploit:
            moves: list[Arch] = []
            for p in self._parents():
                moves += self.space.local_moves(p, self._rng, self.local_moves)
            moves = self._fresh(moves, set())
            cands = moves + self._fresh(self.space.sample_many(self.n_candidates, self._rng),
                                        {self.space.iso_key(a) for a in moves})
            if cands:
                ok = self.known_feasible(cands)
                n_local = min(int(round(self.local * n_exploit)) if self._local_ok() else 0, len(moves))
                in_moves = (np.arange(len(cands)) < len(moves)) & ok
                if self._multi():
                    ys, prob = self._predict(cands, cache=False)
                    plan += self._front_picks(cands, ys, prob, ok, in_moves, n_local, n_exploit, taken)
                else:
                    score, worthy = self._feasible_first(self._model.score(cands, cache=False), cands, cache=False,
                                                         mask=ok)
                    if n_local:
                        plan += self._top_of(cands, score, in_moves & worthy, n_local, taken)
                    plan += self._top_of(cands, score, ok, n_exploit - len(plan), taken)
        if len(plan) < k:
            plan += self._random_unseen(k - len(plan), exclude=taken)
        return plan

    # ------------------------------------------------------------------ objectives and constraints
    def _parents(self, stable: bool = True) -> list[Arch]:
        """The archs local moves start from: the ``local_parents`` best feasible ones (by
        full-fidelity result, then with partial results the deepest curves first,
        :meth:`~Strategy.ranked_archs`), or with several objectives the feasible front."""
        if not self._any_feasible():
            # nothing feasible yet: start from the configs that miss the constraints least
            viol = [(np.nanmax(np.maximum(h["constraints"], 0.0)), h["order"], h["arch"]) for h in self._history
                    if h.get("constraints") is not None]
            if viol:
                return [a for _, _, a in sorted(viol, key=lambda t: t[:2])[: self.local_parents]]
        if self._multi():
            return [a for a, _ in self.pareto_front]
        told = {h["arch"]: h.get("feasible", True) for h in self._history}
        if self.__dict__.get("_top_fidelity") is not None:
            return [a for a in self.ranked_archs() if told.get(a, True)][: self.local_parents]
        archs, y = self._labels()
        order = np.argsort(-y, kind="stable") if stable else np.argsort(-y)
        keep = [int(i) for i in order if told.get(archs[int(i)], True)]
        return [archs[i] for i in keep[: self.local_parents]]

    def _known_objective(self, i: int, archs: list[Arch], cache: bool) -> np.ndarray:
        """Objective ``i`` (known without training) of ``archs``, as a higher-is-better score."""
        key = f"objective:{i}"
        if cache and key in self._pool_known:
            vals = self._pool_known[key]
        else:
            index = self._pool_index if self._candidates is not None else None
            vals = known_values(self.space, self.known_objectives[i], archs, index, what=f"known objective {i}")
            if cache:
                self._pool_known[key] = vals
        return vals if self.modes[i] == "max" else -vals

    def _predict(self, archs: list[Arch], cache: bool) -> tuple[np.ndarray, np.ndarray]:
        """Scores of ``archs`` for every objective, higher is better, in the told values' units
        (known ones exact, learned ones the ranker's mapped linearly onto the told values), and
        each arch's predicted probability of meeting the learned constraints.

        ``cache=True`` means ``archs`` is the pool (its known values and features are kept)."""
        obs_archs, obs = self.observations()
        obs = obs.reshape(len(obs_archs), self.n_objectives)
        ys = np.empty((len(archs), self.n_objectives))
        for i in range(self.n_objectives):
            if i in self.known_objectives:
                ys[:, i] = self._known_objective(i, archs, cache)
                continue
            model = self._model if i == self._primary() else self._models.get(f"objective:{i}")
            if model is None:
                model = self._pretrained if self._pretrained.weak_names else None
            if model is None:
                ys[:, i] = 0.0  # nothing known yet: every candidate alike
                continue
            ys[:, i] = _to_units(model.score(archs, cache=cache), model, obs_archs, obs[:, i])
        return ys, self._feasibility(archs, cache)

    def _feasibility(self, archs: list[Arch], cache: bool) -> np.ndarray:
        """Predicted probability that each arch meets every learned constraint (1 with none)."""
        return np.exp(self._log_feasibility(archs, cache))

    def _log_feasibility(self, archs: list[Arch], cache: bool) -> np.ndarray:
        """The log of :meth:`_feasibility`, exact where the probability underflows (a model
        fitted on infeasible configs alone predicts ``P = 0`` for nearly all, yet still orders them)."""
        logp = np.zeros(len(archs))
        if not self._constraint_models:
            return logp
        x = self._constraint_features(archs, cache)
        for model in self._constraint_models.values():
            logp += model.log_probability_feasible(x)
        return logp

    def _learns_constraints(self) -> bool:
        """Whether a model predicts a constraint (one was told and fitted)."""
        return bool(self._constraint_models)

    def _feasible_first(self, score: np.ndarray, archs: list[Arch], cache: bool,
                        mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``score`` weighed by the predicted probability ``P`` of meeting the learned
        constraints, and which archs are worth a local slot.

        The order is ``log P + (q - 1) / feasible_temperature`` with ``q`` the score's quantile
        among the candidates (``mask``): among the configs the ranker puts near the top, the
        likely feasible first; a feasible config the ranker puts low (under a cost cap, often a
        degenerate cell) comes last. While no told result is feasible, the likeliest feasible
        (:meth:`_feasible_bar`) come first, by score. A local slot takes only a config likely
        feasible (``P >= 1/2``) the ranker puts in the better half: around a parent on the
        boundary the feasible neighbours are mostly cheaper, worse ones, and a slot is better
        spent on the whole pool.
        """
        if not self._learns_constraints():
            return score, np.ones(len(score), dtype=bool)
        logp = self._log_feasibility(archs, cache)
        ref = np.sort(score if mask is None else score[mask])
        quantile = np.searchsorted(ref, score, side="right") / max(len(ref), 1)
        if self._any_feasible():
            order = logp + (quantile - 1.0) / self.feasible_temperature
        else:
            order = (logp >= self._feasible_bar(logp if mask is None else logp[mask])) * 2.0 + quantile
        return order, (logp >= np.log(0.5)) & (quantile >= 0.5)

    def _feasible_bar(self, logp: np.ndarray) -> float:
        """The predicted log probability of meeting the learned constraints a candidate needs to
        come before the others: log 1/2, or log 0.9 while no told result is feasible (a first
        feasible result anchors the local moves and teaches the constraint model the other side
        of its boundary), but never above the likeliest 2 % of ``logp``: a model fitted on
        infeasible configs alone is pessimistic everywhere, and its likeliest feasible
        candidates still come first."""
        want = np.log(0.5 if self._any_feasible() else 0.9)
        return min(want, float(np.quantile(logp, 0.98))) if len(logp) else want

    def _local_ok(self) -> bool:
        """Whether local moves have parents worth moving around: something was told, and with
        learned constraints something feasible (around configs that all miss the constraints
        one edit rarely crosses the boundary; the likeliest feasible candidates are searched
        over the whole pool instead)."""
        return bool(self._history) and (not self._learns_constraints() or self._any_feasible())

    def _any_feasible(self) -> bool:
        """Whether a full-fidelity result meets the constraints."""
        return any(h["status"] == "ok" and h.get("feasible", True) for h in self._history)

    def _front_scores(self) -> np.ndarray:
        """The higher-is-better scores of the feasible front, ``(m, objectives)``."""
        front = self.pareto_front
        return np.array([np.atleast_1d(self._score(v)) for _, v in front], dtype=np.float64).reshape(
            len(front), self.n_objectives)

    def _front_picks(self, archs: list[Arch], ys: np.ndarray, prob: np.ndarray, mask: np.ndarray,
                     local: np.ndarray | None, n_local: int, k: int, taken: set[Hashable]) -> list[Arch]:
        """``k`` archs of ``mask`` one by one, each the largest predicted hypervolume improvement
        (times its probability of being feasible) over the feasible front joined by the earlier
        picks as predicted; the first ``n_local`` from ``local`` (around the front) when it has any.

        Scores are scaled to [0, 1] per objective over the candidates and the front, so objectives
        in different units weigh alike; the reference point lies just below the worst of them.
        """
        idx_all = np.flatnonzero(mask)
        if not len(idx_all) or k <= 0:
            return []
        front = self._front_scores()
        both = np.vstack([ys[idx_all], front])
        lo, hi = both.min(axis=0), both.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        yn = (ys - lo) / span
        told = (front - lo) / span
        ref = np.full(self.n_objectives, -0.01)
        avail = mask.copy()
        keys = [self.space.iso_key(a) for a in archs]
        for i in idx_all:
            if keys[i] in taken:
                avail[i] = False
        believed = told
        out: list[Arch] = []
        for slot in range(k):
            region = avail & local if (local is not None and slot < n_local and (avail & local).any()) else avail
            idx = np.flatnonzero(region)
            if not len(idx):
                break
            if self.n_objectives > 2 and len(idx) > 1000:
                # exact improvements cost a hypervolume each above two objectives: keep the 1000 most promising
                idx = idx[np.argsort(-(yn[idx].sum(axis=1) * prob[idx]), kind="stable")[:1000]]
            gain = hypervolume_improvement(yn[idx], believed, ref) * prob[idx]
            if not len(told) and self._learns_constraints():
                # nothing feasible found yet: the likeliest feasible first, the front only breaks ties
                gain = prob[idx] + 1e-3 * gain / (gain.max() or 1.0)
            if not gain.max() > 0:  # the believed picks cover everything left: improve on the told front
                gain = hypervolume_improvement(yn[idx], told, ref) * prob[idx]
            if not gain.max() > 0:
                gain = yn[idx].sum(axis=1) * prob[idx] + 1e-12 * prob[idx]
            best = int(idx[int(np.argmax(gain))])
            out.append(archs[best])
            taken.add(keys[best])
            avail &= (self._pool_kid != self._pool_kid[best]) if archs is self._pool else np.array(
                [kk != keys[best] for kk in keys])
            believed = np.vstack([believed, yn[best][None, :]])
        return out

    def _fresh(self, archs: list[Arch], exclude: set[Hashable]) -> list[Arch]:
        """``archs`` without repeats, without seen ones and without ``exclude`` (iso keys)."""
        out, keys = [], set(exclude)
        for a in archs:
            key = self.space.iso_key(a)
            if key not in keys and key not in self._seen:
                keys.add(key)
                out.append(a)
        return out

    def _top_of(self, archs: list[Arch], score: np.ndarray, mask: np.ndarray, k: int,
                taken: set[Hashable]) -> list[Arch]:
        out: list[Arch] = []
        idx = np.flatnonzero(mask)
        for i in idx[np.argsort(-score[idx], kind="stable")]:
            if len(out) >= k:
                break
            key = self.space.iso_key(archs[int(i)])
            if key not in taken:
                taken.add(key)
                out.append(archs[int(i)])
        return out

    def _pool_feasible(self) -> np.ndarray:
        """Which pool archs meet every known constraint (computed once)."""
        if "feasible" not in self._pool_known:
            self._pool_known["feasible"] = self._require_feasible(self._pool, "candidates of the pool")
        return self._pool_known["feasible"]

    def _plan_pool(self, k: int, exploit_only: bool = False, taken: set[Hashable] | None = None) -> list[Arch]:
        mask = self._unseen_mask() & self._pool_feasible()
        if not mask.any():
            return []
        taken = set() if taken is None else taken
        n_exploit = self._n_exploit(k, exploit_only)
        plan: list[Arch] = []
        if n_exploit:
            n_local = int(round(self.local * n_exploit)) if self._local_ok() else 0
            local = self._neighbourhood_mask(mask) if n_local else None
            if self._multi():
                ys, prob = self._predict(self._pool, cache=True)
                plan += self._front_picks(self._pool, ys, prob, mask, local, n_local, n_exploit, taken)
            else:
                score, worthy = self._feasible_first(self._model.score(self._pool), self._pool, cache=True, mask=mask)
                if n_local:
                    plan += self._top(score, local & worthy, n_local, taken)
                diverse = self.first_diverse and self._rounds == 0
                plan += self._top(score, mask, n_exploit - len(plan), taken, diverse)
        n_explore = k - len(plan)
        if n_explore:
            if self._opdist is not None:
                allowed = None
                if self._learns_constraints():
                    # exploration keeps to what is predicted feasible, and off the cells the ranker
                    # puts in the worst half of those: under a cost cap the cheapest cells are
                    # often degenerate ones (no path from input to output), feasible and useless
                    logp = self._log_feasibility(self._pool, cache=True)
                    keep = logp >= self._feasible_bar(logp[mask])
                    if self._model is not None and (keep & mask).any():
                        ranked = self._model.score(self._pool)
                        keep &= ranked >= np.median(ranked[keep & mask])

                    def allowed(a: Arch) -> bool:
                        return bool(keep[self._pool_index[a]])

                def is_new(a: Arch) -> bool:
                    return self.is_new(a) and self._feasible_known(a)

                plan += self._opdist.draw(n_explore, self._rng, is_new, taken, allowed)
            elif self._model is not None:
                mean, std = self._model.score_std(self._pool)
                plan += self._top(mean + self.ucb_beta * std, mask, n_explore, taken)
        if len(plan) < k:
            plan += self._random_unseen(k - len(plan), exclude=taken)
        return plan

    def _top(self, score: np.ndarray, mask: np.ndarray, k: int, taken: set[Hashable],
             diverse: bool = False) -> list[Arch]:
        """The ``k`` best-scored unseen cells, one per iso class (and per op-count vector if ``diverse``)."""
        out: list[Arch] = []
        if k <= 0:
            return out
        idx = np.flatnonzero(mask)
        vectors_used: set[int] = set()
        vid = self._vector_ids() if diverse else None
        for i in idx[np.argsort(-score[idx], kind="stable")]:
            a = self._pool[int(i)]
            key = self.space.iso_key(a)
            if key in taken or (vid is not None and int(vid[i]) in vectors_used):
                continue
            if vid is not None:
                vectors_used.add(int(vid[i]))
            taken.add(key)
            out.append(a)
            if len(out) == k:
                break
        return out

    def _vector_ids(self) -> np.ndarray:
        from ray_nasrank.encodings import encode

        counts = encode(self.space, self._pool, "opcounts").astype(np.int64)
        _, ids = np.unique(counts, axis=0, return_inverse=True)
        return ids.reshape(-1)

    def _neighbourhood_mask(self, unseen: np.ndarray) -> np.ndarray:
        """The unseen pool configs around the best ones measured (:meth:`_parents`): their one-edit
        neighbours, or in a space with numeric decisions their ``local_nearest`` nearest pool configs."""
        mask = np.zeros(len(self._pool), dtype=bool)
        for parent in self._parents():
            if self.space.numeric:
                if self._pool_features is None:
                    self._pool_features = self.space.features(self._pool)
                order = nearest_first(self.space, self._pool_features, parent)
                mask[order[unseen[order]][: self.local_nearest]] = True
                continue
            for nb in self.space.neighbours(parent):
                j = self._pool_index.get(nb)
                if j is not None:
                    mask[j] = True
        return mask & unseen

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        # predictors are written with their own (torch) format: their cached feature rows are
        # only valid inside one process
        for name in ("_pretrained", "_model"):
            p = d["state"].get(name)
            if p is not None and not isinstance(p, bytes):
                d["state"][name] = _predictor_bytes(p)
        d["state"]["_models"] = {k: p if isinstance(p, bytes) else _predictor_bytes(p)
                                 for k, p in d["state"].get("_models", {}).items()}
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        from ray_nasrank.predictor import RankPredictor

        super().load_state_dict(d)
        self.__dict__.setdefault("refit_share", 0.0)  # saved before the refit schedule: as it ran then
        self.__dict__.setdefault("partial_weight", 1.0)  # saved before fidelities
        for name in ("_pretrained", "_model"):
            p = getattr(self, name)
            if isinstance(p, bytes):
                setattr(self, name, _predictor_from_bytes(p, RankPredictor))
        # saved before several objectives and constraints: none of them
        self.__dict__.setdefault("known_objectives", {})
        self.__dict__.setdefault("_constraint_models", {})
        self.__dict__.setdefault("feasible_temperature", 0.3)
        self.__dict__.setdefault("_constraint_fits", 0)
        self.__dict__.setdefault("_plan_fits", 0)
        if self._constraint_models:
            # refitted from the told values: quick, and a state saved with another column order
            # of the features (before the costs came first) would read the wrong columns
            self._fit_constraints()
        self._models = {k: _predictor_from_bytes(p, RankPredictor) if isinstance(p, bytes) else p
                        for k, p in self.__dict__.get("_models", {}).items()}


def _check_known_objectives(spec: Any, n: int) -> dict[int, Known]:
    """``known_objectives`` as ``{position: quantity}``, every position one of the ``n`` objectives."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise TypeError(f"known_objectives must be a dict objective position -> quantity, got {type(spec).__name__}")
    out: dict[int, Known] = {}
    for i, q in spec.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise ValueError(f"known_objectives key {i!r} is not an objective position (0 .. {n - 1})")
        if not (isinstance(q, str) or callable(q) or isinstance(q, (np.ndarray, list, tuple))):
            raise TypeError(f"known objective {i} must be a name, values or a callable archs -> values, got {q!r}")
        out[i] = q
    return out


def _to_units(score: np.ndarray, model: Any, told: list[Arch], y: np.ndarray) -> np.ndarray:
    """Ranker scores mapped onto the told values' units: the line matching the told values' mean
    and spread, so a candidate the ranker puts above every told one is predicted above them too.
    Without two distinct told values the scores are only standardised around them."""
    sd_s = float(np.std(score)) or 1.0
    if len(told) < 2 or np.ptp(y) == 0:
        centre = float(np.mean(y)) if len(y) else 0.0
        return centre + (score - score.mean()) / sd_s * max(abs(centre) * 0.05, 1e-9)
    sd_t = float(np.std(model.score(told, cache=True)))
    b = float(np.std(y)) / (sd_t if sd_t > 0 else sd_s)
    return float(np.mean(y)) + b * (score - float(np.mean(model.score(told, cache=True))))


def _predictor_bytes(p) -> bytes:
    fd, tmp = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    try:
        p.save(tmp)
        with open(tmp, "rb") as f:
            return f.read()
    finally:
        os.unlink(tmp)


def _predictor_from_bytes(data: bytes, cls):
    fd, tmp = tempfile.mkstemp(suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return cls.load(tmp)
    finally:
        os.unlink(tmp)
