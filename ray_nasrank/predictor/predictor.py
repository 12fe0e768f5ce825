"""The learning-to-rank architecture predictor (AceNAS-style).

Pretrain on cheap weak labels of many architectures, then fine-tune on a few true accuracies
with a ranking loss; an ensemble of differently seeded members gives a spread for exploration.
:class:`RankPredictor` ties the parts together: the ensemble (:mod:`.ensemble`), the
cross-validated blend with the weak labels (:mod:`.blend`) and the file format (:mod:`.persistence`).

>>> from ray_nasrank.predictor import FineTuneConfig, PretrainConfig
>>> from ray_nasrank.spaces import NB201Space
>>> import numpy as np
>>> space = NB201Space()
>>> archs = space.sample_many(200, rng=0, unique=True)
>>> weak = np.array([a.count("nor_conv_3x3") for a in archs], dtype=float)
>>> cfg = PredictorConfig(ensemble=2, pretrain=PretrainConfig(epochs=5), finetune=FineTuneConfig(epochs=30))
>>> p = RankPredictor(space, cfg).pretrain(archs, {"convs": weak}).fit(archs[:20], weak[:20])
>>> p.score(archs[:3]).shape
(3,)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ray_nasrank._checks import check_mode
from ray_nasrank._state import state_class
from ray_nasrank.spaces import SearchSpace

from .blend import CrossValidatedBlend
from .config import PredictorConfig
from .ensemble import RankEnsemble
from .losses import MIN_ITEMS
from .weak import WeakInput


@state_class
class RankPredictor:
    """Rank architectures of ``space`` from weak labels plus a few true labels.

    ``pretrain(archs, weak)`` learns the weak labels; ``fit(archs, y)`` fine-tunes on the true
    labels with ``config.finetune.loss`` (always starting from the pretrained weights, or from a
    fresh initialisation without pretraining) and, after pretraining, chooses the blend with the
    weak labels (``config.blend``); ``score`` / ``score_std`` / ``top_k`` rank candidates.
    Everything is deterministic under ``config.seed``.

    Args:
        space: the space of the architectures to rank.
        config: the settings (``None``: ``PredictorConfig()``).
        **overrides: settings replacing those of ``config``, as :meth:`PredictorConfig.updated`
            takes them (top-level fields, flat names such as ``fit_epochs``, or groups as dicts).

    Raises:
        TypeError: ``space`` is not a :class:`~ray_nasrank.spaces.SearchSpace`.
        ValueError: an unknown override, an invalid setting, or ``features`` the space cannot encode.
    """

    def __init__(self, space: SearchSpace, config: PredictorConfig | None = None, **overrides: Any) -> None:
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}")
        cfg = config if config is not None else PredictorConfig()
        if overrides:
            cfg = cfg.updated(overrides)
        self.ensemble = RankEnsemble(space, cfg)
        #: the blend chosen by the last ``fit`` (None: rank by the fine-tuned ensemble alone)
        self.blend: CrossValidatedBlend | None = None

    @property
    def space(self) -> SearchSpace:
        return self.ensemble.space

    @property
    def config(self) -> PredictorConfig:
        """The settings; a new config applies from the next ``fit`` (pretraining is not redone)."""
        return self.ensemble.config

    @config.setter
    def config(self, cfg: PredictorConfig) -> None:
        self.ensemble.config = cfg

    @property
    def weak_names(self) -> list[str]:
        """The names of the weak labels pretrained on (empty before ``pretrain``)."""
        return self.ensemble.weak_names

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` has run since the last ``pretrain``."""
        return self.ensemble.fitted

    # ------------------------------------------------------------------ training
    def pretrain(self, archs: Sequence[Any], weak: WeakInput) -> "RankPredictor":
        """Learn the weak labels of ``archs`` (dict of columns or 1-D/2-D array; NaN = missing)."""
        self.ensemble.pretrain(archs, weak)
        self.blend = None
        return self

    def fit(self, archs: Sequence[Any], y: Sequence[float] | np.ndarray, mode: str = "max", *,
            groups: Sequence[Any] | None = None, group_weights: dict[Any, float] | None = None) -> "RankPredictor":
        """Fine-tune on true labels ``y`` of ``archs`` (``mode='min'``: lower is better).

        Args:
            archs: the labelled architectures (one may appear once per group).
            y: their labels.
            mode: ``max`` when higher labels are better, ``min`` when lower are.
            groups: one group id per label (e.g. the fidelity it was measured at): the ranking
                loss then compares labels of the same group only, so results at different
                fidelities (a curve's epoch 1 and another config's epoch 9) are never ranked
                against each other. ``None``: one group.
            group_weights: each group's weight in the loss (default 1 each; normalised to sum 1).

        Returns:
            This predictor, fitted.

        Raises:
            ValueError: lengths that differ, a NaN/inf label, or no group with two distinct labels.

        >>> from ray_nasrank.predictor import FineTuneConfig
        >>> from ray_nasrank.spaces import CategoricalSpace
        >>> space = CategoricalSpace({"w": [8, 16, 32, 64], "d": [1, 2, 3]})
        >>> archs = space.sample_many(6, rng=0, unique=True)
        >>> p = RankPredictor(space, PredictorConfig(ensemble=1, finetune=FineTuneConfig(epochs=20)))
        >>> y = [60.0, 62.0, 65.0, 80.0, 84.0, 90.0]  # three configs at epoch 1, three at epoch 9
        >>> p.fit(archs, y, groups=[1, 1, 1, 9, 9, 9], group_weights={1: 0.1, 9: 1.0}).fitted
        True
        """
        check_mode(mode)
        if isinstance(archs, (str, dict)):
            raise TypeError("pass a list of architectures, not a single one")
        archs = list(archs)
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(archs) != y.size:
            raise ValueError(f"fit: {len(archs)} architectures but {y.size} labels")
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise ValueError(f"fit: {bad.size} label(s) are NaN/inf, first at position {int(bad[0])} ({y[bad[0]]!r})")
        cfg = self.config
        need = MIN_ITEMS[cfg.finetune.loss]
        if groups is not None:
            return self._fit_groups(archs, y if mode == "max" else -y, list(groups), group_weights or {})
        if y.size < need:
            raise ValueError(f"fit: the {cfg.finetune.loss!r} loss needs at least {need} labels, got {y.size}")
        if np.ptp(y) == 0:
            raise ValueError(f"fit: all {y.size} labels equal {y[0]!r}; there is nothing to rank")
        ens = self.ensemble
        lab_rows = ens.rows(archs)
        lab_signed = y if mode == "max" else -y
        rows, signed = lab_rows, lab_signed
        if cfg.finetune.iso_augment:
            rows, signed = ens.iso_expand(archs, rows, signed)
        ens.fine_tune(rows, signed)
        self.blend = None
        if cfg.blend.mode == "cv" and ens.pre_states is not None:
            self.blend = CrossValidatedBlend.fit(ens, archs, lab_rows, lab_signed)
        return self

    def _fit_groups(self, archs: list, signed_all: np.ndarray, groups: list, weights: dict) -> "RankPredictor":
        """:meth:`fit` with one ranking list per group (see ``groups`` there); ``signed_all`` higher is better."""
        if len(groups) != signed_all.size:
            raise ValueError(f"fit: {signed_all.size} labels but {len(groups)} group ids")
        cfg, ens = self.config, self.ensemble
        need = MIN_ITEMS[cfg.finetune.loss]
        parts, w = [], []
        for g in dict.fromkeys(groups):
            idx = [i for i, h in enumerate(groups) if h == g]
            signed = signed_all[idx]
            weight = float(weights.get(g, 1.0))
            if len(idx) < need or np.ptp(signed) == 0 or weight <= 0:
                continue  # nothing to rank in this group
            g_archs = [archs[i] for i in idx]
            lab_rows = ens.rows(g_archs)
            rows, expanded = lab_rows, signed
            if cfg.finetune.iso_augment:
                rows, expanded = ens.iso_expand(g_archs, lab_rows, signed)
            parts.append((g_archs, lab_rows, signed, rows, expanded))
            w.append(weight)
        if not parts:
            raise ValueError(f"fit: no group of {len(set(groups))} holds {need} distinct labels; there is nothing to rank")
        rows = np.concatenate([p[3] for p in parts])
        gid = np.concatenate([np.full(p[3].size, k) for k, p in enumerate(parts)])
        ens.fine_tune(rows, np.concatenate([p[4] for p in parts]), gid, np.asarray(w))
        self.blend = None
        if cfg.blend.mode == "cv" and ens.pre_states is not None:
            # the blend is chosen on the heaviest group's labels alone (one scale)
            g_archs, lab_rows, signed, _, _ = parts[int(np.argmax(w))]
            self.blend = CrossValidatedBlend.fit(ens, g_archs, lab_rows, signed)
        return self

    @property
    def blend_weights(self) -> dict[str, float] | None:
        """The blend the last ``fit`` chose (``{"tuned": .., "prior": .., "tree": ..}``), None without one."""
        return None if self.blend is None else self.blend.component_weights()

    @property
    def blend_columns(self) -> dict[str, float] | None:
        """With several weak labels, each one's weight in the prior of the last ``fit`` (None otherwise)."""
        return None if self.blend is None else self.blend.column_weights(self.weak_names)

    # ------------------------------------------------------------------ scoring
    def _scored(self, archs: Sequence[Any], cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Score and spread: the ensemble's, or after a blend, the blend's and the tuned part's spread."""
        ens = self.ensemble
        ens.check_ready()
        if isinstance(archs, (str, dict)):
            raise TypeError("pass a list of architectures, not a single one")
        # cache=False: candidates seen once (prior samples of a huge or continuous space) are
        # encoded in a throw-away store instead of growing the shared one for good
        store = None if cache else ens.throwaway_store()
        rows = ens.rows(archs) if cache else store.rows(list(archs))
        s = ens.member_scores(rows, store)
        mean, std = s.mean(axis=0), s.std(axis=0)
        if self.blend is None or rows.size == 0:
            return mean, std
        return self.blend.score(ens, rows, mean, std, store)

    def score(self, archs: Sequence[Any], cache: bool = True) -> np.ndarray:
        """Predicted merit of each architecture (higher = better): the ensemble mean, or the blend.

        ``cache=False`` encodes ``archs`` without keeping their features (one-off candidates)."""
        return self._scored(archs, cache)[0]

    def score_std(self, archs: Sequence[Any], cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Score (as :meth:`score`) and the spread of the fine-tuned members (scaled by their blend weight)."""
        return self._scored(archs, cache)

    def top_k(self, candidates: Sequence[Any], k: int, exclude: Sequence[Any] = ()) -> list[tuple]:
        """The ``k`` best-scored candidates (validated arch tuples), skipping ``exclude``."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        cands = [self.space.validate(a) for a in candidates]
        skip = {self.space.validate(a) for a in exclude}
        keep = [a for a in dict.fromkeys(cands) if a not in skip]
        if not keep or k == 0:
            return []
        order = np.argsort(-self.score(keep), kind="stable")
        return [keep[i] for i in order[:k]]

    # ------------------------------------------------------------------ copies and files
    def clone(self) -> "RankPredictor":
        """An independent copy; pretraining data (read-only) is shared, weights are copied."""
        new = RankPredictor.__new__(RankPredictor)
        new.ensemble = self.ensemble.clone()
        new.blend = self.blend
        return new

    def save(self, path: str | os.PathLike) -> Path:
        """Write the predictor to ``path`` as tensors and JSON (:mod:`ray_nasrank.predictor.persistence`)."""
        from .persistence import save_predictor

        return save_predictor(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "RankPredictor":
        """Read a file written by :meth:`save` (optionally onto another ``device``); nothing in it can run code.

        Raises:
            ValueError: not a saved RankPredictor, or a corrupt one (the message names the file).
        """
        from .persistence import load_predictor

        return load_predictor(path, device)

    # state files of strategies that hold a predictor (ray_nasrank._state) use the same state
    def _to_state(self) -> dict:
        from .persistence import predictor_state

        return predictor_state(self)

    @classmethod
    def _from_state(cls, state: Any, device: str | None = None) -> "RankPredictor":
        from .persistence import predictor_from_state

        return predictor_from_state(state, device)

    def __repr__(self) -> str:
        ens = self.ensemble
        state = "fitted" if ens.fitted else ("pretrained" if ens.pre_states else "untrained")
        return (f"RankPredictor({self.space!r}, encoder={self.config.encoder!r}, "
                f"loss={self.config.finetune.loss!r}, {state})")


__all__ = ["PredictorConfig", "RankPredictor"]
