"""The end-to-end experiment behind ``ray-nasrank search``.

supernet -> weak labels of the candidate pool (a shared supernet actor) -> ranker pretrained on
them -> Ray Tune trials training the ranker's top candidates from scratch, the ranker fine-tuned
between rounds -> ``results.parquet``, ``best.json`` and a report. Every step writes its
artefact into the output folder and is skipped when the artefact exists, so re-running on the
same folder resumes (the Tune step through ``Tuner.restore``).

``PipelineConfig(space=...)`` names the model family searched: a built-in one (``nb201``, the
default) or the user's own, ``MODULE:FUNCTION`` (:func:`ray_nasrank.families.load_family` reads
what that function returns: a ``ModelFamily``, a ``ChoiceSupernet`` or a ``(param_space,
model_fn)`` pair). The pipeline uses what the family provides: its supernet, intrinsic labels
or zero-cost proxies for the weak labels, its network for every training.

Example::

    from ray_nasrank.pipeline import PipelineConfig, run_search

    res = run_search(PipelineConfig(dataset="digits", budget=4, concurrency=2), "runs/digits")
    print("\\n".join(res.summary_lines()))
"""

from ray_nasrank.families import RECIPE_KEYS, ModelFamily, SpaceError, family_from, load_family

from ._config import RUNTIME_KEYS, ConfigMismatchError, PipelineConfig, load_config
from ._run import SearchResult, run_search
from ._rundir import RunDirError, RunDirLockedError
from ._steps import ARTEFACTS

__all__ = ["PipelineConfig", "ConfigMismatchError", "RUNTIME_KEYS", "load_config", "SearchResult", "run_search",
           "ARTEFACTS", "ModelFamily", "SpaceError", "RECIPE_KEYS", "load_family", "family_from",
           "RunDirError", "RunDirLockedError"]
