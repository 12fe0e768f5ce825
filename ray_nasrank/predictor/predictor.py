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
import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ray_nasrank._config import known_fields
from ray_nasrank.metrics import acenas_relevance
from ray_nasrank.spaces import SearchSpace

from .features import FeatureStore, feature_store
from .losses import LOSSES, MIN_ITEMS, get_loss
from .models import RankNet, build_net
from .weak import WeakInput, as_weak_matrix, combined_target, normalise_weak


@dataclass
class PredictorConfig:
    """Settings of :class:`RankPredictor` (defaults: the NB201 recipe of docs/benchmarks/ranking.md)."""

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


class RankPredictor:
    """Rank architectures of ``space`` from weak labels plus a few true labels.

    ``pretrain(archs, weak)`` learns the weak labels; ``fit(archs, y)`` fine-tunes on the true
    labels with ``config.loss`` (always starting from the pretrained weights, or from a fresh
    initialisation without pretraining); ``score`` / ``score_std`` / ``top_k`` rank candidates.
    Everything is deterministic under ``config.seed``.
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
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
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
        rows = self._rows(archs)
        signed = y if mode == "max" else -y
        if self.config.iso_augment:
            rows, signed = self._iso_expand(archs, rows, signed)
        # graded AceNAS relevance (q20 of the labelled subset) for LambdaRank, z-scores otherwise
        targets = {
            "rel": torch.as_tensor(acenas_relevance(signed), dtype=torch.float32, device=self.device),
            "z": torch.as_tensor((signed - signed.mean()) / signed.std(), dtype=torch.float32, device=self.device),
        }
        nets = []
        for m in range(self.config.ensemble):
            net = self._new_net(m)
            if self._pre_states is not None:
                if m >= len(self._pre_states):
                    raise ValueError(f"config.ensemble={self.config.ensemble} but only {len(self._pre_states)} members were pretrained")
                net.load_state_dict(self._pre_states[m])
            self._train_fit(net, m, rows, targets)
            nets.append(net)
        self._nets = nets
        self.fitted = True
        self._scale = self._compute_scale(rows)
        return self

    def _iso_expand(self, archs: list, rows: np.ndarray, signed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        labelled = {self.space.validate(a) for a in archs}
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

    def _member_scores(self, archs: Sequence[Any], cache: bool = True) -> np.ndarray:
        self._check_ready()
        if isinstance(archs, (str, dict)):
            raise TypeError("pass a list of architectures, not a single one")
        # cache=False: candidates seen once (prior samples of a huge or continuous space) are
        # encoded in a throw-away store instead of growing the shared one for good
        store = None if cache else FeatureStore(self.space, self.config.features, graph=self.config.encoder == "gcn")
        rows = self._rows(archs) if cache else store.rows(list(archs))
        if rows.size == 0:
            return np.zeros((len(self._nets), 0))
        raw = self._raw(rows, store)
        return (raw - self._scale[:, :1]) / self._scale[:, 1:]

    def score(self, archs: Sequence[Any], cache: bool = True) -> np.ndarray:
        """Predicted merit of each architecture (higher = better), the ensemble mean.

        ``cache=False`` encodes ``archs`` without keeping their features (one-off candidates)."""
        return self._member_scores(archs, cache).mean(axis=0)

    def score_std(self, archs: Sequence[Any], cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and standard deviation of the members' (standardised) scores."""
        s = self._member_scores(archs, cache)
        return s.mean(axis=0), s.std(axis=0)

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
        return new

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["device"] = str(self.device)
        # row numbers index this process's feature store: another process (or a fresh store)
        # numbers the archs differently, so they are rebuilt from the archs on unpickling
        state["_pre_rows"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        state["device"] = torch.device(state["device"])
        self.__dict__.update(state)
        if self._pre_archs is not None:
            self._pre_rows = self._rows(self._pre_archs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write config, space, weights and pretraining data with ``torch.save`` (atomically)."""
        from ray_nasrank._io import atomic_write_bytes

        payload = {
            "format": "ray_nasrank.RankPredictor/1",
            "config": asdict(self.config),
            "space": self.space,
            "weak_names": self.weak_names,
            "pre_archs": self._pre_archs,
            "pre_weak": self._pre_weak,
            "pre_target": self._pre_target,
            "pre_states": self._pre_states,
            "states": None if self._nets is None else [n.state_dict() for n in self._nets],
            "scale": self._scale,
            "fitted": self.fitted,
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "RankPredictor":
        """Read a file written by :meth:`save` (optionally onto another ``device``)."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=False)
        if not isinstance(payload, dict) or payload.get("format") != "ray_nasrank.RankPredictor/1":
            raise ValueError(f"{str(path)!r} is not a saved RankPredictor")
        cfg = dict(payload["config"])
        if device is not None:
            cfg["device"] = device
        p = cls(payload["space"], PredictorConfig.from_dict(cfg))
        p.weak_names = list(payload["weak_names"])
        if payload["pre_archs"] is not None:
            p._pre_archs = list(payload["pre_archs"])
            p._pre_rows = p._rows(p._pre_archs)
            p._pre_weak, p._pre_target = payload["pre_weak"], payload["pre_target"]
        p._pre_states = payload["pre_states"]
        if payload["states"] is not None:
            p._nets = []
            for m, sd in enumerate(payload["states"]):
                net = p._new_net(m)
                net.load_state_dict(sd)
                net.eval()
                p._nets.append(net)
        p._scale = payload["scale"]
        p.fitted = bool(payload["fitted"])
        return p

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else ("pretrained" if self._pre_states else "untrained")
        return f"RankPredictor({self.space!r}, encoder={self.config.encoder!r}, loss={self.config.loss!r}, {state})"


__all__ = ["PredictorConfig", "RankPredictor"]
