"""The whole SWiRL loop as one command (``swirl pipeline``): config, base-policy recipe, stages and report.

- :mod:`~swirl_agents.pipeline.config`: :class:`PipelineConfig`, holding the recipe's and both trainers' configs;
- :mod:`~swirl_agents.pipeline.recipe`: the base policy (a warm start from a tiny local model or a real one);
- :mod:`~swirl_agents.pipeline.stages`: :func:`run_pipeline`, resumable stage by stage;
- :mod:`~swirl_agents.pipeline.report`: ``report.md`` and the plots.
"""

from swirl_agents.pipeline.config import PipelineConfig, RecipeConfig

__all__ = ["PipelineConfig", "PipelineResult", "RecipeConfig", "run_pipeline"]


def __getattr__(name: str):
    if name in ("PipelineResult", "run_pipeline"):
        from swirl_agents.pipeline import stages

        return getattr(stages, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
