"""The end-to-end experiment behind ``ray-nasrank search``.

supernet -> weak labels of the candidate pool (a shared supernet actor) -> ranker pretrained on
them -> Ray Tune trials training the ranker's top candidates from scratch, the ranker fine-tuned
between rounds -> ``results.parquet``, ``best.json`` and a report. Every step writes its
artefact into the output folder and is skipped when the artefact exists, so re-running on the
same folder resumes (the Tune step through ``Tuner.restore``).

``PipelineConfig(space="MODULE:FUNCTION")`` searches the user's own model family instead of NB201
(:func:`load_family` reads what that function returns: a ``ChoiceSupernet`` or a
``(param_space, model_fn)`` pair).

Example::

    from ray_nasrank.pipeline import PipelineConfig, run_search

    res = run_search(PipelineConfig(dataset="digits", budget=4, concurrency=2), "runs/digits")
    print("\\n".join(res.summary_lines()))
"""

from ._config import RUNTIME_KEYS, ConfigMismatchError, PipelineConfig, load_config
from ._family import RECIPE_KEYS, ModelFamily, SpaceError, family_from, load_family
from ._run import SearchResult, run_search
from ._rundir import RunDirError, RunDirLockedError
from ._steps import ARTEFACTS

__all__ = ["PipelineConfig", "ConfigMismatchError", "RUNTIME_KEYS", "load_config", "SearchResult", "run_search",
           "ARTEFACTS", "ModelFamily", "SpaceError", "RECIPE_KEYS", "load_family", "family_from",
           "RunDirError", "RunDirLockedError"]
