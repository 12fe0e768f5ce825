"""The learning-to-rank architecture predictor (AceNAS-style).

Pretrain on cheap weak labels of many architectures, then fine-tune on a few true accuracies
with a ranking loss; an ensemble of differently seeded members gives a spread for exploration.

>>> from ray_nasrank.spaces import NB201Space
>>> import numpy as np
>>> space = NB201Space()
>>> archs = space.sample_many(200, rng=0, unique=True)
>>> weak = np.array([a.count("nor_conv_3x3") for a in archs], dtype=float)
>>> cfg = PredictorConfig(ensemble=2, pretrain_epochs=5, fit_epochs=30)
>>> p = RankPredictor(space, cfg).pretrain(archs, {"convs": weak}).fit(archs[:20], weak[:20])
>>> p.score(archs[:3]).shape
(3,)
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ray_nasrank._checks import check_mode
from ray_nasrank._config import known_fields
from ray_nasrank._state import state_class
from ray_nasrank.metrics import acenas_relevance
from ray_nasrank.spaces import SearchSpace

from .features import FeatureStore, feature_store
from .losses import LOSSES, MIN_ITEMS, get_loss
from .models import RankNet, build_net
from .trust import COMPONENTS, choose_weights, fit_tree, fold_ids, grid_step, shortlist_cut, shrink
from .weak import WeakInput, as_weak_matrix, combined_target, normalise_weak


@state_class
@dataclass
class PredictorConfig:
    """Settings of :class:`RankPredictor` (defaults: the NB201 recipe of docs/benchmarks/ranking.md).

    Args:
        encoder: ``mlp`` over the flat encoding, or ``gcn`` over the NB201 cell DAG (plus the flat encoding).
        features: encodings (``ray_nasrank.encodings`` kinds joined by ``+``).
        hidden: hidden width of the network.
        layers: hidden layers of the network.
        dropout: dropout rate.
        loss: fine-tuning loss: ``lambdarank``, ``ranknet``, ``listmle``, ``listnet``, ``margin`` or ``mse``.
        sigma: LambdaRank/RankNet logistic steepness.
        ndcg_k: NDCG@k truncation of LambdaRank (``None``: the whole list).
        margin: margin of the margin ranking loss.
        aux_loss: a second loss added to ``loss`` with weight ``aux_weight`` (``None``: none).
        aux_weight: weight of ``aux_loss``.
        ensemble: number of differently seeded members.
        seed: seeds every member, so results are deterministic.
        device: the torch device of the networks.
        weak_target: ``multitask`` (one head per weak label plus the main head on their mean) or
            ``mean`` (main head only).
        weak_transform: per-column normalisation of the weak labels: ``rank`` (normal scores) or ``zscore``.
        pretrain_epochs: pretraining epochs on the weak labels.
        pretrain_lr: pretraining learning rate.
        pretrain_batch: pretraining batch size.
        pretrain_weight_decay: pretraining weight decay.
        fit_epochs: most fine-tuning epochs on the true labels.
        fit_lr: fine-tuning learning rate.
        fit_weight_decay: fine-tuning weight decay.
        fit_batch: labelled items per fine-tuning step (full batch when there are fewer).
        patience: stop fine-tuning when the loss has not improved for this many epochs.
        iso_augment: give every labelled architecture's isomorphs (same ``space.iso_key``) its label too.
        iso_per_label: at most this many isomorphs per labelled class.
        weak_reg: weight of the weak-label regression kept during fine-tuning (0: off).
        weak_reg_batch: pretraining architectures per step of that regulariser.
        trust: ``cv`` (rank by the blend of the fine-tuned network, the weak labels and stacked trees
            that ranks the labels best out of fold) or ``off`` (the fine-tuned network alone).
        trust_folds: folds of that cross-validation.
        trust_step: grid step of the blend weights, in ``(0, 1]``.
        trust_sharpness: how sharply the blend average favours the best-validated blends.
        trust_shortlist: the fine-tuned network's top share at full trust, ranked first in its own
            order, in ``[0, 1)``; the share used is this times the network's weight in the blend.
        trust_tree: offer gradient-boosted trees on encoding + weak labels as a third ranker of the blend.
        trust_prior_labels: how many labels' worth of belief the default blends get (equal weak
            columns; a quarter fine-tuned network, three quarters prior) before the cross-validation moves them.

    Raises:
        ValueError: an unknown encoder, loss, weak target, weak transform or trust mode, or a
            number out of range (the message names the field).
    """

    #: ``mlp`` over the flat encoding, or ``gcn`` over the NB201 cell DAG (plus the flat encoding)
    encoder: str = "mlp"
    #: encodings (``ray_nasrank.encodings`` kinds joined by ``+``)
    features: str = "onehot+opdist"
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.0
    #: fine-tuning loss: lambdarank, ranknet, listmle, listnet, margin or mse
    loss: str = "lambdarank"
    #: LambdaRank/RankNet logistic steepness (AceNAS uses 1; 8 ranks the NB201 top better, see docs)
    sigma: float = 8.0
    #: NDCG@k truncation of LambdaRank (None: the whole list)
    ndcg_k: int | None = None
    #: margin of the margin ranking loss
    margin: float = 0.1
    #: a second loss added to ``loss`` with weight ``aux_weight`` (e.g. ``ranknet`` for the global order
    #: that top-heavy LambdaRank neglects); None for none
    aux_loss: str | None = "ranknet"
    aux_weight: float = 0.3
    #: number of differently seeded members
    ensemble: int = 3
    seed: int = 0
    device: str = "cpu"
    # --- pretraining on weak labels
    #: ``multitask``: one head per weak label plus the main head on their mean; ``mean``: main head only
    weak_target: str = "multitask"
    #: per-column normalisation: ``rank`` (normal scores) or ``zscore``
    weak_transform: str = "rank"
    pretrain_epochs: int = 30
    pretrain_lr: float = 2e-3
    pretrain_batch: int = 256
    pretrain_weight_decay: float = 0.0
    # --- fine-tuning on ground truth
    fit_epochs: int = 300
    fit_lr: float = 1e-2
    fit_weight_decay: float = 5e-4
    #: labelled items per step (full batch when there are fewer)
    fit_batch: int = 256
    #: stop when the loss has not improved for this many epochs
    patience: int = 50
    #: give every labelled architecture's isomorphs (same ``space.iso_key``, i.e. the same function)
    #: its label too; only for spaces with a non-trivial iso_key and at most ``iso_max_size`` archs
    iso_augment: bool = True
    #: at most this many isomorphs per labelled class (degenerate classes hold hundreds of cells)
    iso_per_label: int = 3
    #: weight of the weak-label regression kept during fine-tuning (0 turns it off)
    weak_reg: float = 0.0
    #: pretraining architectures per step of that regulariser
    weak_reg_batch: int = 256
    # --- how far to trust the pretrained order (``ray_nasrank.predictor.trust``)
    #: ``cv``: rank by the convex blend of the fine-tuned network, the weak labels (the prior) and
    #: stacked trees that ranks the labels best out of fold; ``off``: the fine-tuned network alone
    trust: str = "cv"
    #: folds of that cross-validation (fewer when there are fewer labels than 2 per fold)
    trust_folds: int = 3
    #: grid step of the blend weights
    trust_step: float = 0.1
    #: how sharply the blend average favours the best-validated blends (``inf``: the best alone)
    trust_sharpness: float = 5.0
    #: two-stage ranking: the fine-tuned network's top ``trust_shortlist * w`` share (``w``: its
    #: weight in the blend; the share is measured on the pretraining archs) comes first, in that
    #: network's order, which LambdaRank trained for the top (the labels cannot validate the top
    #: 0.3 %, the blend weights are chosen on the global order); the blend orders the rest.
    #: 0 ranks everything by the blend
    trust_shortlist: float = 0.03
    #: offer gradient-boosted trees on encoding + weak labels as a third ranker of the blend
    trust_tree: bool = True
    #: the labels' worth of belief in the default blends (the weak columns' equal average as the
    #: prior; a quarter fine-tuned network, three quarters prior) that the validated blends are shrunk toward:
    #: with 10 labels and 5 the chosen weights count for 2/3, with 100 for 95 %
    trust_prior_labels: float = 5.0

    def __post_init__(self) -> None:
        if self.encoder not in ("mlp", "gcn"):
            raise ValueError(f"encoder must be 'mlp' or 'gcn', got {self.encoder!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {sorted(LOSSES)}")
        if self.aux_loss is not None and self.aux_loss not in LOSSES:
            raise ValueError(f"unknown aux_loss {self.aux_loss!r}; choose from {sorted(LOSSES)} or None")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight}")
        if self.weak_target not in ("multitask", "mean"):
            raise ValueError(f"weak_target must be 'multitask' or 'mean', got {self.weak_target!r}")
        if self.weak_transform not in ("rank", "zscore"):
            raise ValueError(f"weak_transform must be 'rank' or 'zscore', got {self.weak_transform!r}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.ndcg_k is not None and self.ndcg_k < 1:
            raise ValueError(f"ndcg_k must be >= 1 or None, got {self.ndcg_k}")
        for name in ("hidden", "layers", "pretrain_batch", "fit_batch", "weak_reg_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pretrain_epochs", "fit_epochs", "patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.weak_reg < 0:
            raise ValueError(f"weak_reg must be >= 0, got {self.weak_reg}")
        if self.trust not in ("cv", "off"):
            raise ValueError(f"trust must be 'cv' or 'off', got {self.trust!r}")
        if self.trust_folds < 2:
            raise ValueError(f"trust_folds must be >= 2, got {self.trust_folds}")
        if not 0.0 < self.trust_step <= 1.0:
            raise ValueError(f"trust_step must be in (0, 1], got {self.trust_step}")
        if not self.trust_sharpness > 0:
            raise ValueError(f"trust_sharpness must be > 0, got {self.trust_sharpness}")
        if not self.trust_prior_labels >= 0:
            raise ValueError(f"trust_prior_labels must be >= 0, got {self.trust_prior_labels}")
        if not 0.0 <= self.trust_shortlist < 1.0:
            raise ValueError(f"trust_shortlist must be in [0, 1), got {self.trust_shortlist}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PredictorConfig":
        return cls(**known_fields(cls, d, "PredictorConfig"))


_ISO_MAX_SIZE = 200_000
_ISO_CACHE: dict[SearchSpace, dict | None] = {}


def _iso_groups(space: SearchSpace) -> dict | None:
    """``iso_key -> [archs]`` over the whole space, or None where isomorphism is trivial or the space too big."""
    if space not in _ISO_CACHE:
        trivial = type(space).iso_key is SearchSpace.iso_key
        if trivial or space.size > _ISO_MAX_SIZE:
            _ISO_CACHE[space] = None
        else:
            groups: dict = {}
            for a in space.enumerate():
                groups.setdefault(space.iso_key(a), []).append(a)
            _ISO_CACHE[space] = groups
    return _ISO_CACHE[space]


@state_class
class RankPredictor:
    """Rank architectures of ``space`` from weak labels plus a few true labels.

    ``pretrain(archs, weak)`` learns the weak labels; ``fit(archs, y)`` fine-tunes on the true
    labels with ``config.loss`` (always starting from the pretrained weights, or from a fresh
    initialisation without pretraining); ``score`` / ``score_std`` / ``top_k`` rank candidates.
    Everything is deterministic under ``config.seed``.

    Args:
        space: the space of the architectures to rank.
        config: the settings (``None``: ``PredictorConfig()``).
        **overrides: :class:`PredictorConfig` fields replacing those of ``config``.

    Raises:
        TypeError: ``space`` is not a :class:`~ray_nasrank.spaces.SearchSpace`.
        ValueError: an unknown override, an invalid setting, or ``features`` the space cannot encode.
    """

    def __init__(self, space: SearchSpace, config: PredictorConfig | None = None, **overrides: Any) -> None:
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}")
        cfg = config if config is not None else PredictorConfig()
        if overrides:
            cfg = PredictorConfig.from_dict({**asdict(cfg), **overrides})
        self.space = space
        self.config = cfg
        self.device = torch.device(cfg.device)
        self._store  # builds the encodings' store now so bad features fail here
        self.weak_names: list[str] = []
        self._pre_rows: np.ndarray | None = None  # store rows of the pretraining archs
        self._pre_weak: np.ndarray | None = None  # normalised weak labels [n, m] (NaN = missing)
        self._pre_target: np.ndarray | None = None  # combined weak target [n]
        self._pre_archs: list[tuple] | None = None
        self._pre_states: list[dict] | None = None
        self._nets: list[RankNet] | None = None
        self._scale: np.ndarray | None = None  # per member (mean, std) of scores for averaging
        # trust (see .trust): the prior and weak inputs of the pretraining archs, NaN filled in by the
        # pretrained network; the chosen blend weights over COMPONENTS, their (mean, std) and the tree
        self._pre_fill: tuple[np.ndarray, np.ndarray] | None = None
        self._pre_pos: dict[int, int] | None = None
        self._blend: np.ndarray | None = None
        # rows: COMPONENTS, then the shortlist cut in the fine-tuned network's standardised score (row 3, col 0)
        self._comp_scale: np.ndarray | None = None
        # with several weak labels the prior is their blend: weights, per-column (mean, std) on the
        # reference archs and the blend's (mean, std) in the last row; None: the combined weak target
        self._mix: np.ndarray | None = None
        self._mix_scale: np.ndarray | None = None
        self._tree: Any = None
        self.fitted = False

    # ------------------------------------------------------------------ features
    @property
    def _store(self) -> FeatureStore:
        return feature_store(self.space, self.config.features, graph=self.config.encoder == "gcn")

    def _tensors(self, rows: np.ndarray, store: FeatureStore | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        st = self._store if store is None else store
        flat = torch.from_numpy(st.flat[rows]).to(self.device)
        if self.config.encoder != "gcn":
            return flat, None, None
        return flat, torch.from_numpy(st.adj[rows]).to(self.device), torch.from_numpy(st.nodes[rows]).to(self.device)

    def _rows(self, archs: Sequence[Any]) -> np.ndarray:
        if isinstance(archs, (str, dict)):
            raise TypeError("pass a list of architectures, not a single one")
        return self._store.rows(list(archs))

    def _new_net(self, member: int) -> RankNet:
        st = self._store
        node_dim = st.nodes.shape[-1] if self.config.encoder == "gcn" else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._member_seed(member))
            net = build_net(self.config.encoder, st.flat_dim, node_dim, len(self.weak_names),
                            self.config.hidden, self.config.layers, self.config.dropout)
        return net.to(self.device)

    def _member_seed(self, member: int) -> int:
        return int(self.config.seed) * 1009 + member * 7919 + 17

    # ------------------------------------------------------------------ pretraining
    def pretrain(self, archs: Sequence[Any], weak: WeakInput) -> "RankPredictor":
        """Learn the weak labels of ``archs`` (dict of columns or 1-D/2-D array; NaN = missing)."""
        rows = self._rows(archs)
        if rows.size < 2:
            raise ValueError(f"pretraining needs at least 2 architectures, got {rows.size}")
        names, matrix = as_weak_matrix(weak, rows.size)
        norm = normalise_weak(matrix, self.config.weak_transform)
        target = combined_target(norm)
        self.weak_names = names
        self._pre_rows, self._pre_weak, self._pre_target = rows, norm.astype(np.float32), target.astype(np.float32)
        self._pre_archs = [self.space.validate(a) for a in archs]
        nets = []
        for m in range(self.config.ensemble):
            net = self._new_net(m)
            self._train_pretrain(net, m)
            nets.append(net)
        self._pre_states = [copy.deepcopy(n.state_dict()) for n in nets]
        self._nets = nets
        self.fitted = False
        self._scale = self._compute_scale(np.empty(0, dtype=np.int64))
        self._pre_pos = None
        self._fill_prior()
        self._blend = self._comp_scale = self._tree = self._mix = self._mix_scale = None
        return self

    def _weak_loss(self, net: RankNet, idx: np.ndarray) -> torch.Tensor:
        """Masked MSE of the weak heads (multitask) and of the main head on the combined target."""
        rows = self._pre_rows[idx]
        flat, adj, nodes = self._tensors(rows)
        main, weak = net(flat, adj, nodes)
        tgt = torch.from_numpy(self._pre_target[idx]).to(self.device)
        ok = ~torch.isnan(tgt)
        loss = ((main - torch.nan_to_num(tgt)) ** 2 * ok).sum() / ok.sum().clamp(min=1)
        if self.config.weak_target == "multitask":
            w = torch.from_numpy(self._pre_weak[idx]).to(self.device)
            okw = ~torch.isnan(w)
            loss = loss + ((weak - torch.nan_to_num(w)) ** 2 * okw).sum() / okw.sum().clamp(min=1)
        return loss

    def _train_pretrain(self, net: RankNet, member: int) -> None:
        cfg = self.config
        n = self._pre_rows.size
        rng = np.random.default_rng(self._member_seed(member))
        opt = torch.optim.Adam(net.parameters(), lr=cfg.pretrain_lr, weight_decay=cfg.pretrain_weight_decay)
        steps = cfg.pretrain_epochs * max(1, -(-n // cfg.pretrain_batch))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        net.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._member_seed(member) + 1)
            for _ in range(cfg.pretrain_epochs):
                perm = rng.permutation(n)
                for start in range(0, n, cfg.pretrain_batch):
                    loss = self._weak_loss(net, perm[start:start + cfg.pretrain_batch])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
        net.eval()

    # ------------------------------------------------------------------ fine-tuning
    def fit(self, archs: Sequence[Any], y: Sequence[float] | np.ndarray, mode: str = "max") -> "RankPredictor":
        """Fine-tune on true labels ``y`` of ``archs`` (``mode='min'``: lower is better)."""
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
        need = MIN_ITEMS[self.config.loss]
        if y.size < need:
            raise ValueError(f"fit: the {self.config.loss!r} loss needs at least {need} labels, got {y.size}")
        if np.ptp(y) == 0:
            raise ValueError(f"fit: all {y.size} labels equal {y[0]!r}; there is nothing to rank")
        lab_rows = self._rows(archs)
        lab_signed = y if mode == "max" else -y
        rows, signed = lab_rows, lab_signed
        if self.config.iso_augment:
            rows, signed = self._iso_expand(archs, rows, signed)
        if self._pre_states is not None and self.config.ensemble > len(self._pre_states):
            raise ValueError(f"config.ensemble={self.config.ensemble} but only {len(self._pre_states)} members were pretrained")
        targets = self._targets(signed)
        self._nets = [self._tuned_net(m, rows, targets) for m in range(self.config.ensemble)]
        self.fitted = True
        self._scale = self._compute_scale(rows)
        self._blend = self._comp_scale = self._tree = self._mix = self._mix_scale = None
        if self.config.trust == "cv" and self._pre_states is not None:
            self._choose_trust(archs, lab_rows, lab_signed)
        return self

    def _targets(self, signed: np.ndarray) -> dict[str, torch.Tensor]:
        # graded AceNAS relevance (q20 of the labelled subset) for LambdaRank, z-scores otherwise
        return {
            "rel": torch.as_tensor(acenas_relevance(signed), dtype=torch.float32, device=self.device),
            "z": torch.as_tensor((signed - signed.mean()) / signed.std(), dtype=torch.float32, device=self.device),
        }

    def _tuned_net(self, member: int, rows: np.ndarray, targets: dict[str, torch.Tensor]) -> RankNet:
        """Member ``member`` fine-tuned on ``rows``, from its pretrained weights (or a fresh init)."""
        net = self._new_net(member)
        if self._pre_states is not None:
            net.load_state_dict(self._pre_states[member])
        self._train_fit(net, member, rows, targets)
        return net

    # ------------------------------------------------------------------ trust in the pretrained order
    @torch.no_grad()
    def _pretrained_outputs(self, rows: np.ndarray, store: FeatureStore | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The pretrained ensemble's mean main-head and weak-head outputs, ``[n]`` and ``[n, weak]``."""
        nets = []
        for m, state in enumerate(self._pre_states):
            net = self._new_net(m)
            net.load_state_dict(state)
            nets.append(net.eval())
        main = np.zeros(rows.size)
        heads = np.zeros((rows.size, len(self.weak_names)))
        for start in range(0, rows.size, 16384):
            x = self._tensors(rows[start:start + 16384], store)
            for net in nets:
                a, b = net(*x)
                main[start:start + 16384] += a.double().cpu().numpy() / len(nets)
                heads[start:start + 16384] += b[:, :len(self.weak_names)].double().cpu().numpy() / len(nets)
        if self.config.weak_target != "multitask":  # no weak heads were trained: every column reads the prior
            heads[:] = main[:, None]
        return main, heads

    def _fill_prior(self) -> None:
        """Prior and weak inputs of the pretraining archs; a missing (NaN) value is the pretrained net's guess."""
        main, heads = self._pretrained_outputs(self._pre_rows)
        prior = np.where(np.isnan(self._pre_target), main, self._pre_target)
        weak = np.where(np.isnan(self._pre_weak), heads, self._pre_weak)
        self._pre_fill = (prior, weak)

    def _prior_inputs(self, rows: np.ndarray, store: FeatureStore | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(prior [n], weak [n, m])`` of store rows: the weak labels where pretrained on, else predicted."""
        if self._pre_pos is None:
            self._pre_pos = {int(r): i for i, r in enumerate(self._pre_rows)}
        shared = rows
        if store is not None:  # a throw-away store: its archs' rows in the shared store, -1 where absent
            arch_of = {r: a for a, r in store._index.items()}
            shared = np.array([self._store._index.get(arch_of[int(r)], -1) for r in rows], dtype=np.int64)
        pos = np.array([self._pre_pos.get(int(r), -1) for r in shared], dtype=np.int64)
        known = pos >= 0
        prior = np.empty(rows.size)
        weak = np.empty((rows.size, len(self.weak_names)))
        prior[known], weak[known] = self._pre_fill[0][pos[known]], self._pre_fill[1][pos[known]]
        if not known.all():
            prior[~known], weak[~known] = self._pretrained_outputs(rows[~known], store)
        return prior, weak

    def _tree_x(self, rows: np.ndarray, weak: np.ndarray, store: FeatureStore | None = None) -> np.ndarray:
        return np.concatenate([(self._store if store is None else store).flat[rows], weak], axis=1)

    def _ref_rows(self) -> np.ndarray:
        """A fixed sample of the pretraining archs on which every ranker's scores are standardised."""
        rng = np.random.default_rng(self.config.seed)
        pick = rng.choice(self._pre_rows.size, size=min(2048, self._pre_rows.size), replace=False)
        return self._pre_rows[np.sort(pick)]

    def _choose_trust(self, archs: list, rows: np.ndarray, signed: np.ndarray) -> None:
        """Blend weights over (tuned, prior, tree) by K-fold cross-validation on the labels."""
        cfg = self.config
        n = rows.size
        folds = min(cfg.trust_folds, n // 2)
        if folds < 2:
            return
        fid = fold_ids(n, folds, cfg.seed)
        prior, weak = self._prior_inputs(rows)
        ref = self._ref_rows()
        ref_prior, ref_weak = self._prior_inputs(ref)
        if weak.shape[1] > 1:  # several weak labels: the prior becomes their best-validated blend
            self._choose_mix(weak, signed, ref_weak)
            prior, ref_prior = self._mixed(prior, weak), self._mixed(ref_prior, ref_weak)
        x = x_ref = None
        if cfg.trust_tree:
            x, x_ref = self._tree_x(rows, weak), self._tree_x(ref, ref_weak)
        oof = np.zeros((len(COMPONENTS), n))
        for k in range(folds):
            train, test = fid != k, fid == k
            if np.ptp(signed[train]) == 0:
                continue  # nothing to learn in this fold: its held-out items get the neutral score 0
            tr_archs = [a for a, t in zip(archs, train) if t]
            tr_rows, tr_y = rows[train], signed[train]
            if cfg.iso_augment:  # held-out archs must not come back into training as isomorphs
                tr_rows, tr_y = self._iso_expand(tr_archs, tr_rows, tr_y,
                                                 exclude=[a for a, t in zip(archs, test) if t])
            net = self._tuned_net(k % cfg.ensemble, tr_rows, self._targets(tr_y))
            with torch.no_grad():
                ref_raw = net(*self._tensors(ref))[0].double().cpu().numpy()
                oof[0, test] = _standardise(net(*self._tensors(rows[test]))[0].double().cpu().numpy(), ref_raw)
            if cfg.trust_tree:
                tree = fit_tree(x[train], signed[train], cfg.seed + k)
                oof[2, test] = _standardise(tree.predict(x[test]), tree.predict(x_ref))
        oof[1] = _standardise(prior, ref_prior)
        if not cfg.trust_tree:
            oof = oof[:2]
        w = choose_weights(oof, signed, cfg.trust_step, cfg.trust_sharpness)
        # few labels: lean toward the default blend, a quarter fine-tuned network, three quarters prior
        w = shrink(w, np.array([0.25, 0.75, 0.0])[:w.size], n, cfg.trust_prior_labels)
        w = np.concatenate([w, np.zeros(len(COMPONENTS) - w.size)])
        scale = np.ones((len(COMPONENTS) + 1, 2))
        scale[:, 0] = 0.0
        tuned_ref = self._member_scores_rows(ref).mean(axis=0)
        scale[0] = tuned_ref.mean(), _sd(tuned_ref)
        scale[1] = ref_prior.mean(), _sd(ref_prior)
        tree_ref = np.zeros(ref.size)
        if w[2] > 0:
            self._tree = fit_tree(x, signed, cfg.seed)
            tree_ref = self._tree.predict(x_ref)
            scale[2] = tree_ref.mean(), _sd(tree_ref)
        # the shortlist: the fine-tuned network's standardised scores above this cut (a per-arch
        # rule, so any subset ranks alike). Cut on the blend instead, a prior-heavy blend with a
        # top-blind weak label (the one-shot supernet) filled the shortlist with its bad top. Its
        # share shrinks with the network's blend weight: a fixed share on a small pool (320 rows:
        # 3 % is the 10 rows NDCG@10 reads) let a network the labels barely trusted place the top.
        tuned_z = (tuned_ref - scale[0, 0]) / scale[0, 1]
        scale[3, 0] = shortlist_cut(tuned_z, cfg.trust_shortlist * w[0])
        self._blend, self._comp_scale = w, scale

    def _choose_mix(self, weak: np.ndarray, signed: np.ndarray, ref_weak: np.ndarray) -> None:
        """The weak columns' blend that orders the labels best, shrunk toward their equal average.

        A weak label never sees a true label, so every labelled item scores it fairly without folds;
        the blend chosen here then enters the cross-validation of the trust blend as the prior
        (slightly flattered there, having been chosen on the same labels).
        """
        cfg = self.config
        m = weak.shape[1]
        col = np.stack([ref_weak.mean(axis=0), ref_weak.std(axis=0)], axis=1)
        col[col[:, 1] <= 0, 1] = 1.0
        z = (weak - col[:, 0]) / col[:, 1]
        w = choose_weights(z.T, signed, grid_step(m, cfg.trust_step), cfg.trust_sharpness)
        self._mix = shrink(w, np.full(m, 1.0 / m), signed.size, cfg.trust_prior_labels)
        self._mix_scale = col

    def _mixed(self, prior: np.ndarray, weak: np.ndarray) -> np.ndarray:
        """The prior of items with weak inputs ``weak``: the chosen weak blend, or ``prior`` without one."""
        if self._mix is None:
            return prior
        return ((weak - self._mix_scale[:, 0]) / self._mix_scale[:, 1]) @ self._mix

    @property
    def trust_weights(self) -> dict[str, float] | None:
        """The blend the last ``fit`` chose (``{"tuned": .., "prior": .., "tree": ..}``), None without one."""
        if self._blend is None:
            return None
        return {name: float(w) for name, w in zip(COMPONENTS, self._blend)}

    @property
    def trust_columns(self) -> dict[str, float] | None:
        """With several weak labels, each one's weight in the prior of the last ``fit`` (None otherwise)."""
        if self._mix is None:
            return None
        return {name: float(w) for name, w in zip(self.weak_names, self._mix)}

    def _iso_expand(self, archs: list, rows: np.ndarray, signed: np.ndarray,
                    exclude: Sequence[Any] = ()) -> tuple[np.ndarray, np.ndarray]:
        groups = _iso_groups(self.space)
        if groups is None:
            return rows, signed
        keys = [self.space.iso_key(a) for a in archs]
        seen = set()
        extra_archs, extra_y = [], []
        # several labels of one class (e.g. two measured isomorphs): their isomorphs get the mean
        by_key: dict = {}
        for k, v in zip(keys, signed):
            by_key.setdefault(k, []).append(v)
        labelled = {self.space.validate(a) for a in [*archs, *exclude]}
        rng = np.random.default_rng(self.config.seed)
        for k, vals in by_key.items():
            members = [a for a in groups.get(k, ()) if a not in labelled and a not in seen]
            if len(members) > self.config.iso_per_label:
                pick = rng.choice(len(members), size=self.config.iso_per_label, replace=False)
                members = [members[i] for i in sorted(pick)]
            for a in members:
                seen.add(a)
                extra_archs.append(a)
                extra_y.append(float(np.mean(vals)))
        if not extra_archs:
            return rows, signed
        return np.concatenate([rows, self._rows(extra_archs)]), np.concatenate([signed, extra_y])

    def _one_loss(self, name: str, scores: torch.Tensor, targets: dict[str, torch.Tensor],
                  b: np.ndarray) -> torch.Tensor:
        cfg = self.config
        fn = get_loss(name)
        if name == "lambdarank":
            return fn(scores, targets["rel"][b], sigma=cfg.sigma, k=cfg.ndcg_k)
        if name == "ranknet":
            return fn(scores, targets["z"][b], sigma=cfg.sigma)
        if name == "margin":
            return fn(scores, targets["z"][b], margin=cfg.margin)
        return fn(scores, targets["z"][b])

    def _rank_loss(self, scores: torch.Tensor, targets: dict[str, torch.Tensor], b: np.ndarray) -> torch.Tensor:
        loss = self._one_loss(self.config.loss, scores, targets, b)
        if self.config.aux_loss is not None and self.config.aux_weight > 0:
            loss = loss + self.config.aux_weight * self._one_loss(self.config.aux_loss, scores, targets, b)
        return loss

    def _train_fit(self, net: RankNet, member: int, rows: np.ndarray, targets: dict[str, torch.Tensor]) -> None:
        cfg = self.config
        n = rows.size
        rng = np.random.default_rng(self._member_seed(member) + 2)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.fit_lr, weight_decay=cfg.fit_weight_decay)
        use_weak = cfg.weak_reg > 0 and self._pre_rows is not None
        full = self._tensors(rows)
        best, since = float("inf"), 0
        net.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._member_seed(member) + 3)
            for _ in range(cfg.fit_epochs):
                batches = [np.arange(n)] if n <= cfg.fit_batch else np.array_split(rng.permutation(n), -(-n // cfg.fit_batch))
                epoch_loss = 0.0
                for b in batches:
                    x = tuple(t[b] if t is not None else None for t in full) if len(batches) > 1 else full
                    main, _ = net(*x)
                    loss = self._rank_loss(main, targets, b)
                    if use_weak:
                        idx = rng.integers(0, self._pre_rows.size, size=min(cfg.weak_reg_batch, self._pre_rows.size))
                        loss = loss + cfg.weak_reg * self._weak_loss(net, idx)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    epoch_loss += float(loss.detach())
                if epoch_loss < best - 1e-4 * abs(best):
                    best, since = epoch_loss, 0
                else:
                    since += 1
                    if since >= cfg.patience > 0:
                        break
        net.eval()

    # ------------------------------------------------------------------ scoring
    def _check_ready(self) -> None:
        if self._nets is None:
            raise RuntimeError("the predictor is untrained: call pretrain() or fit() first")

    @torch.no_grad()
    def _raw(self, rows: np.ndarray, store: FeatureStore | None = None) -> np.ndarray:
        """Main-head outputs ``[members, len(rows)]``."""
        out = np.empty((len(self._nets), rows.size), dtype=np.float64)
        for start in range(0, rows.size, 16384):
            x = self._tensors(rows[start:start + 16384], store)
            for m, net in enumerate(self._nets):
                out[m, start:start + 16384] = net(*x)[0].double().cpu().numpy()
        return out

    def _compute_scale(self, rows: np.ndarray) -> np.ndarray:
        # members learn scores on arbitrary scales (ranking losses are shift-invariant); put them
        # on a common one, measured on a fixed reference set, so that averaging is fair
        ref = rows
        if self._pre_rows is not None:
            rng = np.random.default_rng(self.config.seed)
            pick = rng.choice(self._pre_rows.size, size=min(2048, self._pre_rows.size), replace=False)
            ref = np.concatenate([rows, self._pre_rows[np.sort(pick)]])
        raw = self._raw(ref)
        mu = raw.mean(axis=1)
        sd = raw.std(axis=1)
        return np.stack([mu, np.where(sd > 0, sd, 1.0)], axis=1)

    def _member_scores_rows(self, rows: np.ndarray, store: FeatureStore | None = None) -> np.ndarray:
        if rows.size == 0:
            return np.zeros((len(self._nets), 0))
        raw = self._raw(rows, store)
        return (raw - self._scale[:, :1]) / self._scale[:, 1:]

    def _blended(self, archs: Sequence[Any], cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Score and spread: the ensemble's, or after a trust blend, the blend and the tuned part's spread."""
        self._check_ready()
        if isinstance(archs, (str, dict)):
            raise TypeError("pass a list of architectures, not a single one")
        # cache=False: candidates seen once (prior samples of a huge or continuous space) are
        # encoded in a throw-away store instead of growing the shared one for good
        store = None if cache else FeatureStore(self.space, self.config.features, graph=self.config.encoder == "gcn")
        rows = self._rows(archs) if cache else store.rows(list(archs))
        s = self._member_scores_rows(rows, store)
        mean, std = s.mean(axis=0), s.std(axis=0)
        if self._blend is None or rows.size == 0:
            return mean, std
        w, sc = self._blend, self._comp_scale
        out = w[0] * (mean - sc[0, 0]) / sc[0, 1]
        if w[1] > 0 or w[2] > 0:
            prior, weak = self._prior_inputs(rows, store)
            out = out + w[1] * (self._mixed(prior, weak) - sc[1, 0]) / sc[1, 1]
            if w[2] > 0:
                out = out + w[2] * (self._tree.predict(self._tree_x(rows, weak, store)) - sc[2, 0]) / sc[2, 1]
        cut = sc[3, 0] if sc.shape[0] > len(COMPONENTS) else np.inf
        tuned_z = (mean - sc[0, 0]) / sc[0, 1]
        short = tuned_z >= cut
        if short.any():  # first, in the fine-tuned network's order; arctan keeps the rest below
            out = np.arctan(out)
            out[short] = np.pi + np.arctan(tuned_z[short])
        return out, w[0] * std / sc[0, 1]

    def score(self, archs: Sequence[Any], cache: bool = True) -> np.ndarray:
        """Predicted merit of each architecture (higher = better): the ensemble mean, or the trust blend.

        ``cache=False`` encodes ``archs`` without keeping their features (one-off candidates)."""
        return self._blended(archs, cache)[0]

    def score_std(self, archs: Sequence[Any], cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Score (as :meth:`score`) and the spread of the fine-tuned members (scaled by their blend weight)."""
        return self._blended(archs, cache)

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
        new = copy.copy(self)
        new.config = copy.deepcopy(self.config)
        new.weak_names = list(self.weak_names)
        new._pre_states = copy.deepcopy(self._pre_states)
        new._nets = copy.deepcopy(self._nets)
        new._scale = None if self._scale is None else self._scale.copy()
        new._pre_pos = None
        return new

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["device"] = str(self.device)
        # row numbers index this process's feature store: another process (or a fresh store)
        # numbers the archs differently, so they are rebuilt from the archs on unpickling
        state["_pre_rows"] = None
        state["_pre_pos"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        state["device"] = torch.device(state["device"])
        self.__dict__.update(state)
        if self._pre_archs is not None:
            self._pre_rows = self._rows(self._pre_archs)

    #: what :meth:`save` writes (read back with ``torch.load(weights_only=True)``: nothing in it can run code)
    FILE_KIND = "ray_nasrank.RankPredictor/2"

    def _to_state(self) -> dict:
        """Config, space, weights and pretraining data as plain values, arrays and tensors."""
        return {
            "config": asdict(self.config),
            "space": self.space,
            "weak_names": list(self.weak_names),
            "pre_archs": self._pre_archs,
            "pre_weak": self._pre_weak,
            "pre_target": self._pre_target,
            "pre_states": self._pre_states,
            "states": None if self._nets is None else [n.state_dict() for n in self._nets],
            "scale": self._scale,
            "fitted": self.fitted,
            "trust": {"blend": self._blend, "scale": self._comp_scale, "tree": self._tree,
                      "mix": self._mix, "mix_scale": self._mix_scale},
        }

    @classmethod
    def _from_state(cls, state: Any, device: str | None = None) -> "RankPredictor":
        """The predictor :meth:`_to_state` described (checked: a wrong field is a ``ValueError``)."""
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise ValueError("not the state of a RankPredictor")
        cfg = dict(state["config"])
        if device is not None:
            cfg["device"] = device
        if not isinstance(state.get("space"), SearchSpace):
            raise ValueError("the state of a RankPredictor has no search space")
        p = cls(state["space"], PredictorConfig.from_dict(cfg))
        p.weak_names = [str(n) for n in state.get("weak_names") or []]
        if state.get("pre_archs") is not None:
            p._pre_archs = [p.space.validate(a) for a in state["pre_archs"]]
            p._pre_rows = p._rows(p._pre_archs)
            p._pre_weak, p._pre_target = state.get("pre_weak"), state.get("pre_target")
        p._pre_states = state.get("pre_states")
        if state.get("states") is not None:
            p._nets = []
            for m, sd in enumerate(state["states"]):
                net = p._new_net(m)
                net.load_state_dict(sd)
                net.eval()
                p._nets.append(net)
        p._scale = state.get("scale")
        p.fitted = bool(state.get("fitted"))
        if p._pre_states is not None and p._pre_rows is not None:
            p._fill_prior()
        trust = state.get("trust") or {}
        p._blend, p._comp_scale, p._tree = trust.get("blend"), trust.get("scale"), trust.get("tree")
        p._mix, p._mix_scale = trust.get("mix"), trust.get("mix_scale")
        return p

    def save(self, path: str | os.PathLike) -> Path:
        """Write config, space, weights and pretraining data atomically, as tensors and JSON that
        ``torch.load(weights_only=True)`` reads (:mod:`ray_nasrank._state`)."""
        from ray_nasrank._state import write_torch

        return write_torch(path, self.FILE_KIND, self._to_state())

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "RankPredictor":
        """Read a file written by :meth:`save` (optionally onto another ``device``).

        Nothing in the file can run code: it is read with ``torch.load(weights_only=True)`` and
        names no class but the package's own (checked before any object is built).

        Raises:
            ValueError: not a saved RankPredictor, or a corrupt one (the message names the file).
        """
        from ray_nasrank._state import StateError, read_torch

        try:
            return cls._from_state(read_torch(path, cls.FILE_KIND), device)
        except StateError as e:
            raise ValueError(f"{e}; it is not a saved RankPredictor") from None
        except (ValueError, TypeError, KeyError, RuntimeError) as e:
            raise ValueError(f"{str(path)!r} is not a valid saved RankPredictor ({type(e).__name__}: {e})") from None

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else ("pretrained" if self._pre_states else "untrained")
        return f"RankPredictor({self.space!r}, encoder={self.config.encoder!r}, loss={self.config.loss!r}, {state})"


def _sd(x: np.ndarray) -> float:
    sd = float(np.std(x))
    return sd if sd > 0 else 1.0


def _standardise(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``x`` in units of ``ref``'s mean and standard deviation."""
    return (x - ref.mean()) / _sd(ref)


__all__ = ["PredictorConfig", "RankPredictor"]
