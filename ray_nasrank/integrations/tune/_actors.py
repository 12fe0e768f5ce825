"""Supernet weak labels served by a named Ray actor.

One :class:`SupernetActor` per cluster (or one per node) trains or loads a weight-sharing
supernet and answers ``weak_labels(archs)``; searchers on the driver ask it for their prior and
use a zero-cost fallback while it reports ``ready() == False``. Weights travel through Ray's
object store (``ray.put(state_dict)``), so further actors load them without copies per call.

Resource sizing matters: an actor holding the CPUs a trial needs makes Tune wait forever without
a warning (Tune checks the cluster's *total* resources, not the available ones).
:func:`get_or_create_supernet_actor` refuses to create an actor that would leave less than one
trial's worth of CPUs/GPUs free.

Example::

    actor = get_or_create_supernet_actor("nb201-supernet", labels=weak_df, trial_cpus=1)
    ray.get(actor.ready.remote())                     # True: labels were given
    ray.get(actor.weak_labels.remote([arch1, arch2]))  # numpy array
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping, Sequence

import numpy as np
import ray

from ray_nasrank.spaces import Arch, NB201Space

logger = logging.getLogger(__name__)

DEFAULT_NAME = "ray-nasrank-supernet"
DEFAULT_NAMESPACE = "ray_nasrank"


class _SupernetActorImpl:
    """The actor's body (see :data:`SupernetActor`).

    Sources of weak labels, any one of:

    - ``labels``: precomputed weak labels (a DataFrame or dict with ``arch`` NB201 strings and
      ``weak_acc``, e.g. the ``weak_labels.parquet`` of ``ray-nasrank bench supernet``);
    - ``weights``: a supernet ``state_dict`` (or an ``ObjectRef`` to one, resolved by Ray)
      plus ``supernet_config``: loaded, then subnets are evaluated on ``dataset``;
    - ``train=True``: the supernet is trained in a background thread; ``ready()`` turns True
      when training ends, and ``info()["epochs_done"]`` counts its finished epochs meanwhile.

    The supernet is NB201's (shape from ``supernet_config``) unless ``supernet`` is given, any
    :class:`~ray_nasrank.nn.Supernet` (a user's :class:`~ray_nasrank.nn.ChoiceSupernet`, a
    :class:`~ray_nasrank.supernet.FewShotSupernet`): then archs are archs or configs of its
    space and training is SPOS over that space. Either way each subnet is scored after its own
    BN recalibration (:func:`~ray_nasrank.supernet.evaluate_configs`). ``dataset`` is a dataset name of
    :func:`~ray_nasrank.data.load_dataset` or a :class:`~ray_nasrank.data.DatasetSplits` (e.g.
    from ``from_torch_dataset``: your own data).
    """

    def __init__(self, labels: Any = None, weights: Mapping | None = None,
                 supernet_config: Mapping | None = None, train: bool = False,
                 train_config: Mapping | None = None, dataset: Any = "digits",
                 eval_config: Mapping | None = None, seed: int = 0, num_threads: int = 1,
                 supernet: Any = None) -> None:
        import torch

        # the actor holds a fraction of a CPU: torch must not spread over every core of the node
        torch.set_num_threads(max(1, int(num_threads)))
        self._user_supernet = _check_user_supernet(supernet, supernet_config)
        self.space = NB201Space() if supernet is None else supernet.space
        self.dataset = dataset
        self.seed = int(seed)
        self.supernet_config = dict(supernet_config or {})
        self.train_config = dict(train_config or {})
        self.eval_config = dict(eval_config or {})
        self._labels: dict[Arch, float] | None = None
        self._supernet = None
        self._splits = None
        self._epochs_done = 0
        self._error: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.train_seconds: float | None = None
        self.train_history: dict | None = None
        if sum(x is not None and x is not False for x in (labels, weights, train or None)) > 1:
            raise ValueError("give exactly one of labels=, weights= or train=True")
        if labels is not None:
            self.load_labels(labels)
        elif weights is not None:
            self.load(weights)
        elif train:
            self.train()

    # ------------------------------------------------------------------ state
    def ready(self) -> bool:
        """True once weak labels can be served (labels loaded, or a supernet trained/loaded)."""
        if self._error is not None:
            raise RuntimeError(f"supernet actor failed: {self._error}")
        with self._lock:
            return self._labels is not None or self._supernet is not None

    def info(self) -> dict:
        """Where the actor runs and what it serves (for logs and tests)."""
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "ready": self._labels is not None or self._supernet is not None,
            "source": "labels" if self._labels is not None else ("supernet" if self._supernet is not None else None),
            "training": self._thread is not None and self._thread.is_alive(),
            "train_seconds": self.train_seconds,
            "epochs_done": self._epochs_done,
            "error": self._error,
        }

    def load_labels(self, labels: Any) -> int:
        """Serve precomputed weak labels: DataFrame/dict with ``arch`` and ``weak_acc``."""
        import pandas as pd

        df = labels if isinstance(labels, pd.DataFrame) else pd.DataFrame(dict(labels))
        for col in ("arch", "weak_acc"):
            if col not in df.columns:
                raise ValueError(f"weak labels need columns 'arch' and 'weak_acc'; got {list(df.columns)}")
        table = {}
        for a, v in zip(df["arch"], df["weak_acc"]):
            table[self.space.validate(a)] = float(v)
        with self._lock:
            self._labels = table
        return len(table)

    # ------------------------------------------------------------------ queries
    def weak_labels(self, archs: Sequence[Any]) -> np.ndarray:
        """Weak label of each arch (higher is better); raises if not ready."""
        if not self.ready():
            raise RuntimeError("supernet actor is not ready yet: poll ready() or use a fallback")
        archs = [self.space.validate(a) for a in archs]
        if self._labels is not None:
            missing = [a for a in archs if a not in self._labels]
            if missing:
                raise KeyError(f"no weak label for {len(missing)} arch(s), e.g. {self.space.to_string(missing[0])!r}")
            return np.array([self._labels[a] for a in archs], dtype=np.float64)
        return self._evaluate(archs)

    def wait(self, timeout_s: float = 600.0) -> bool:
        """Block until ready (or the timeout); returns ``ready()``."""
        deadline = time.monotonic() + timeout_s
        while not self.ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.ready()

    # ------------------------------------------------------------------ supernet
    def _build_supernet(self):
        if self._user_supernet is not None:
            import copy

            return copy.deepcopy(self._user_supernet)
        from ray_nasrank.nn import NB201Supernet

        splits = self._data()
        cfg = {"channels": 8, "cells_per_stage": 1, "in_channels": splits.in_channels,
               "num_classes": splits.num_classes, **self.supernet_config}
        return NB201Supernet(**cfg)

    def _data(self):
        if self._splits is None:
            from ray_nasrank.data import DatasetSplits, load_dataset

            self._splits = (self.dataset if isinstance(self.dataset, DatasetSplits)
                            else load_dataset(self.dataset, seed=self.seed))
        return self._splits

    def load(self, weights: Mapping) -> bool:
        """Load a supernet ``state_dict`` (an ``ObjectRef`` argument arrives resolved)."""
        if not isinstance(weights, Mapping):
            raise TypeError(f"weights must be a supernet state_dict, got {type(weights).__name__}")
        sn = self._build_supernet()
        sn.load_state_dict(dict(weights))
        with self._lock:
            self._supernet = sn.eval()
        return True

    def train(self, **train_config: Any) -> bool:
        """Start training a supernet in a background thread; ``ready()`` turns True at the end.

        Returns False if a training run is already going on.
        """
        if self._thread is not None and self._thread.is_alive():
            return False
        cfg = {**self.train_config, **train_config}
        self._thread = threading.Thread(target=self._train_thread, args=(cfg,), name="supernet-train", daemon=True)
        self._thread.start()
        return True

    def _train_thread(self, cfg: dict) -> None:
        t0 = time.perf_counter()
        try:
            sn = self._train(cfg)
        except Exception as e:  # reported by ready()
            logger.exception("supernet training failed")
            self._error = f"{type(e).__name__}: {e}"
            return
        self.train_seconds = time.perf_counter() - t0
        with self._lock:
            self._supernet = sn.eval()

    def _train(self, cfg: dict):
        # SPOS training of ray_nasrank.supernet (engineer B's loop); ``limit_train`` keeps a
        # CPU-sized run small. The supernet is only published (ready) once training ended.
        from ray_nasrank.supernet import SupernetTrainConfig, train_supernet

        cfg = dict(cfg)
        limit = cfg.pop("limit_train", None)
        splits = self._data()
        train = splits.train
        if limit is not None and isinstance(self.dataset, str):
            from ray_nasrank.data import load_dataset

            train = load_dataset(self.dataset, seed=self.seed, limit_train=int(limit)).train
        elif limit is not None:
            train = train.subset(int(limit))
        sn = self._build_supernet()
        sampler = None
        if self._user_supernet is not None:
            from ray_nasrank.supernet import UniformSampler

            sampler = UniformSampler(self.seed, space=self.space)

        def on_epoch(epoch: int, history: dict) -> None:
            self._epochs_done += 1

        self.train_history = train_supernet(sn, train, SupernetTrainConfig(**{"seed": self.seed, **cfg}),
                                            sampler=sampler, on_epoch=on_epoch)
        return sn

    def history(self) -> dict | None:
        """The training history of a supernet trained here (``None`` otherwise)."""
        return self.train_history

    def state_dict(self) -> dict:
        """The supernet's weights on CPU (``ray.put`` it to share with other actors)."""
        if self._supernet is None:
            raise RuntimeError("this actor serves precomputed labels or is still training: no weights to share")
        return {k: v.detach().cpu() for k, v in self._supernet.state_dict().items()}

    def _evaluate(self, archs: list[Arch]) -> np.ndarray:
        import torch

        from ray_nasrank.supernet import evaluate_configs

        splits = self._data()
        batch = int(self.eval_config.get("batch_size", 128))
        n_calib = int(self.eval_config.get("calib_batches", 2))
        n_eval = int(self.eval_config.get("eval_batches", 2))
        gen = torch.Generator().manual_seed(self.seed)
        calib = [x for x, _ in _take(splits.train.batches(batch, shuffle=True, generator=gen), n_calib)]
        evaluation = list(_take(splits.valid.batches(batch, shuffle=False), n_eval))
        size = min(len(x) for x in calib + [x for x, _ in evaluation])
        calib = [x[:size] for x in calib]
        evaluation = [(x[:size], y[:size]) for x, y in evaluation]
        with self._lock:
            # recalibration may write the shared BN buffers: one evaluation at a time
            acc, _ = evaluate_configs(self._supernet, archs, calib, evaluation)
        return np.asarray(acc, dtype=np.float64)


