"""The cross-validated blend: how far to follow the fine-tuned network, the weak labels and trees.

After fine-tuning, four rankers of every candidate exist: the fine-tuned network (``tuned``),
the weak labels the network was pretrained on (``prior``: their combined normal scores, read from
the pretraining data where the candidate was in it, predicted by the pretrained network
otherwise) and, optionally, gradient-boosted trees fitted on the labels with the encoding and the
weak labels as inputs (``tree``: a stacked model that can learn which weak label to believe where)
and LightGBM trees boosted from the prior (``boost``, :mod:`.boost`: they start from the prior's
order and learn the labels' corrections to it, with the prior among their inputs).
Which one ranks best depends on the number of labels and on the weak labels' quality, so
:class:`CrossValidatedBlend` scores each on the labels out of fold (K-fold: every label is
predicted by a model that did not see it; the prior needs no folds, it never sees a label) and
keeps the convex blend of their standardised scores that ranks the held-out labels best (averaged
over the near-best blends, see :func:`choose_weights`).

With several weak labels the prior is itself a blend: their equal average by default, moved
toward the columns that order the labels best (a weak label never sees a label, so no folds are
needed). With few labels both choices are noisy, so each is shrunk toward a fixed default (equal
columns; a quarter fine-tuned network, three quarters prior) as if that default had been seen on
``prior_labels`` extra labels (:func:`shrink`): estimated combination weights lose to simple
averages when the sample is small, and win when it is not. The out-of-fold models of the network
and the trees saw ``(folds - 1) / folds`` of the labels and the final ones all of them, while the
prior is the same either way, so their weights are scaled by ``folds / (folds - 1)`` afterwards
(``fold_correction``); with several weak labels the prior's column blend is chosen inside each
fold as well (``nested_prior``), so that no ranker is scored on labels it was chosen on.

The top is placed apart (:meth:`CrossValidatedBlend.fit`): the top of the rankers that learned
from the labels (the fine-tuned network and the stacked trees, by their blend weights) comes first
(a shortlist, its share scaled by the network's blend weight, at least ``shortlist_rows``
candidates), since a prior can be blind at its top while ordering the rest well (a one-shot
supernet; on a small pool, weak labels that grow with model size). When few labels (fewer than
``prior_top_labels``) show the prior's order holding at its own top better than the network's out
of fold (:func:`prior_places_top`), and the shortlist would decide the top alone (at least
``prior_top_rows`` candidates of the pool), there is no shortlist and the blend, led by the prior, places the top too: a few labels pull the
fine-tuned network away from a good prior's top.

>>> import numpy as np
>>> y = np.arange(8.0)
>>> oof = np.stack([np.arange(8.0)[::-1], np.arange(8.0)])  # the first ranker is backwards
>>> choose_weights(oof, y, step=0.5, sharpness=float("inf")).tolist()
[0.0, 1.0]
>>> w = choose_weights(oof, y, step=0.5)  # the near-best blends share the weight
>>> bool(w[1] > 0.9), round(float(w.sum()), 6)
(True, 1.0)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import comb
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from scipy import stats

from ray_nasrank.metrics import acenas_relevance, dcg_at_k, ranking_order

from .boost import boost_score, fit_boost
from .ensemble import rank_targets

if TYPE_CHECKING:
    from .config import BlendConfig
    from .ensemble import RankEnsemble
    from .features import FeatureStore

#: names of the blended rankers, in the order of the weight vector
COMPONENTS = ("tuned", "prior", "tree", "boost")


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """A fold number in ``[0, folds)`` per item, sizes as equal as possible, seeded shuffle."""
    if folds < 2 or folds > n:
        raise ValueError(f"need 2 <= folds <= items, got folds={folds} for {n} items")
    ids = np.arange(n) % folds
    return np.random.default_rng(seed).permutation(ids)


def validation_score(y: np.ndarray, s: np.ndarray) -> float:
    """How well ``s`` orders ``y`` (higher is better): the mean of Kendall tau and NDCG over all items.

    Both halves match what the ranking benchmark reports: tau for the global order, NDCG with
    AceNAS relevance (the labelled subset's top 80 %, graded) for the top.
    """
    tau = stats.kendalltau(y, s).statistic
    tau = 0.0 if np.isnan(tau) else float(tau)
    rel = acenas_relevance(y)
    ideal = dcg_at_k(rel, ranking_order(rel), rel.size)
    ndcg = dcg_at_k(rel, ranking_order(s), rel.size) / ideal if ideal > 0 else 0.0
    return 0.5 * (tau + ndcg)


def top_weighted_tau(y: np.ndarray, s: np.ndarray) -> float:
    """Kendall tau of ``s`` against ``y`` weighted toward the top of ``s``'s order (0 where undefined).

    :func:`scipy.stats.weightedtau` with its hyperbolic weights, ranked by ``s``: a swap among the
    items ``s`` puts first counts most. It asks whether a ranker keeps ordering the labels at its
    own top, which a plain tau over few labels hardly sees.

    >>> y = np.arange(6.0)
    >>> top_weighted_tau(y, y), top_weighted_tau(y, y[::-1])
    (1.0, -1.0)
    >>> top_weighted_tau(y, np.array([0, 1, 2, 3, 5, 4.0])) < top_weighted_tau(y, np.array([1, 0, 2, 3, 4, 5.0]))
    True
    """
    t = stats.weightedtau(np.asarray(s, dtype=np.float64), np.asarray(y, dtype=np.float64), rank=True).statistic
    return 0.0 if np.isnan(t) else float(t)


def prior_places_top(y: np.ndarray, prior: np.ndarray, tuned: np.ndarray, least: float) -> bool:
    """Whether the prior, rather than the fine-tuned network's shortlist, should place the top.

    Yes when the prior's :func:`top_weighted_tau` on the labels ``y`` exceeds ``least`` and the
    network's out-of-fold one (``tuned``): the labels then show the prior's order holding at its
    top and fine-tuning not ordering them better there.

    >>> y = np.arange(8.0)
    >>> prior_places_top(y, y, y[::-1], least=0.6), prior_places_top(y, y[::-1], y, least=0.6)
    (True, False)
    """
    p = top_weighted_tau(y, prior)
    return p > least and p > top_weighted_tau(y, tuned)


def simplex_grid(k: int, step: float) -> np.ndarray:
    """All weight vectors of ``k`` non-negative multiples of ``step`` summing to 1, ``[combos, k]``."""
    if not 0.0 < step <= 1.0:
        raise ValueError(f"the blend step must be in (0, 1], got {step}")
    m = int(round(1.0 / step))
    combos = [c for c in itertools.product(range(m + 1), repeat=k) if sum(c) == m]
    return np.asarray(combos, dtype=np.float64) / m


def grid_step(k: int, step: float, most: int = 500) -> float:
    """The finest grid step, ``step`` or coarser, whose :func:`simplex_grid` over ``k`` rankers has at most ``most`` blends.

    >>> grid_step(4, 0.1), grid_step(5, 0.1)
    (0.1, 0.125)
    """
    m = int(round(1.0 / step))
    while m > 1 and comb(m + k - 1, k - 1) > most:
        m -= 1
    return 1.0 / m


def shrink(w: np.ndarray, default: np.ndarray, n: int, prior_labels: float) -> np.ndarray:
    """``w`` chosen on ``n`` labels, pulled toward ``default`` as if it had been chosen on ``prior_labels`` more.

    >>> shrink(np.array([1.0, 0.0]), np.array([0.5, 0.5]), n=10, prior_labels=10).tolist()
    [0.75, 0.25]
    """
    if prior_labels < 0:
        raise ValueError(f"prior_labels must be >= 0, got {prior_labels}")
    lam = n / (n + prior_labels) if n + prior_labels > 0 else 1.0
    return lam * np.asarray(w, dtype=np.float64) + (1.0 - lam) * np.asarray(default, dtype=np.float64)


def shortlist_cut(scores: np.ndarray, share: float) -> float:
    """The score above which the top ``share`` of ``scores`` lies (``inf``: no shortlist when ``share <= 0``).

    >>> shortlist_cut(np.arange(100.0), 0.05) > 94.0, shortlist_cut(np.arange(100.0), 0.0)
    (True, inf)
    """
    if share >= 1.0:
        raise ValueError(f"the shortlist share must be < 1, got {share}")
    return float(np.quantile(scores, 1.0 - share)) if share > 0 else float("inf")


def choose_weights(oof: np.ndarray, y: np.ndarray, step: float = 0.1, sharpness: float = 5.0) -> np.ndarray:
    """Blend weights (one per row of ``oof``, summing to 1) from how well each blend ranks ``y`` out of fold.

    ``oof[c, i]``: ranker c's standardised out-of-fold score of labelled item i. Every blend of
    :func:`simplex_grid` gets its :func:`validation_score` ``v``; the result is the average of the
    blends weighted by ``exp(sharpness * sqrt(n) * (v - max v))``, a posterior-like average rather
    than the single best blend: with 10 labels the validation score is noisy (its spread shrinks
    like ``1/sqrt(n)``), so near-best blends share the weight; with 100 labels the best one
    dominates. ``sharpness=inf`` takes the best blend alone.
    """
    oof = np.asarray(oof, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if oof.ndim != 2 or oof.shape[1] != y.size:
        raise ValueError(f"oof must be [rankers, {y.size}], got shape {oof.shape}")
    if not sharpness > 0:
        raise ValueError(f"sharpness must be > 0, got {sharpness}")
    grid = simplex_grid(oof.shape[0], step)
    scores = np.array([validation_score(y, b) for b in grid @ oof])
    if np.isinf(sharpness):
        return grid[int(np.argmax(scores))]
    odds = np.exp(sharpness * np.sqrt(y.size) * (scores - scores.max()))
    return odds @ grid / odds.sum()


def fit_tree(x: np.ndarray, y: np.ndarray, seed: int):
    """Gradient-boosted depth-3 trees on ``x`` regressing z-scored ``y`` (scikit-learn).

    Small (100 trees at learning rate 0.1) so that it can be refitted per fold; how it was
    chosen is in ``docs/benchmarks/ranking.md``.
    """
    from sklearn.ensemble import GradientBoostingRegressor

    z = (y - y.mean()) / (y.std() if y.std() > 0 else 1.0)
    model = GradientBoostingRegressor(n_estimators=100, max_depth=3, learning_rate=0.1, subsample=0.8,
                                      random_state=seed)
    return model.fit(x, z)



def _sd(x: np.ndarray) -> float:
    sd = float(np.std(x))
    return sd if sd > 0 else 1.0


def _standardise(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``x`` in units of ``ref``'s mean and standard deviation."""
    return (x - ref.mean()) / _sd(ref)


@dataclass
class CrossValidatedBlend:
    """The blend one fine-tuning chose: how to score candidates from the ensemble, the weak labels and trees.

    Built by :meth:`fit`; every array is on the scale of the reference architectures (a fixed
    sample of the pretraining archs), so any subset of candidates is scored alike.

    Attributes:
        weights: blend weights over :data:`COMPONENTS`.
        scale: ``(mean, std)`` per component on the reference archs, then in the row after them,
            column 0, the shortlist cut on the score that orders the shortlist (``top``).
        mix: with several weak labels, each column's weight in the prior (None: the combined target).
        mix_scale: each weak column's ``(mean, std)`` on the reference archs (with ``mix``).
        tree: the stacked trees, when their weight is positive.
        boost: the trees boosted from the prior (a ``lightgbm.Booster``), when their weight is positive.
        top: weights over :data:`COMPONENTS` of the standardised scores that order the shortlist
            (None: the fine-tuned network alone, as in blends saved before it was a choice).
    """

    weights: np.ndarray
    scale: np.ndarray
    mix: np.ndarray | None = None
    mix_scale: np.ndarray | None = None
    tree: Any = None
    boost: Any = None
    top: np.ndarray | None = None

    @classmethod
    def fit(cls, ens: "RankEnsemble", archs: list, rows: np.ndarray, signed: np.ndarray
            ) -> "CrossValidatedBlend | None":
        """Choose the blend by K-fold cross-validation on labels ``signed`` (higher is better) of ``archs``.

        ``ens`` is the fine-tuned ensemble (its pretrained states train the per-fold networks).
        None when the labels are too few for two folds of two.
        """
        cfg = ens.config
        bc = cfg.blend
        n = rows.size
        folds = min(bc.folds, n // 2)
        if folds < 2:
            return None
        fid = fold_ids(n, folds, cfg.seed)
        prior, weak = ens.prior_inputs(rows)
        ref = ens.reference_rows()
        ref_prior, ref_weak = ens.prior_inputs(ref)
        mix = mix_scale = None
        if weak.shape[1] > 1:  # several weak labels: the prior becomes their best-validated blend
            mix, mix_scale = _choose_mix(weak, signed, ref_weak, bc)
            prior, ref_prior = _mixed(weak, mix, mix_scale), _mixed(ref_weak, mix, mix_scale)
        x = x_ref = None
        if bc.tree or bc.boost:
            x, x_ref = _tree_x(ens, rows, weak), _tree_x(ens, ref, ref_weak)
        # the boosted trees start from the standardised prior and also read it
        pz, pz_ref = _standardise(prior, ref_prior), _standardise(ref_prior, ref_prior)
        xb = xb_ref = None
        if bc.boost:
            xb, xb_ref = np.column_stack([x, pz]), np.column_stack([x_ref, pz_ref])
        oof = np.zeros((len(COMPONENTS), n))
        oof[1] = pz
        for k in range(folds):
            train, test = fid != k, fid == k
            if np.ptp(signed[train]) == 0:
                continue  # nothing to learn in this fold: its held-out items get the neutral score 0
            tr_archs = [a for a, t in zip(archs, train) if t]
            tr_rows, tr_y = rows[train], signed[train]
            if mix is not None and bc.nested_prior:  # the column blend, too, chosen without the fold
                fold_mix, _ = _choose_mix(weak[train], tr_y, ref_weak, bc)
                oof[1, test] = _standardise(_mixed(weak[test], fold_mix, mix_scale),
                                            _mixed(ref_weak, fold_mix, mix_scale))
            if cfg.finetune.iso_augment:  # held-out archs must not come back into training as isomorphs
                tr_rows, tr_y = ens.iso_expand(tr_archs, tr_rows, tr_y,
                                               exclude=[a for a, t in zip(archs, test) if t])
            net = ens.tuned_net(k % cfg.ensemble, tr_rows, rank_targets(tr_y, ens.device))
            with torch.no_grad():
                ref_raw = net(*ens.tensors(ref))[0].double().cpu().numpy()
                oof[0, test] = _standardise(net(*ens.tensors(rows[test]))[0].double().cpu().numpy(), ref_raw)
            if bc.tree:
                tree = fit_tree(x[train], signed[train], cfg.seed + k)
                oof[2, test] = _standardise(tree.predict(x[test]), tree.predict(x_ref))
            if bc.boost:
                booster = fit_boost(xb[train], signed[train], pz[train], seed=cfg.seed + k)
                oof[3, test] = _standardise(boost_score(booster, xb[test], pz[test]),
                                            boost_score(booster, xb_ref, pz_ref))
        offered = np.array([True, True, bc.tree, bc.boost])
        w_on = choose_weights(oof[offered], signed, grid_step(int(offered.sum()), bc.step), bc.sharpness)
        # few labels: lean toward the default blend, a quarter fine-tuned network, three quarters prior
        w = np.zeros(len(COMPONENTS))
        w[offered] = shrink(w_on, np.array([0.25, 0.75, 0.0, 0.0])[offered], n, bc.prior_labels)
        if bc.fold_correction:  # the final learned rankers see folds/(folds-1) times the labels their out-of-fold ones did
            w[[0, 2, 3]] *= folds / (folds - 1)
            w /= w.sum()
        scale = np.ones((len(COMPONENTS) + 1, 2))
        scale[:, 0] = 0.0
        tuned_ref = ens.member_scores(ref).mean(axis=0)
        scale[0] = tuned_ref.mean(), _sd(tuned_ref)
        scale[1] = ref_prior.mean(), _sd(ref_prior)
        fitted_tree = None
        if w[2] > 0:
            fitted_tree = fit_tree(x, signed, cfg.seed)
            tree_ref = fitted_tree.predict(x_ref)
            scale[2] = tree_ref.mean(), _sd(tree_ref)
        fitted_boost = None
        if w[3] > 0:
            fitted_boost = fit_boost(xb, signed, pz, seed=cfg.seed)
            boost_ref = boost_score(fitted_boost, xb_ref, pz_ref)
            scale[3] = boost_ref.mean(), _sd(boost_ref)
        # the shortlist: the learned rankers' standardised scores above this cut (a per-arch rule,
        # so any subset ranks alike); its share shrinks with the network's blend weight, down to
        # shortlist_rows of the pool, and there is none when few labels show the prior's top
        # holding better than the network's, where the shortlist would decide the top alone
        pool = ens.pre_rows.size
        share = bc.shortlist * w[0]
        if (n < bc.prior_top_labels and share * pool >= bc.prior_top_rows
                and prior_places_top(signed, pz, oof[0], bc.prior_top)):
            share = 0.0
        if share > 0:
            share = min(max(share, bc.shortlist_rows / pool), 0.5)
        top = np.zeros(len(COMPONENTS))
        top[0] = w[0]
        if bc.shortlist_from == "learned":
            top[2] = w[2]
        top = top / top.sum() if top.sum() > 0 else np.eye(len(COMPONENTS))[0]
        top_ref = top[0] * (tuned_ref - scale[0, 0]) / scale[0, 1]
        if top[2] > 0:
            top_ref = top_ref + top[2] * (tree_ref - scale[2, 0]) / scale[2, 1]
        scale[-1, 0] = shortlist_cut(top_ref, share)
        return cls(weights=w, scale=scale, mix=mix, mix_scale=mix_scale, tree=fitted_tree, boost=fitted_boost,
                   top=top)

    def score(self, ens: "RankEnsemble", rows: np.ndarray, mean: np.ndarray, std: np.ndarray,
              store: "FeatureStore | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """Blend score and spread of store rows whose fine-tuned ensemble mean and spread are ``mean``, ``std``.

        The spread is the ensemble's, scaled by the network's blend weight.
        """
        w, sc = np.asarray(self.weights), self.scale  # a blend saved before ``boost`` has three weights
        tuned_z = (mean - sc[0, 0]) / sc[0, 1]
        out = w[0] * tuned_z
        top_z = tuned_z
        if w[1:].any():
            prior, weak = ens.prior_inputs(rows, store)
            if self.mix is not None:
                prior = _mixed(weak, self.mix, self.mix_scale)
            pz = (prior - sc[1, 0]) / sc[1, 1]
            out = out + w[1] * pz
            if w[2] > 0:
                tree_z = (self.tree.predict(_tree_x(ens, rows, weak, store)) - sc[2, 0]) / sc[2, 1]
                out = out + w[2] * tree_z
                if self.top is not None and self.top[2] > 0:
                    top_z = self.top[0] * tuned_z + self.top[2] * tree_z
            if w.size > 3 and w[3] > 0:
                xb = np.column_stack([_tree_x(ens, rows, weak, store), pz])
                out = out + w[3] * (boost_score(self.boost, xb, pz) - sc[3, 0]) / sc[3, 1]
        cut = sc[w.size, 0] if sc.shape[0] > w.size else np.inf
        short = top_z >= cut
        # the shortlist first, in the learned rankers' order; arctan keeps the rest below. Always
        # mapped, so a candidate's score does not depend on whether its batch holds a shortlisted one
        out = np.arctan(out)
        out[short] = np.pi + np.arctan(top_z[short])
        return out, w[0] * std / sc[0, 1]

    def top_ranker(self) -> str:
        """Who places the top: ``network`` (the fine-tuned network's shortlist), ``learned`` (the
        shortlist of the network and the stacked trees) or ``blend`` (no shortlist)."""
        w = np.asarray(self.weights)
        cut = self.scale[w.size, 0] if self.scale.shape[0] > w.size else np.inf
        if not np.isfinite(cut):
            return "blend"
        return "learned" if self.top is not None and self.top[2] > 0 else "network"

    def component_weights(self) -> dict[str, float]:
        """The weight of each ranker: ``{"tuned": .., "prior": .., "tree": .., "boost": ..}``."""
        return {name: float(w) for name, w in zip(COMPONENTS, self.weights)}

    def column_weights(self, names: Sequence[str]) -> dict[str, float] | None:
        """With several weak labels (named ``names``), each one's weight in the prior; None otherwise."""
        if self.mix is None:
            return None
        return {name: float(w) for name, w in zip(names, self.mix)}


def _choose_mix(weak: np.ndarray, signed: np.ndarray, ref_weak: np.ndarray, bc: "BlendConfig"
                ) -> tuple[np.ndarray, np.ndarray]:
    """The weak columns' blend that orders the labels best, shrunk toward their equal average, and
    the columns' ``(mean, std)`` on the reference archs.

    A weak label never sees a true label, so every labelled item scores it fairly without folds;
    the blend chosen here then enters the cross-validation as the prior (slightly flattered
    there, having been chosen on the same labels).
    """
    m = weak.shape[1]
    col = np.stack([ref_weak.mean(axis=0), ref_weak.std(axis=0)], axis=1)
    col[col[:, 1] <= 0, 1] = 1.0
    z = (weak - col[:, 0]) / col[:, 1]
    w = choose_weights(z.T, signed, grid_step(m, bc.step), bc.sharpness)
    return shrink(w, np.full(m, 1.0 / m), signed.size, bc.prior_labels), col


def _mixed(weak: np.ndarray, mix: np.ndarray, mix_scale: np.ndarray) -> np.ndarray:
    """The prior of items with weak inputs ``weak`` under the column blend ``mix``."""
    return ((weak - mix_scale[:, 0]) / mix_scale[:, 1]) @ mix


def _tree_x(ens: "RankEnsemble", rows: np.ndarray, weak: np.ndarray, store: "FeatureStore | None" = None) -> np.ndarray:
    """The trees' inputs: the flat encoding of store rows next to their weak inputs."""
    return np.concatenate([(ens.store if store is None else store).flat[rows], weak], axis=1)


__all__ = ["COMPONENTS", "CrossValidatedBlend", "choose_weights", "fit_tree", "fold_ids", "grid_step", "prior_places_top",
           "shortlist_cut", "shrink", "simplex_grid", "top_weighted_tau", "validation_score"]
