"""Step-wise RL training: maximise Σ R(a|s) · log π(a|s) over filtered transitions, packed by episode.

``from swirl_agents.training import TrainConfig, train`` is the whole public surface; the pure
pieces live in :mod:`~swirl_agents.training.losses` and :mod:`~swirl_agents.training.data`.
Needs ``pip install "swirl-rl[train]"`` (torch, transformers, accelerate); the config alone imports
no torch, so command lines that only parse flags start fast.
"""

from typing import Any

from swirl_agents.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in ("TrainResult", "train"):
        from swirl_agents.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
