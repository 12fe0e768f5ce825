"""Weight-sharing supernet training and evaluation, for any :class:`~ray_nasrank.nn.Supernet`:
NAS-Bench-201's (:class:`~ray_nasrank.nn.NB201Supernet`) and your own model family's
(:class:`~ray_nasrank.nn.ChoiceSupernet`) go down the same path.

* :func:`train_supernet` with :class:`SupernetTrainConfig`: SPOS (uniform single path), optionally with
  :class:`LandmarkRegularizer` and/or :class:`RankDistiller` (RD-NAS; teacher :class:`ParamCountTeacher`
  or :class:`ProxyTeacher`). The samplers default to NB201; for your own family pass
  ``UniformSampler(space=sn.space)``, ``space=`` to the landmarks and a :class:`DistancePairSampler`;
* :class:`FewShotSupernet`: sub-supernets split by the value of one decision (an NB201 edge's op,
  a choice of your family);
* :func:`evaluate_configs`: accuracy and loss of subnets with per-subnet BN recalibration; a
  supernet that scores many subnets at once does so (NB201's
  :class:`~ray_nasrank.nn.BatchedEvaluator`), :func:`evaluate_subnet` is the one-subnet reference;
* :class:`SupernetWeakLabels`: the weak labels of any config, in the form the strategies take.

No Ray or Optuna import: this runs on a bare GPU machine. The ``ray-nasrank bench supernet`` run
(:func:`ray_nasrank.benchmarks.bench_supernet`) lives with the other benchmarks.
"""

from .evaluate import BatchedEvaluator, evaluate_configs, evaluate_subnet, iso_representatives
from .fewshot import FewShotSupernet, parse_split
from .regularizers import LandmarkRegularizer, ParamCountTeacher, ProxyTeacher, RankDistiller, cosine_ramp
from .sampling import DistancePairSampler, FairSampler, GroupDistancePairSampler, UniformSampler, group_distance
from .train import SupernetTrainConfig, train_supernet
from .weak import SupernetWeakLabels

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
