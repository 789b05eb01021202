"""Agents: the protocol, reference and replay agents; model-backed agents in ``hf`` and ``openai_compat``.

``TransformersAgent`` (``swirl_agents.agents.hf``) needs ``pip install "swirl-rl[train]"``;
``OpenAICompatAgent`` (``swirl_agents.agents.openai_compat``) talks to any OpenAI-compatible server.
"""

from swirl_agents.agents.base import Agent, act_batch, agent_name
from swirl_agents.agents.reference import ReferenceMathAgent, ReferenceQAAgent
from swirl_agents.agents.replay import ReplayAgent

__all__ = ["Agent", "ReferenceMathAgent", "ReferenceQAAgent", "ReplayAgent", "act_batch", "agent_name"]
