"""Settings of :class:`~ray_nasrank.predictor.RankPredictor`, grouped by the stage they govern.

:class:`PredictorConfig` holds the network and the ensemble; its three groups hold the stages:
:class:`PretrainConfig` (on the weak labels), :class:`FineTuneConfig` (on the true labels) and
:class:`BlendConfig` (the cross-validated blend of :mod:`ray_nasrank.predictor.blend`). The
defaults are the NB201 recipe of ``docs/benchmarks/ranking.md``.

>>> cfg = PredictorConfig(ensemble=2, pretrain=PretrainConfig(epochs=5), finetune=FineTuneConfig(epochs=30))
>>> cfg.finetune.loss, cfg.blend.mode
('lambdarank', 'cv')

Command lines and JSON take the same settings as one flat dict (``--predictor-args``), where a
stage's field is named with its flat name (:data:`FLAT_NAMES`, e.g. ``fit_epochs`` for
``finetune.epochs``); :meth:`PredictorConfig.from_dict` and :meth:`PredictorConfig.updated`
read both forms:

>>> PredictorConfig.from_dict({"fit_epochs": 40, "trust": "off"}).finetune.epochs
40
>>> PredictorConfig().updated({"blend": {"folds": 5}}).blend.folds
5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from ray_nasrank._config import known_fields
from ray_nasrank._state import state_class

from .losses import LOSSES


def _at_least(obj: Any, low: int, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < low:
            raise ValueError(f"{name} must be >= {low}, got {getattr(obj, name)}")


@state_class
@dataclass
class PretrainConfig:
    """How the ensemble learns the weak labels before it sees a true label.

    Args:
        weak_target: ``multitask`` (one head per weak label plus the main head on their mean) or
            ``mean`` (the main head only).
        weak_transform: per-column normalisation of the weak labels, which come in any unit:
            ``rank`` (normal scores, robust to outliers) or ``zscore``.
        epochs: passes over the weak labels.
        lr: learning rate (cosine-annealed to 0).
        batch: architectures per step.
        weight_decay: Adam weight decay.

    Raises:
        ValueError: an unknown weak target or transform, or a number out of range (named).
    """

    weak_target: str = "multitask"
    weak_transform: str = "rank"
    epochs: int = 30
    lr: float = 2e-3
    batch: int = 256
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.weak_target not in ("multitask", "mean"):
            raise ValueError(f"weak_target must be 'multitask' or 'mean', got {self.weak_target!r}")
        if self.weak_transform not in ("rank", "zscore"):
            raise ValueError(f"weak_transform must be 'rank' or 'zscore', got {self.weak_transform!r}")
        _at_least(self, 1, "batch")
        _at_least(self, 0, "epochs")


@state_class
@dataclass
class FineTuneConfig:
    """How each member is fine-tuned on the true labels (always from its pretrained weights).

    Args:
        loss: the ranking loss: ``lambdarank``, ``ranknet``, ``listmle``, ``listnet``, ``margin`` or ``mse``.
        sigma: LambdaRank/RankNet logistic steepness (AceNAS uses 1; 8 ranks the NB201 top better).
        ndcg_k: NDCG@k truncation of LambdaRank (``None``: the whole list).
        margin: margin of the margin ranking loss.
        aux_loss: a second loss added to ``loss`` with weight ``aux_weight`` (``ranknet`` keeps the
            global order that top-heavy LambdaRank neglects); ``None`` for none.
        aux_weight: weight of ``aux_loss``.
        epochs: most epochs.
        lr: learning rate.
        weight_decay: Adam weight decay.
        batch: labelled items per step (full batch when there are fewer).
        patience: stop when the loss has not improved for this many epochs (0: never stop early).
        iso_augment: give every labelled architecture's isomorphs (same ``space.iso_key``, i.e.
            the same function) its label too; only for spaces with a non-trivial ``iso_key`` and
            at most 200,000 architectures.
        iso_per_label: at most this many isomorphs per labelled class (degenerate classes hold
            hundreds of cells).
        weak_reg: weight of the weak-label regression kept during fine-tuning (0: off).
        weak_reg_batch: pretraining architectures per step of that regulariser.

    Raises:
        ValueError: an unknown loss or a number out of range (named).
    """

    loss: str = "lambdarank"
    sigma: float = 8.0
    ndcg_k: int | None = None
    margin: float = 0.1
    aux_loss: str | None = "ranknet"
    aux_weight: float = 0.3
    epochs: int = 300
    lr: float = 1e-2
    weight_decay: float = 5e-4
    batch: int = 256
    patience: int = 50
    iso_augment: bool = True
    iso_per_label: int = 3
    weak_reg: float = 0.0
    weak_reg_batch: int = 256

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {sorted(LOSSES)}")
        if self.aux_loss is not None and self.aux_loss not in LOSSES:
            raise ValueError(f"unknown aux_loss {self.aux_loss!r}; choose from {sorted(LOSSES)} or None")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight}")
        if self.ndcg_k is not None and self.ndcg_k < 1:
            raise ValueError(f"ndcg_k must be >= 1 or None, got {self.ndcg_k}")
        _at_least(self, 1, "batch", "weak_reg_batch")
        _at_least(self, 0, "epochs", "patience")
        if self.weak_reg < 0:
            raise ValueError(f"weak_reg must be >= 0, got {self.weak_reg}")


@state_class
@dataclass
class BlendConfig:
    """The cross-validated blend of the fine-tuned network, the weak labels and stacked trees.

    Args:
        mode: ``cv`` (rank by the blend that ranks the labels best out of fold) or ``off`` (the
            fine-tuned network alone).
        folds: folds of that cross-validation (fewer when there are fewer than 2 labels per fold).
        step: grid step of the blend weights, in ``(0, 1]``.
        sharpness: how sharply the average over blends favours the best-validated ones (``inf``:
            the best alone).
        shortlist: the top share ranked first, in the order of the rankers that learned from the
            labels (``shortlist_from``), in ``[0, 1)``; the share used is this times the network's
            weight in the blend (0: the blend orders everything).
        shortlist_rows: ... but at least this many candidates of the pool (0: no floor). On a
            pool of a few hundred the share is 1-3 rows, which left the top to a prior that can be
            blind there.
        shortlist_from: who orders the shortlist: ``learned`` (the fine-tuned network and the
            stacked trees, by their blend weights) or ``network`` (the fine-tuned network alone).
        tree: offer gradient-boosted trees on encoding + weak labels as a third ranker.
        boost: offer LightGBM trees boosted from the prior (encoding, weak labels and the prior as
            inputs, the prior as the starting score) as a fourth ranker.
        prior_labels: how many labels' worth of belief the default blends get (equal weak columns;
            a quarter fine-tuned network, three quarters prior) before the cross-validation moves them.
        prior_top: no shortlist (the blend, led by the prior, places the top) when the prior's
            top-weighted Kendall tau on the labels exceeds this and the network's out-of-fold one
            (:func:`~ray_nasrank.predictor.blend.prior_places_top`); above 1: never.
        prior_top_labels: that test runs only with fewer labels than this: from 20 labels on the
            fine-tuned network's top was the better one even where the test favoured the prior.
        prior_top_rows: ... and only where the shortlist's share would hold at least this many
            of the pretraining candidates (before ``shortlist_rows``), i.e. decide the top alone;
            on a small pool the learned rankers' few picks helped.
        fold_correction: scale the weights of the rankers that learn from the labels (network and
            both trees) by ``folds / (folds - 1)`` after the cross-validation: their out-of-fold
            models saw that much fewer labels than the final ones, the prior the same either way,
            so the cross-validation understates them (most where the labels are many enough to
            keep improving them).
        nested_prior: with several weak labels, choose the prior's column blend inside each fold
            too, so that its out-of-fold score is as honest as the other rankers' (chosen on all
            labels, the prior was flattered and kept weight that the trees earned).

    Raises:
        ValueError: an unknown mode or a number out of range (named).
    """

    mode: str = "cv"
    folds: int = 3
    step: float = 0.1
    sharpness: float = 5.0
    shortlist: float = 0.03
    shortlist_rows: float = 10.0
    shortlist_from: str = "learned"
    tree: bool = True
    boost: bool = True
    prior_labels: float = 5.0
    prior_top: float = 0.65
    prior_top_labels: int = 20
    prior_top_rows: float = 10.0
    nested_prior: bool = True
    fold_correction: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("cv", "off"):
            raise ValueError(f"blend mode must be 'cv' or 'off', got {self.mode!r}")
        if self.folds < 2:
            raise ValueError(f"blend folds must be >= 2, got {self.folds}")
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"blend step must be in (0, 1], got {self.step}")
        if not self.sharpness > 0:
            raise ValueError(f"blend sharpness must be > 0, got {self.sharpness}")
        if not self.prior_labels >= 0:
            raise ValueError(f"blend prior_labels must be >= 0, got {self.prior_labels}")
        if not 0.0 <= self.shortlist < 1.0:
            raise ValueError(f"blend shortlist must be in [0, 1), got {self.shortlist}")
        if not self.shortlist_rows >= 0:
            raise ValueError(f"blend shortlist_rows must be >= 0, got {self.shortlist_rows}")
        if self.shortlist_from not in ("learned", "network"):
            raise ValueError(f"blend shortlist_from must be 'learned' or 'network', got {self.shortlist_from!r}")
        if not -1.0 <= self.prior_top:
            raise ValueError(f"blend prior_top must be >= -1, got {self.prior_top}")
        if self.prior_top_labels < 0:
            raise ValueError(f"blend prior_top_labels must be >= 0, got {self.prior_top_labels}")
        if not self.prior_top_rows >= 0:
            raise ValueError(f"blend prior_top_rows must be >= 0, got {self.prior_top_rows}")


#: the stage groups of :class:`PredictorConfig`: field name -> dataclass
GROUPS: dict[str, type] = {"pretrain": PretrainConfig, "finetune": FineTuneConfig, "blend": BlendConfig}

#: flat names (``--predictor-args``, JSON) of the groups' fields: flat name -> (group, field)
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "weak_target": ("pretrain", "weak_target"), "weak_transform": ("pretrain", "weak_transform"),
    "pretrain_epochs": ("pretrain", "epochs"), "pretrain_lr": ("pretrain", "lr"),
    "pretrain_batch": ("pretrain", "batch"), "pretrain_weight_decay": ("pretrain", "weight_decay"),
    **{name: ("finetune", name) for name in ("loss", "sigma", "ndcg_k", "margin", "aux_loss", "aux_weight",
                                             "patience", "iso_augment", "iso_per_label", "weak_reg",
                                             "weak_reg_batch")},
    "fit_epochs": ("finetune", "epochs"), "fit_lr": ("finetune", "lr"),
    "fit_weight_decay": ("finetune", "weight_decay"), "fit_batch": ("finetune", "batch"),
    "trust": ("blend", "mode"),
    **{f"trust_{name}": ("blend", name) for name in ("folds", "step", "sharpness", "shortlist", "shortlist_rows",
                                                      "shortlist_from", "tree", "boost", "prior_labels",
                                                      "prior_top", "prior_top_labels", "prior_top_rows",
                                                      "nested_prior", "fold_correction")},
}


@state_class
@dataclass
class PredictorConfig:
    """Settings of :class:`~ray_nasrank.predictor.RankPredictor`: the network, the ensemble and the stages.

    Args:
        encoder: ``mlp`` over the flat encoding, or ``gcn`` over the cell DAG plus the flat encoding.
        features: encodings (``ray_nasrank.encodings`` kinds joined by ``+``).
        hidden: hidden width of the network.
        layers: hidden layers of the network.
        dropout: dropout rate.
        ensemble: number of differently seeded members (their spread guides exploration).
        seed: seeds every member, so results are deterministic.
        device: the torch device of the networks.
        pretrain: the :class:`PretrainConfig` settings.
        finetune: the :class:`FineTuneConfig` settings.
        blend: the :class:`BlendConfig` settings.

    Raises:
        ValueError: an unknown encoder or a number out of range (named).
    """

    encoder: str = "mlp"
    features: str = "onehot+opdist"
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.0
    ensemble: int = 3
    seed: int = 0
    device: str = "cpu"
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)

    def __post_init__(self) -> None:
        if self.encoder not in ("mlp", "gcn"):
            raise ValueError(f"encoder must be 'mlp' or 'gcn', got {self.encoder!r}")
        _at_least(self, 1, "ensemble", "hidden", "layers")
        for name, cls in GROUPS.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PredictorConfig":
        """A config from a dict of top-level fields, groups (as dicts) and flat names (:data:`FLAT_NAMES`).

        Raises:
            TypeError: ``d`` or a group is not a dict.
            ValueError: an unknown key (named, with the known ones) or an invalid value.
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"a PredictorConfig must be a dict, got {type(d).__name__}")
        top = {k: v for k, v in d.items() if k not in FLAT_NAMES}
        if set(top) - {f.name for f in fields(cls)}:
            _unknown(top)
        groups: dict[str, dict[str, Any]] = {}
        for name, group_cls in GROUPS.items():
            given = top.pop(name, None)
            if isinstance(given, group_cls):
                given = asdict(given)
            groups[name] = dict(known_fields(group_cls, given or {}, f"PredictorConfig {name}"))
        for key, value in d.items():
            if key in FLAT_NAMES:
                group, name = FLAT_NAMES[key]
                groups[group][name] = value
        return cls(**top, **{name: GROUPS[name](**kw) for name, kw in groups.items()})

    def updated(self, overrides: Mapping[str, Any]) -> "PredictorConfig":
        """A copy with ``overrides`` (top-level fields, flat names or groups as dicts) applied.

        A group given as a dict changes only the fields it names.
        """
        base = asdict(self)
        merged: dict[str, Any] = dict(base)
        for key, value in overrides.items():
            if key in GROUPS and isinstance(value, Mapping):
                merged[key] = {**base[key], **value}
            else:
                merged[key] = value
        return PredictorConfig.from_dict(merged)

    def pretraining_settings(self) -> dict[str, Any]:
        """Everything the pretrained ensemble depends on (fine-tuning and blend settings are not)."""
        return {"encoder": self.encoder, "features": self.features, "hidden": self.hidden, "layers": self.layers,
                "dropout": self.dropout, "ensemble": self.ensemble, "seed": self.seed, "pretrain": asdict(self.pretrain)}


def _unknown(top: Mapping[str, Any]) -> None:
    known = sorted({f.name for f in fields(PredictorConfig)} | set(FLAT_NAMES))
    unknown = sorted(set(top) - set(known))
    raise ValueError(f"unknown PredictorConfig keys {unknown}; known: {known}")


__all__ = ["BlendConfig", "FLAT_NAMES", "FineTuneConfig", "GROUPS", "PredictorConfig", "PretrainConfig"]
