"""Step-wise RL training: maximise Σ R(a|s) · log π(a|s) over filtered transitions, packed by episode.

``from swirl_agents.training import TrainConfig, train`` is the whole public surface; the pure
pieces live in :mod:`~swirl_agents.training.losses` and :mod:`~swirl_agents.training.data`.
Needs ``pip install "swirl-rl[train]"`` (torch, transformers, accelerate).
"""

from swirl_agents.training.config import TrainConfig
from swirl_agents.training.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
