"""Agents: the protocol, the factory, reference and replay agents; model-backed agents in ``hf`` and ``openai_compat``.

``make_agent(spec, env)`` builds any of them from a spec string (``reference``, ``openai:URL:MODEL``,
``smollm2-135m-instruct``, a model folder, ...). ``TransformersAgent`` (``swirl_agents.agents.hf``) needs
``pip install "swirl-rl[train]"``; ``OpenAICompatAgent`` (``swirl_agents.agents.openai_compat``) talks to any
OpenAI-compatible server.
"""

from swirl_agents.agents.base import Agent, StepOutput, act_batch, agent_name, step_batch
from swirl_agents.agents.factory import make_agent
from swirl_agents.agents.reference import ReferenceMathAgent, ReferenceQAAgent
from swirl_agents.agents.replay import ReplayAgent

__all__ = ["Agent", "ReferenceMathAgent", "ReferenceQAAgent", "ReplayAgent", "StepOutput", "act_batch", "agent_name",
           "make_agent", "step_batch"]