def _check_user_supernet(supernet: Any, supernet_config: Mapping | None) -> Any:
    if supernet is None:
        return None
    from ray_nasrank.nn import Supernet

    if not isinstance(supernet, Supernet):
        raise TypeError(f"supernet must be a ray_nasrank.nn.Supernet (e.g. a ChoiceSupernet or FewShotSupernet), "
                        f"got {type(supernet).__name__}")
    if supernet_config:
        raise ValueError("supernet_config shapes the NB201 supernet; a user supernet comes built (drop supernet_config)")
    return supernet


def _take(it, n: int):
    for i, item in enumerate(it):
        if i >= n:
            return
        yield item


#: the Ray actor class; ``SupernetActor.options(...).remote(...)`` or use
#: :func:`get_or_create_supernet_actor`, which checks resources first
SupernetActor = ray.remote(num_cpus=0.25, num_gpus=0)(_SupernetActorImpl)


def check_actor_resources(num_cpus: float, num_gpus: float = 0.0, trial_cpus: float = 1.0,
                          trial_gpus: float = 0.0, existing: bool = False) -> None:
    """Raise if an actor taking ``num_cpus``/``num_gpus`` would leave less than one trial's worth.

    Tune only compares a trial's request with the cluster's *total* resources, so an actor that
    holds the CPUs a trial needs makes a run wait forever without any message. ``existing``:
    the actor already runs (its resources are already taken from the available ones).

    Args:
        num_cpus: CPUs the actor takes.
        num_gpus: GPUs the actor takes.
        trial_cpus: CPUs one trial needs.
        trial_gpus: GPUs one trial needs.
        existing: the actor already runs.

    Raises:
        ValueError: a negative resource amount.
        RuntimeError: what is left after the actor is less than one trial's request (waits up
            to 10 s for the cluster to report its resources first).
    """
    if num_cpus < 0 or num_gpus < 0 or trial_cpus < 0 or trial_gpus < 0:
        raise ValueError("resource amounts must be >= 0")
    needs = [(kind, a, t) for kind, a, t in (("CPU", num_cpus, trial_cpus), ("GPU", num_gpus, trial_gpus))
             if a or t]

    def shortfall(avail: dict) -> tuple[str, float, float, float, float] | None:
        for kind, need_actor, need_trial in needs:
            have = float(avail.get(kind, 0.0))
            left = have if existing else have - need_actor
            if left + 1e-9 < need_trial:
                return kind, have, need_actor, need_trial, left
        return None

    # Right after ray.init the raylet may not have reported its resources yet (available reads
    # 0); give it a few seconds when the cluster's totals would be enough.
    short = shortfall(ray.available_resources())
    deadline = time.monotonic() + 10.0
    while short is not None and shortfall(ray.cluster_resources()) is None and time.monotonic() < deadline:
        time.sleep(0.25)
        short = shortfall(ray.available_resources())
    if short is not None:
        kind, have, need_actor, need_trial, left = short
        raise RuntimeError(
            f"not enough {kind}s: {have:g} available, the supernet actor takes "
            f"{0 if existing else need_actor:g}, which leaves {left:g} < {need_trial:g} per trial. "
            f"Tune would hang silently waiting for resources; lower the actor's num_{kind.lower()}s, "
            f"the trials' resources, or add nodes"
        )


