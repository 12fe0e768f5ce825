"""Weight-sharing supernet training and evaluation: NAS-Bench-201 and your own model family.

* :func:`train_supernet` with :class:`SupernetTrainConfig`: SPOS (uniform single path), optionally with
  :class:`LandmarkRegularizer` and/or :class:`RankDistiller` (RD-NAS);
* :class:`FewShotSupernet`: sub-supernets split by the op of one edge;
* :class:`BatchedEvaluator`: weak labels of many subnets per data batch with per-arch BN
  recalibration; :func:`evaluate_subnet` is the one-arch reference;
* your own family (a :class:`~ray_nasrank.nn.ChoiceSupernet`): the same :func:`train_supernet`
  with ``UniformSampler(space=sn.space)`` (landmarks with ``space=``, RD-NAS with a
  :class:`ProxyTeacher` and a :class:`DistancePairSampler`), :class:`FewShotChoiceSupernet`
  split on one choice, :func:`evaluate_configs` with per-subnet BN recalibration and
  :class:`SupernetWeakLabels` serving the weak labels of any config.

No Ray or Optuna import: this runs on a bare GPU machine. The ``ray-nasrank bench supernet`` run
(:func:`ray_nasrank.benchmarks.bench_supernet`) lives with the other benchmarks.
"""

from .choice import FewShotChoiceSupernet, SupernetWeakLabels, evaluate_configs
from .evaluate import BatchedEvaluator, evaluate_subnet, iso_representatives
from .fewshot import FewShotSupernet, parse_split
from .regularizers import LandmarkRegularizer, ParamCountTeacher, ProxyTeacher, RankDistiller, cosine_ramp
from .sampling import DistancePairSampler, FairSampler, GroupDistancePairSampler, UniformSampler, group_distance
from .train import SupernetTrainConfig, train_supernet

__all__ = [
    "BatchedEvaluator",
    "evaluate_subnet",
    "iso_representatives",
    "FewShotSupernet",
    "parse_split",
    "LandmarkRegularizer",
    "RankDistiller",
    "ParamCountTeacher",
    "ProxyTeacher",
    "DistancePairSampler",
    "FewShotChoiceSupernet",
    "SupernetWeakLabels",
    "evaluate_configs",
    "cosine_ramp",
    "GroupDistancePairSampler",
    "UniformSampler",
    "FairSampler",
    "group_distance",
    "SupernetTrainConfig",
    "train_supernet",
]
