"""The ensemble of ranking networks: pretraining on weak labels, fine-tuning on true labels, raw scores.

Each member is a :class:`~ray_nasrank.predictor.models.RankNet` with its own seed; they differ
only by initialisation and batch order, and their spread is the uncertainty a search explores
with. :class:`RankEnsemble` keeps the pretraining data (so every fine-tuning starts from the
pretrained weights) and the pretrained ensemble's guesses of the weak labels (the prior that
:mod:`ray_nasrank.predictor.blend` blends with the fine-tuned network).

>>> from ray_nasrank.spaces import NB201Space
>>> import numpy as np
>>> from ray_nasrank.predictor.config import PredictorConfig, PretrainConfig
>>> space = NB201Space()
>>> archs = space.sample_many(100, rng=0, unique=True)
>>> weak = np.array([a.count("nor_conv_3x3") for a in archs], dtype=float)
>>> ens = RankEnsemble(space, PredictorConfig(ensemble=2, pretrain=PretrainConfig(epochs=2)))
>>> ens.pretrain(archs, {"convs": weak}).member_scores(ens.rows(archs[:3])).shape
(2, 3)
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch

from ray_nasrank.metrics import acenas_relevance
from ray_nasrank.spaces import SearchSpace

from .config import PredictorConfig
from .features import FeatureStore, feature_store
from .losses import get_loss
from .models import RankNet, build_net
from .weak import WeakInput, as_weak_matrix, combined_target, normalise_weak

#: spaces up to this size get their isomorphism classes enumerated (for label sharing)
_ISO_MAX_SIZE = 200_000
_ISO_CACHE: dict[SearchSpace, dict | None] = {}
#: architectures encoded and scored per batch
_CHUNK = 16384


def iso_groups(space: SearchSpace) -> dict | None:
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


def rank_targets(signed: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    """Fine-tuning targets of labels ``signed`` (higher is better): graded AceNAS relevance for
    LambdaRank (``rel``, the labelled subset's q20 grades) and z-scores for the other losses (``z``)."""
    return {
        "rel": torch.as_tensor(acenas_relevance(signed), dtype=torch.float32, device=device),
        "z": torch.as_tensor((signed - signed.mean()) / signed.std(), dtype=torch.float32, device=device),
    }


class RankEnsemble:
    """The members of a :class:`~ray_nasrank.predictor.RankPredictor` and the data they were trained on.

    Architectures are addressed by their rows in the space's shared
    :class:`~ray_nasrank.predictor.features.FeatureStore` (:meth:`rows`).

    Args:
        space: the space of the architectures.
        config: the settings.

    Raises:
        ValueError: ``config.features`` the space cannot encode.
    """

    def __init__(self, space: SearchSpace, config: PredictorConfig) -> None:
        self.space = space
        self.config = config
        self.device = torch.device(config.device)
        self.store  # builds the encodings' store now so bad features fail here
        self.weak_names: list[str] = []
        self.pre_archs: list[tuple] | None = None
        self.pre_rows: np.ndarray | None = None  # store rows of the pretraining archs
        self.pre_weak: np.ndarray | None = None  # normalised weak labels [n, m] (NaN = missing)
        self.pre_target: np.ndarray | None = None  # combined weak target [n]
        self.pre_states: list[dict] | None = None
        #: (prior [n], weak [n, m]) of the pretraining archs, a missing value read from the pretrained members
        self.pre_fill: tuple[np.ndarray, np.ndarray] | None = None
        self._pre_pos: dict[int, int] | None = None  # store row -> position among the pretraining archs
        self.nets: list[RankNet] | None = None
        self.scale: np.ndarray | None = None  # per member (mean, std) of scores for averaging
        self.fitted = False

    # ------------------------------------------------------------------ features
    @property
    def store(self) -> FeatureStore:
        return feature_store(self.space, self.config.features, graph=self.config.encoder == "gcn")

    def throwaway_store(self) -> FeatureStore:
        """A private store for architectures scored once (they must not grow the shared store for good)."""
        return FeatureStore(self.space, self.config.features, graph=self.config.encoder == "gcn")

    def tensors(self, rows: np.ndarray, store: FeatureStore | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        st = self.store if store is None else store
        flat = torch.from_numpy(st.flat[rows]).to(self.device)
        if self.config.encoder != "gcn":
            return flat, None, None
        return flat, torch.from_numpy(st.adj[rows]).to(self.device), torch.from_numpy(st.nodes[rows]).to(self.device)

    def rows(self, archs: Sequence[Any]) -> np.ndarray:
        """Rows of ``archs`` in the shared store (encoding the new ones)."""
        if isinstance(archs, (str, dict)):
            raise TypeError("pass a list of architectures, not a single one")
        return self.store.rows(list(archs))

    def new_net(self, member: int) -> RankNet:
        """Member ``member``'s network, freshly initialised from its seed."""
        st = self.store
        node_dim = st.nodes.shape[-1] if self.config.encoder == "gcn" else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.member_seed(member))
            net = build_net(self.config.encoder, st.flat_dim, node_dim, len(self.weak_names),
                            self.config.hidden, self.config.layers, self.config.dropout)
        return net.to(self.device)

    def member_seed(self, member: int) -> int:
        return int(self.config.seed) * 1009 + member * 7919 + 17

    # ------------------------------------------------------------------ pretraining
    def pretrain(self, archs: Sequence[Any], weak: WeakInput) -> "RankEnsemble":
        """Train every member on the weak labels of ``archs`` (dict of columns or 1-D/2-D array; NaN = missing)."""
        rows = self.rows(archs)
        if rows.size < 2:
            raise ValueError(f"pretraining needs at least 2 architectures, got {rows.size}")
        names, matrix = as_weak_matrix(weak, rows.size)
        norm = normalise_weak(matrix, self.config.pretrain.weak_transform)
        target = combined_target(norm)
        self.weak_names = names
        self.pre_rows, self.pre_weak, self.pre_target = rows, norm.astype(np.float32), target.astype(np.float32)
        self.pre_archs = [self.space.validate(a) for a in archs]
        nets = []
        for m in range(self.config.ensemble):
            net = self.new_net(m)
            self._train_pretrain(net, m)
            nets.append(net)
        self.pre_states = [copy.deepcopy(n.state_dict()) for n in nets]
        self.nets = nets
        self.fitted = False
        self.scale = self.compute_scale(np.empty(0, dtype=np.int64))
        self._pre_pos = None
        self.fill_prior()
        return self

    def _weak_loss(self, net: RankNet, idx: np.ndarray) -> torch.Tensor:
        """Masked MSE of the weak heads (multitask) and of the main head on the combined target."""
        rows = self.pre_rows[idx]
        flat, adj, nodes = self.tensors(rows)
        main, weak = net(flat, adj, nodes)
        tgt = torch.from_numpy(self.pre_target[idx]).to(self.device)
        ok = ~torch.isnan(tgt)
        loss = ((main - torch.nan_to_num(tgt)) ** 2 * ok).sum() / ok.sum().clamp(min=1)
        if self.config.pretrain.weak_target == "multitask":
            w = torch.from_numpy(self.pre_weak[idx]).to(self.device)
            okw = ~torch.isnan(w)
            loss = loss + ((weak - torch.nan_to_num(w)) ** 2 * okw).sum() / okw.sum().clamp(min=1)
        return loss

    def _train_pretrain(self, net: RankNet, member: int) -> None:
        pc = self.config.pretrain
        n = self.pre_rows.size
        rng = np.random.default_rng(self.member_seed(member))
        opt = torch.optim.Adam(net.parameters(), lr=pc.lr, weight_decay=pc.weight_decay)
        steps = pc.epochs * max(1, -(-n // pc.batch))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        net.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.member_seed(member) + 1)
            for _ in range(pc.epochs):
                perm = rng.permutation(n)
                for start in range(0, n, pc.batch):
                    loss = self._weak_loss(net, perm[start:start + pc.batch])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
        net.eval()

    # ------------------------------------------------------------------ fine-tuning
    def fine_tune(self, rows: np.ndarray, signed: np.ndarray, groups: np.ndarray | None = None,
                  weights: np.ndarray | None = None) -> None:
        """Replace the members by copies of the pretrained ones fine-tuned on ``signed`` labels (higher is better).

        With ``groups`` (one id ``0..k-1`` per row) the ranking loss compares rows of one group
        only, group ``g`` weighing ``weights[g]`` (e.g. one group per fidelity: configs observed
        at different fidelities are never ranked against each other).
        """
        if self.pre_states is not None and self.config.ensemble > len(self.pre_states):
            raise ValueError(f"config.ensemble={self.config.ensemble} but only {len(self.pre_states)} members were pretrained")
        if groups is None:
            targets = rank_targets(signed, self.device)
        else:
            groups = np.asarray(groups, dtype=np.int64)
            parts = [rank_targets(signed[groups == g], self.device) for g in range(len(weights))]
            targets = {k: torch.empty(rows.size, dtype=torch.float32, device=self.device) for k in ("rel", "z")}
            for g, part in enumerate(parts):
                mask = torch.as_tensor(groups == g, device=self.device)
                for k in ("rel", "z"):
                    targets[k][mask] = part[k]
            targets["group"] = groups
            targets["group_weight"] = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.nets = [self.tuned_net(m, rows, targets) for m in range(self.config.ensemble)]
        self.fitted = True
        self.scale = self.compute_scale(rows)

    def tuned_net(self, member: int, rows: np.ndarray, targets: dict[str, torch.Tensor]) -> RankNet:
        """Member ``member`` fine-tuned on ``rows``, from its pretrained weights (or a fresh init)."""
        net = self.new_net(member)
        if self.pre_states is not None:
            net.load_state_dict(self.pre_states[member])
        self._train_fit(net, member, rows, targets)
        return net

    def iso_expand(self, archs: list, rows: np.ndarray, signed: np.ndarray,
                   exclude: Sequence[Any] = ()) -> tuple[np.ndarray, np.ndarray]:
        """``rows``/``signed`` plus up to ``iso_per_label`` unlabelled isomorphs per labelled class,
        each with its class's mean label; ``exclude`` (e.g. held-out archs) are never added."""
        groups = iso_groups(self.space)
        if groups is None:
            return rows, signed
        per_label = self.config.finetune.iso_per_label
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
            if len(members) > per_label:
                pick = rng.choice(len(members), size=per_label, replace=False)
                members = [members[i] for i in sorted(pick)]
            for a in members:
                seen.add(a)
                extra_archs.append(a)
                extra_y.append(float(np.mean(vals)))
        if not extra_archs:
            return rows, signed
        return np.concatenate([rows, self.rows(extra_archs)]), np.concatenate([signed, extra_y])

    def _one_loss(self, name: str, scores: torch.Tensor, targets: dict[str, torch.Tensor],
                  b: np.ndarray) -> torch.Tensor:
        ft = self.config.finetune
        fn = get_loss(name)
        if name == "lambdarank":
            return fn(scores, targets["rel"][b], sigma=ft.sigma, k=ft.ndcg_k)
        if name == "ranknet":
            return fn(scores, targets["z"][b], sigma=ft.sigma)
        if name == "margin":
            return fn(scores, targets["z"][b], margin=ft.margin)
        return fn(scores, targets["z"][b])

    def _rank_loss(self, scores: torch.Tensor, targets: dict[str, Any], b: np.ndarray) -> torch.Tensor:
        if "group" in targets:  # only rows of one group are ranked against each other
            gid = targets["group"][b]
            loss, total = scores.sum() * 0.0, 0.0
            for g in np.unique(gid):
                m = gid == g
                if m.sum() < 2:
                    continue
                w = float(targets["group_weight"][g])
                loss = loss + w * self._ungrouped_loss(scores[torch.as_tensor(m, device=scores.device)], targets, b[m])
                total += w
            return loss / total if total > 0 else loss
        return self._ungrouped_loss(scores, targets, b)

    def _ungrouped_loss(self, scores: torch.Tensor, targets: dict[str, Any], b: np.ndarray) -> torch.Tensor:
        ft = self.config.finetune
        loss = self._one_loss(ft.loss, scores, targets, b)
        if ft.aux_loss is not None and ft.aux_weight > 0:
            loss = loss + ft.aux_weight * self._one_loss(ft.aux_loss, scores, targets, b)
        return loss

    def _train_fit(self, net: RankNet, member: int, rows: np.ndarray, targets: dict[str, torch.Tensor]) -> None:
        ft = self.config.finetune
        n = rows.size
        rng = np.random.default_rng(self.member_seed(member) + 2)
        opt = torch.optim.Adam(net.parameters(), lr=ft.lr, weight_decay=ft.weight_decay)
        use_weak = ft.weak_reg > 0 and self.pre_rows is not None
        full = self.tensors(rows)
        best, since = float("inf"), 0
        net.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.member_seed(member) + 3)
            for _ in range(ft.epochs):
                batches = [np.arange(n)] if n <= ft.batch else np.array_split(rng.permutation(n), -(-n // ft.batch))
                epoch_loss = 0.0
                for b in batches:
                    x = tuple(t[b] if t is not None else None for t in full) if len(batches) > 1 else full
                    main, _ = net(*x)
                    loss = self._rank_loss(main, targets, b)
                    if use_weak:
                        idx = rng.integers(0, self.pre_rows.size, size=min(ft.weak_reg_batch, self.pre_rows.size))
                        loss = loss + ft.weak_reg * self._weak_loss(net, idx)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    epoch_loss += float(loss.detach())
                if epoch_loss < best - 1e-4 * abs(best):
                    best, since = epoch_loss, 0
                else:
                    since += 1
                    if since >= ft.patience > 0:
                        break
        net.eval()

    # ------------------------------------------------------------------ scores
    def check_ready(self) -> None:
        if self.nets is None:
            raise RuntimeError("the predictor is untrained: call pretrain() or fit() first")

    @torch.no_grad()
    def _raw(self, rows: np.ndarray, store: FeatureStore | None = None) -> np.ndarray:
        """Main-head outputs ``[members, len(rows)]``."""
        out = np.empty((len(self.nets), rows.size), dtype=np.float64)
        for start in range(0, rows.size, _CHUNK):
            x = self.tensors(rows[start:start + _CHUNK], store)
            for m, net in enumerate(self.nets):
                out[m, start:start + _CHUNK] = net(*x)[0].double().cpu().numpy()
        return out

    def compute_scale(self, rows: np.ndarray) -> np.ndarray:
        """Per member ``(mean, std)`` of its scores on ``rows`` plus a fixed sample of the pretraining archs.

        Members learn scores on arbitrary scales (ranking losses are shift-invariant); putting them
        on a common one, measured on a fixed reference set, makes averaging them fair.
        """
        ref = rows
        if self.pre_rows is not None:
            rng = np.random.default_rng(self.config.seed)
            pick = rng.choice(self.pre_rows.size, size=min(2048, self.pre_rows.size), replace=False)
            ref = np.concatenate([rows, self.pre_rows[np.sort(pick)]])
        raw = self._raw(ref)
        mu = raw.mean(axis=1)
        sd = raw.std(axis=1)
        return np.stack([mu, np.where(sd > 0, sd, 1.0)], axis=1)

    def member_scores(self, rows: np.ndarray, store: FeatureStore | None = None) -> np.ndarray:
        """Each member's standardised scores of store rows, ``[members, len(rows)]``."""
        if rows.size == 0:
            return np.zeros((len(self.nets), 0))
        raw = self._raw(rows, store)
        return (raw - self.scale[:, :1]) / self.scale[:, 1:]

    # ------------------------------------------------------------------ the pretrained prior
    @torch.no_grad()
    def pretrained_outputs(self, rows: np.ndarray, store: FeatureStore | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The pretrained ensemble's mean main-head and weak-head outputs, ``[n]`` and ``[n, weak]``."""
        nets = []
        for m, state in enumerate(self.pre_states):
            net = self.new_net(m)
            net.load_state_dict(state)
            nets.append(net.eval())
        main = np.zeros(rows.size)
        heads = np.zeros((rows.size, len(self.weak_names)))
        for start in range(0, rows.size, _CHUNK):
            x = self.tensors(rows[start:start + _CHUNK], store)
            for net in nets:
                a, b = net(*x)
                main[start:start + _CHUNK] += a.double().cpu().numpy() / len(nets)
                heads[start:start + _CHUNK] += b[:, :len(self.weak_names)].double().cpu().numpy() / len(nets)
        if self.config.pretrain.weak_target != "multitask":  # no weak heads were trained: every column reads the prior
            heads[:] = main[:, None]
        return main, heads

    def fill_prior(self) -> None:
        """Prior and weak inputs of the pretraining archs; a missing (NaN) value is the pretrained members' guess."""
        main, heads = self.pretrained_outputs(self.pre_rows)
        prior = np.where(np.isnan(self.pre_target), main, self.pre_target)
        weak = np.where(np.isnan(self.pre_weak), heads, self.pre_weak)
        self.pre_fill = (prior, weak)

    def prior_inputs(self, rows: np.ndarray, store: FeatureStore | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(prior [n], weak [n, m])`` of store rows: the weak labels where pretrained on, else predicted."""
        if self._pre_pos is None:
            self._pre_pos = {int(r): i for i, r in enumerate(self.pre_rows)}
        shared = rows
        if store is not None:  # a throw-away store: its archs' rows in the shared store, -1 where absent
            arch_of = {r: a for a, r in store._index.items()}
            shared = np.array([self.store._index.get(arch_of[int(r)], -1) for r in rows], dtype=np.int64)
        pos = np.array([self._pre_pos.get(int(r), -1) for r in shared], dtype=np.int64)
        known = pos >= 0
        prior = np.empty(rows.size)
        weak = np.empty((rows.size, len(self.weak_names)))
        prior[known], weak[known] = self.pre_fill[0][pos[known]], self.pre_fill[1][pos[known]]
        if not known.all():
            prior[~known], weak[~known] = self.pretrained_outputs(rows[~known], store)
        return prior, weak

    def reference_rows(self) -> np.ndarray:
        """A fixed sample of the pretraining archs on which rankers' scores are standardised."""
        rng = np.random.default_rng(self.config.seed)
        pick = rng.choice(self.pre_rows.size, size=min(2048, self.pre_rows.size), replace=False)
        return self.pre_rows[np.sort(pick)]

    # ------------------------------------------------------------------ copies
    def clone(self) -> "RankEnsemble":
        """An independent copy; pretraining data (read-only) is shared, weights are copied."""
        new = copy.copy(self)
        new.config = copy.deepcopy(self.config)
        new.weak_names = list(self.weak_names)
        new.pre_states = copy.deepcopy(self.pre_states)
        new.nets = copy.deepcopy(self.nets)
        new.scale = None if self.scale is None else self.scale.copy()
        new._pre_pos = None
        return new

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["device"] = str(self.device)
        # row numbers index this process's feature store: another process (or a fresh store)
        # numbers the archs differently, so they are rebuilt from the archs on unpickling
        state["pre_rows"] = None
        state["_pre_pos"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        state["device"] = torch.device(state["device"])
        self.__dict__.update(state)
        if self.pre_archs is not None:
            self.pre_rows = self.rows(self.pre_archs)


__all__ = ["RankEnsemble", "iso_groups", "rank_targets"]
