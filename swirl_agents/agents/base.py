"""The agent protocol: anything with ``act(observation) -> str`` runs in swirl's environments.

An agent may also offer faster or richer forms, each declared here as a :class:`typing.Protocol`:

- ``act_batch(observations) -> list[str]``: many episodes in one model call;
- ``async aact(observation) -> str``: many requests in flight;
- ``step_batch(observations) -> list[StepOutput]``: steps with annotations, the token ids the
  policy sampled, or a fault (a request that failed after its retries);
- ``with_seed(seed) -> agent``: one deterministic agent per sample (sample ``k`` of a question is
  the same episode whatever the batch order or an interruption).

:func:`batched` adapts any agent to the one form the rest of swirl calls, ``step_batch``; it is the
only place that asks which optional methods an agent has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Agent(Protocol):
    """A policy over text contexts: given the whole context, write the next step.

    An ``name`` attribute, when present, is recorded as the episode's agent id.
    """

    def act(self, observation: str) -> str: ...


@runtime_checkable
class BatchAgent(Protocol):
    """An agent that writes many steps in one call: ``act_batch(observations) -> list[str]``."""

    def act_batch(self, observations: Sequence[str]) -> list[str]: ...


@runtime_checkable
class AsyncAgent(Protocol):
    """An agent whose requests can be in flight together: ``async aact(observation) -> str``."""

    async def aact(self, observation: str) -> str: ...


@runtime_checkable
class StepAgent(Protocol):
    """An agent that returns a :class:`StepOutput` per observation (annotations, token ids, faults)."""

    def step_batch(self, observations: Sequence[str]) -> list[StepOutput]: ...


@runtime_checkable
class SeededAgent(Protocol):
    """An agent whose output is random and that gives each sample its own deterministic copy."""

    def with_seed(self, seed: int) -> Any: ...


@dataclass(frozen=True)
class StepOutput:
    """One step an agent wrote, with what the rollout records beside it."""

    text: str
    """The step text (reasoning, then at most one action)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Agent-specific annotations, stored in ``Step.meta`` (e.g. a reference agent's injected mistake)."""
    token_ids: tuple[int, ...] | None = None
    """The ids the policy sampled, which decode to exactly ``text``; ``None`` for agents without tokens."""
    tokenizer: str = ""
    """Fingerprint of the tokenizer ``token_ids`` belong to (:func:`swirl_agents.tokens.fingerprint`)."""
    fault: str = ""
    """Non-empty when the agent could not write a step (a server that failed after its retries): the
    rollout records the fault instead of stepping the env, and the run goes on."""


def agent_name(agent: object) -> str:
    """The id recorded in episodes: ``agent.name`` if set, else the class name."""
    return str(getattr(agent, "name", None) or type(agent).__name__)


def for_sample(agent: Any, seed: int) -> Any:
    """The agent that writes the sample seeded ``seed``: ``agent.with_seed(seed)`` for a :class:`SeededAgent`."""
    return agent.with_seed(seed) if isinstance(agent, SeededAgent) else agent


def step_batch(agent: Any, observations: Sequence[str]) -> list[StepOutput]:
    """One :class:`StepOutput` per observation from any agent, in its fastest form.

    Example:
        >>> class Echo:
        ...     def act(self, observation): return "<answer>" + observation[-3:] + "</answer>"
        >>> [s.text for s in step_batch(Echo(), ["abc", "xyz"])]
        ['<answer>abc</answer>', '<answer>xyz</answer>']
    """
    if not observations:
        return []
    if isinstance(agent, StepAgent):
        out = list(agent.step_batch(list(observations)))
    else:
        out = [StepOutput(text) for text in _texts(agent, observations)]
    if len(out) != len(observations):
        raise ValueError(f"expected {len(observations)} steps from {agent_name(agent)}, actual {len(out)}")
    for s in out:
        if not isinstance(s, StepOutput) or not isinstance(s.text, str):
            raise TypeError(f"expected StepOutput with a str text from {agent_name(agent)}, actual {s!r:.120}")
    return out


def act_batch(agent: Any, observations: Sequence[str]) -> list[str]:
    """The step texts for ``observations`` (see :func:`step_batch`); a fault raises.

    Example:
        >>> class Echo:
        ...     def act(self, observation): return "<answer>" + observation[-3:] + "</answer>"
        >>> act_batch(Echo(), ["abc", "xyz"])
        ['<answer>abc</answer>', '<answer>xyz</answer>']
    """
    out = step_batch(agent, observations)
    faults = [s.fault for s in out if s.fault]
    if faults:
        raise AgentFault(f"{agent_name(agent)} could not write {len(faults)} of {len(out)} steps: {faults[0]}")
    return [s.text for s in out]


class AgentFault(RuntimeError):
    """An agent could not write a step (e.g. its server failed after every retry)."""


def _texts(agent: Any, observations: Sequence[str]) -> list[str]:
    if isinstance(agent, BatchAgent):
        out = list(agent.act_batch(list(observations)))
    elif isinstance(agent, AsyncAgent):
        out = asyncio.run(_gather(agent, observations))
    else:
        out = [agent.act(o) for o in observations]
    if len(out) != len(observations):
        raise ValueError(f"expected {len(observations)} steps from {agent_name(agent)}, actual {len(out)}")
    return out


async def _gather(agent: Any, observations: Sequence[str]) -> list[str]:
    return list(await asyncio.gather(*(agent.aact(o) for o in observations)))