def get_or_create_supernet_actor(name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE, *,
                                 num_cpus: float = 0.25, num_gpus: float = 0.0, trial_cpus: float = 1.0,
                                 trial_gpus: float = 0.0, node_id: str | None = None,
                                 lifetime: str | None = None, check_resources: bool = True,
                                 **actor_kwargs: Any):
    """The named supernet actor, created if it does not exist (``get_if_exists=True``).

    ``actor_kwargs`` go to the actor (``labels=``, ``weights=``, ``train=True``...). Resources
    are checked first (see :func:`check_actor_resources`). ``node_id`` pins the actor to a node;
    ``lifetime="detached"`` keeps it alive after the driver exits.

    Args:
        name: the actor's name.
        namespace: the actor's Ray namespace.
        num_cpus: CPUs the actor takes (keep it fractional so trials can run).
        num_gpus: GPUs the actor takes.
        trial_cpus: CPUs one trial needs (for the resource check).
        trial_gpus: GPUs one trial needs (for the resource check).
        node_id: pin the actor to this node (``None``: anywhere).
        lifetime: Ray actor lifetime (``"detached"`` or ``None``).
        check_resources: run :func:`check_actor_resources` first.
        **actor_kwargs: passed to the actor's constructor.

    Returns:
        The actor's handle.

    Raises:
        ValueError: ``name`` is empty or not a string, or a negative resource amount.
        RuntimeError: the actor would leave less than one trial's resources.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"actor name must be a non-empty string, got {name!r}")
    try:
        ray.get_actor(name, namespace=namespace)
        existing = True
    except ValueError:
        existing = False
    if check_resources:
        check_actor_resources(num_cpus, num_gpus, trial_cpus, trial_gpus, existing=existing)
    options: dict[str, Any] = {"name": name, "namespace": namespace, "get_if_exists": True,
                               "num_cpus": num_cpus, "num_gpus": num_gpus}
    if lifetime is not None:
        options["lifetime"] = lifetime
    if node_id is not None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    return SupernetActor.options(**options).remote(**actor_kwargs)


def supernet_actors_per_node(name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE, *,
                             num_cpus: float = 0.25, num_gpus: float = 0.0, trial_cpus: float = 1.0,
                             trial_gpus: float = 0.0, **actor_kwargs: Any) -> dict[str, Any]:
    """One named actor per alive node (``"{name}-{node_id[:12]}"``): ``{node_id: handle}``.

    Pass ``weights=ray.put(state_dict)`` to load one set of weights everywhere through the
    object store. Resources are checked for the whole set at once.

    Args:
        name: the actors' name prefix.
        namespace: the actors' Ray namespace.
        num_cpus: CPUs each actor takes.
        num_gpus: GPUs each actor takes.
        trial_cpus: CPUs one trial needs (for the resource check).
        trial_gpus: GPUs one trial needs (for the resource check).
        **actor_kwargs: passed to each actor's constructor.

    Returns:
        ``{node_id: actor handle}`` for every alive node.

    Raises:
        RuntimeError: no alive Ray node, or the actors would leave less than one trial's resources.
    """
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if not nodes:
        raise RuntimeError("no alive Ray node")
    fresh = 0
    for n in nodes:
        try:
            ray.get_actor(f"{name}-{n['NodeID'][:12]}", namespace=namespace)
        except ValueError:
            fresh += 1
    check_actor_resources(num_cpus * fresh, num_gpus * fresh, trial_cpus, trial_gpus, existing=fresh == 0)
    out = {}
    for n in nodes:
        node_id = n["NodeID"]
        out[node_id] = get_or_create_supernet_actor(
            f"{name}-{node_id[:12]}", namespace, num_cpus=num_cpus, num_gpus=num_gpus,
            node_id=node_id, check_resources=False, **actor_kwargs)
    return out
